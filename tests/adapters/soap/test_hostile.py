"""Requests the soap: consumer refuses before the engine sees them: a Fault each, nothing journaled or spooled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from adapters.soap.envelope import SOAP12, WSA
from esb.journal import admin
from esb.runtime.engine import Engine
from tests.adapters.soap.conftest import SoapEngine
from tests.soap_client import Part, Reply, content_type, envelope, include, mtom, post, soap_call

ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
PAYLOAD = b'<xds:ProvideAndRegisterDocumentSetRequest xmlns:xds="urn:ihe:iti:xds-b:2007"/>'
SOURCE = (
    "soap://127.0.0.1:0/repo?max_xml=4000&max_body=50000&max_depth=40"
    f"&actions={ITI41},{ITI43},{ITI18}&mtom_actions={ITI41},{ITI43}"
)


@pytest.fixture
async def engine(soap_engine: SoapEngine) -> AsyncIterator[Engine]:
    started = await soap_engine({"r": (SOURCE, "to: service:echo/echo")})
    yield started
    assert admin.list_messages(started.journal.engine) == [], "a refused request was journaled"
    spool = started.settings.data_dir / "spool"
    assert not spool.exists() or not any(spool.iterdir()), "a refused request left spooled parts"


def url(engine: Engine) -> str:
    return f"http://127.0.0.1:{engine.http_port}/repo"


def assert_fault(reply: Reply, status: int, code: str, *, subcode: str = "", reason: str = "") -> None:
    assert reply.status == status, reply.body[:400]
    fault = reply.fault
    assert fault is not None, reply.body[:400]
    assert fault.code == code and fault.subcode == subcode
    assert reason in fault.reason, fault.reason
    assert b"Traceback" not in reply.body


def raw(body: bytes) -> bytes:
    return f'<s:Envelope xmlns:s="{SOAP12}"><s:Body>'.encode() + body + b"</s:Body></s:Envelope>"


async def test_xxe_is_a_fault(engine: Engine, client: aiohttp.ClientSession, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    data = f'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file://{secret}">]>'.encode() + raw(
        b"<q xmlns='urn:q'>&x;</q>"
    )
    reply = await post(client, url(engine), data, content_type())
    assert_fault(reply, 400, "Sender", reason="document type declaration")
    assert b"root:x" not in reply.body


async def test_billion_laughs_is_a_fault(engine: Engine, client: aiohttp.ClientSession) -> None:
    entities = b'<!ENTITY a0 "lol">' + b"".join(
        b'<!ENTITY a%d "%s">' % (n, b"&a%d;" % (n - 1) * 10) for n in range(1, 10)
    )
    data = b'<?xml version="1.0"?><!DOCTYPE s:Envelope [' + entities + b"]>" + raw(b"<q xmlns='urn:q'>&a9;</q>")
    reply = await post(client, url(engine), data, content_type())
    assert_fault(reply, 400, "Sender")
    assert len(reply.body) < 2000


async def test_deep_nesting_is_a_fault(engine: Engine, client: aiohttp.ClientSession) -> None:
    nested = b"<n xmlns='urn:n'>" * 60 + b"</n>" * 60
    reply = await post(client, url(engine), envelope(nested, action=ITI41), content_type())
    assert_fault(reply, 400, "Sender", reason="deeper than 40 levels")


async def test_oversized_envelope_and_body_get_413(engine: Engine, client: aiohttp.ClientSession) -> None:
    big = b"<q xmlns='urn:q'>" + b"x" * 5000 + b"</q>"
    reply = await post(client, url(engine), envelope(big, action=ITI18), content_type())
    assert_fault(reply, 413, "Sender", reason="larger than the 4000 bytes")

    async def chunked() -> AsyncIterator[bytes]:
        yield envelope(b"<q xmlns='urn:q'>", action=ITI18)[:-30]
        for _ in range(10):
            yield b"y" * 1000

    async with aiohttp.ClientSession() as fresh:  # the refused body closes its connection
        reply = await post(fresh, url(engine), chunked(), content_type())
    assert_fault(reply, 413, "Sender")
    # An MTOM package whose parts exceed max_body: streamed, counted, refused, spool removed.
    parts = [
        Part("a@t", "application/octet-stream", b"z" * 30000),
        Part("b@t", "application/octet-stream", b"z" * 30000),
    ]
    payload = f"<d xmlns='urn:d'>{include('a@t')}{include('b@t')}</d>".encode()
    value, body = mtom(envelope(payload, action=ITI41), parts)

    async def slowly() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    async with aiohttp.ClientSession() as fresh:
        reply = await post(fresh, url(engine), slowly(), value)
    assert_fault(reply, 413, "Sender", reason="larger than the 50000 bytes")


async def test_must_understand_is_a_fault_with_not_understood(engine: Engine, client: aiohttp.ClientSession) -> None:
    header = b'<x:Security xmlns:x="urn:sec" xmlns:s="' + SOAP12.encode() + b'" s:mustUnderstand="true"/>'
    reply = await post(
        client, url(engine), envelope(b"<q xmlns='urn:q'/>", action=ITI18, header=header), content_type()
    )
    assert_fault(reply, 500, "MustUnderstand", reason="not understood")
    block = reply.root.find(f"{{{SOAP12}}}Header/{{{SOAP12}}}NotUnderstood")
    assert block is not None and block.get("qname") == "nu:Security" and block.nsmap["nu"] == "urn:sec"


async def test_must_understand_only_for_our_roles(soap_engine: SoapEngine, client: aiohttp.ClientSession) -> None:
    started = await soap_engine({"r": ("soap://127.0.0.1:0/repo", "to: service:echo/echo")})
    none = "http://www.w3.org/2003/05/soap-envelope/role/none"
    header = f'<x:Security xmlns:x="urn:sec" xmlns:s="{SOAP12}" s:mustUnderstand="true" s:role="{none}"/>'
    data = envelope(b"<q xmlns='urn:q'/>", action=ITI18, header=header.encode())
    assert (await post(client, url(started), data, content_type())).status == 200


async def test_plain_request_for_an_mtom_action_is_a_fault(engine: Engine, client: aiohttp.ClientSession) -> None:
    for action in (ITI41, ITI43):
        reply = await soap_call(client, url(engine), PAYLOAD, action=action, message_id="urn:uuid:p")
        assert_fault(reply, 400, "Sender", reason=f"action '{action}' must be sent MTOM/XOP-packaged")
        assert reply.relates_to == "urn:uuid:p"


async def test_unsupported_action_and_addressing_faults(engine: Engine, client: aiohttp.ClientSession) -> None:
    reply = await soap_call(client, url(engine), PAYLOAD, action="urn:ihe:iti:2007:RegisterDocumentSet-b")
    assert_fault(reply, 400, "Sender", subcode="a:ActionNotSupported", reason="is not supported here")
    data = envelope(b"<q xmlns='urn:q'/>", action=ITI18)
    reply = await post(client, url(engine), data, content_type(action="urn:other"))
    assert_fault(reply, 400, "Sender", subcode="a:ActionMismatch")
    reply = await soap_call(client, url(engine), b"<q xmlns='urn:q'/>", action=ITI18, reply_to="http://elsewhere/cb")
    assert_fault(reply, 400, "Sender", subcode="a:OnlyAnonymousAddressSupported")


async def test_media_types_and_versions(engine: Engine, client: aiohttp.ClientSession) -> None:
    data = envelope(b"<q xmlns='urn:q'/>", action=ITI18)
    reply = await post(client, url(engine), data, "application/json")
    assert_fault(reply, 415, "Sender", reason="is not SOAP")
    reply = await post(client, url(engine), data, "text/xml; charset=utf-8")
    assert_fault(reply, 400, "Sender", reason="text/xml is for SOAP 1.1, but the envelope is SOAP 1.2")
    reply = await post(client, url(engine), b"<Envelope/>", content_type())
    assert_fault(reply, 500, "VersionMismatch")
    reply = await post(client, url(engine), b"<s:Envelope", content_type())
    assert_fault(reply, 400, "Sender", reason="not well-formed")
    reply = await post(client, url(engine), envelope(b"", action=ITI18), content_type())
    assert_fault(reply, 400, "Sender", reason="Body is empty")


async def test_broken_mtom_packages(engine: Engine, client: aiohttp.ClientSession) -> None:
    payload = f"<d xmlns='urn:d'>{include('a@t')}</d>".encode()
    data = envelope(payload, action=ITI41)
    value, body = mtom(data, [Part("a@t", "text/plain", b"hello")])
    cases = [
        (value.replace("xop+xml", "soap+xml"), body, "is not MTOM"),
        (value, body[: len(body) // 2], "ends inside a part"),
        (value.replace("boundary=", "boundary=nope"), body, "boundary"),
        (value, body.replace(b"Content-ID: <a@t>", b"Content-ID: <b@t>"), "names no MIME part"),
        (value, body.replace(b"Content-Transfer-Encoding: binary\r\nContent-ID: <a@t>",
                             b"Content-Transfer-Encoding: base64\r\nContent-ID: <a@t>"), "base64"),
    ]  # fmt: skip
    for content, data_, reason in cases:
        reply = await post(client, url(engine), data_, content)
        assert_fault(reply, 400, "Sender", reason=reason)
    plain_include = envelope(payload, action=ITI18)
    reply = await post(client, url(engine), plain_include, content_type())
    assert_fault(reply, 400, "Sender", reason="not MTOM")


async def test_inline_base64_inside_mtom_is_accepted(soap_engine: SoapEngine, client: aiohttp.ClientSession) -> None:
    started = await soap_engine({"r": (SOURCE, "to: service:echo/echo")})
    document = b'<xds:Document xmlns:xds="urn:ihe:iti:xds-b:2007" id="Doc1">aGVsbG8=</xds:Document>'
    reply = await soap_call(client, url(started), document, action=ITI41, use_mtom=True)
    assert reply.status == 200 and reply.is_mtom and reply.fault is None
    assert reply.payload.text == "aGVsbG8=" and reply.action == f"{ITI41}Response" and reply.relates_to
    assert WSA in reply.root.nsmap.values()
