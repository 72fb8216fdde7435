"""SOAP envelopes: versions, WS-Addressing, mustUnderstand, Faults, hostile XML."""

from __future__ import annotations

import pytest
from lxml import etree

from adapters.soap.envelope import SOAP11, SOAP12, WSA, fault, parse_envelope, response
from esb.errors import SoapFaultError

ITI18 = f"""<s:Envelope xmlns:s="{SOAP12}" xmlns:a="{WSA}">
  <s:Header>
    <a:Action s:mustUnderstand="1">urn:ihe:iti:2007:RegistryStoredQuery</a:Action>
    <a:MessageID>urn:uuid:1234</a:MessageID>
    <a:ReplyTo><a:Address>{WSA}/anonymous</a:Address></a:ReplyTo>
    <a:To s:mustUnderstand="1">http://127.0.0.1/xds/registry</a:To>
  </s:Header>
  <s:Body><query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"/></s:Body>
</s:Envelope>""".encode()


def test_soap12_request_with_ws_addressing() -> None:
    envelope = parse_envelope(ITI18)
    assert envelope.version == "1.2"
    assert envelope.addressing["Action"] == "urn:ihe:iti:2007:RegistryStoredQuery"
    assert envelope.addressing["MessageID"] == "urn:uuid:1234"
    assert envelope.addressing["ReplyTo"] == f"{WSA}/anonymous"
    assert etree.QName(envelope.payload).localname == "AdhocQueryRequest"


def test_unknown_must_understand_header_is_a_fault() -> None:
    data = ITI18.replace(b"<s:Header>", b'<s:Header><x:Sec xmlns:x="urn:x" s:mustUnderstand="true"/>')
    with pytest.raises(SoapFaultError) as caught:
        parse_envelope(data)
    assert caught.value.code == "MustUnderstand"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"<notxml", "Sender"),
        (b"<Envelope/>", "VersionMismatch"),
        (f'<s:Envelope xmlns:s="{SOAP12}"><s:Header/></s:Envelope>'.encode(), "Sender"),
        (f'<s:Envelope xmlns:s="{SOAP12}"><s:Body/></s:Envelope>'.encode(), "Sender"),
    ],
)
def test_broken_envelopes_are_faults(data: bytes, code: str) -> None:
    with pytest.raises(SoapFaultError) as caught:
        _ = parse_envelope(data).payload
    assert caught.value.code == code


def test_billion_laughs_is_a_fault() -> None:
    entities = b'<!ENTITY a0 "lol">' + b"".join(
        b'<!ENTITY a%d "%s">' % (n, b"&a%d;" % (n - 1) * 10) for n in range(1, 10)
    )
    data = b"<?xml version='1.0'?><!DOCTYPE s [" + entities + b"]>" + ITI18.replace(b"urn:uuid:1234", b"&a9;")
    with pytest.raises(SoapFaultError, match="not well-formed"):
        parse_envelope(data)


def test_response_relates_to_the_request_and_fault_has_code_subcode_reason() -> None:
    payload = etree.Element("{urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0}AdhocQueryResponse")
    out = etree.fromstring(
        response(payload, action="urn:ihe:iti:2007:RegistryStoredQueryResponse", relates_to="urn:uuid:1234")
    )
    assert out.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}RelatesTo") == "urn:uuid:1234"
    assert out.find(f"{{{SOAP12}}}Body")[0].tag == payload.tag
    error = SoapFaultError("MTOM is required for ITI-41", code="Sender", subcode="a:InvalidMessageInformationHeader")
    soap12 = etree.fromstring(fault(error, relates_to="urn:uuid:1234"))
    assert soap12.findtext(f".//{{{SOAP12}}}Code/{{{SOAP12}}}Value") == "s:Sender"
    assert soap12.findtext(f".//{{{SOAP12}}}Subcode/{{{SOAP12}}}Value") == "a:InvalidMessageInformationHeader"
    assert soap12.findtext(f".//{{{SOAP12}}}Reason/{{{SOAP12}}}Text") == "MTOM is required for ITI-41"
    soap11 = etree.fromstring(fault(error, version="1.1"))
    assert soap11.findtext(f".//{{{SOAP11}}}Fault/faultcode") == "s:Client"
