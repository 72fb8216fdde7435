"""Untrusted XML: the exchange's parser expands no entities, reads no files, fetches nothing."""

from __future__ import annotations

import pytest
from lxml import etree

from esb.exchange import Exchange


def billion_laughs() -> bytes:
    entities = [b'<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        entities.append(b'<!ENTITY lol%d "%s">' % (level, b"&lol%d;" % (level - 1) * 10))
    return b'<?xml version="1.0"?><!DOCTYPE lolz [' + b"".join(entities) + b"]><lolz>&lol9;</lolz>"


def test_billion_laughs_is_refused_not_expanded() -> None:
    with pytest.raises(etree.XMLSyntaxError, match="amplification"):
        Exchange(body=billion_laughs()).xml()


def test_external_entities_are_not_read() -> None:
    xxe = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    root = Exchange(body=xxe).xml()
    assert root.text is None and b"root:" not in etree.tostring(root)


def test_external_dtd_is_not_fetched() -> None:
    remote = b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r>ok</r>'
    assert Exchange(body=remote).xml().text == "ok"
