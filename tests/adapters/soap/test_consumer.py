"""soap: consumer over real HTTP on 127.0.0.1: envelopes, WS-Addressing, MTOM in and out, failures."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import sqlalchemy as sa
from lxml import etree

from adapters.soap.envelope import SOAP11, SOAP12, WSA
from esb.exchange import attachments_from_headers
from esb.journal import admin
from esb.journal.schema import messages
from tests.adapters.soap import steps
from tests.adapters.soap.conftest import SoapEngine
from tests.soap_client import Part, content_type, envelope, include, mtom, post, soap_call

ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
XDS = "urn:ihe:iti:xds-b:2007"
QUERY = b'<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"/>'
ECHO = "to: service:echo/echo"
RECORD = "transform: {python: tests.adapters.soap.steps:record}"


async def test_soap12_request_is_routed_and_answered_with_addressing(
    soap_engine: SoapEngine, client: aiohttp.ClientSession, db_url: str
) -> None:
    engine = await soap_engine({"r": ("soap://127.0.0.1:0/xds/registry", RECORD, ECHO)}, db_url=db_url)
    url = f"http://127.0.0.1:{engine.http_port}/xds/registry"
    reply = await soap_call(client, url, QUERY, action=ITI18, message_id="urn:uuid:req-1", to=url)
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/soap+xml; charset=utf-8"
    assert reply.version == "1.2"
    assert reply.action == ITI18 + "Response"
    assert reply.relates_to == "urn:uuid:req-1"
    assert reply.message_id.startswith("urn:uuid:") and reply.message_id != "urn:uuid:req-1"
    assert etree.QName(reply.payload).localname == "AdhocQueryRequest"
    seen = steps.RECEIVED[0]
    # The Body's first child, standalone (namespaces in scope in the envelope come along).
    assert seen.body.startswith(b"<query:AdhocQueryRequest ") and b"<?xml" not in seen.body
    assert etree.fromstring(seen.body).tag == "{urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0}AdhocQueryRequest"
    assert seen.headers["soap-version"] == "1.2" and seen.headers["soap-action"] == ITI18
    assert seen.headers["soap-message-id"] == "urn:uuid:req-1" and seen.headers["soap-to"] == url
    assert seen.headers["soap-reply-to"] == f"{WSA}/anonymous"
    assert seen.headers["soap-mtom"] == "false" and seen.headers["content-type"] == "application/xml"
    stored = admin.get_message(engine.journal.engine, reply.headers["X-Message-Id"])
    assert stored["status"] == "processed" and stored["body"] == seen.body


async def test_soap11_request_with_soapaction(soap_engine: SoapEngine, client: aiohttp.ClientSession) -> None:
    engine = await soap_engine({"r": ("soap://127.0.0.1:0/ws", RECORD, ECHO)})
    url = f"http://127.0.0.1:{engine.http_port}/ws"
    # No wsa:Action: the SOAPAction header names the action.
    data = f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><m:ping xmlns:m="urn:m"/></s:Body></s:Envelope>'.encode()
    reply = await post(client, url, data, "text/xml; charset=utf-8", {"SOAPAction": '"urn:m:ping"'})
    assert reply.status == 200 and reply.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert reply.version == "1.1" and reply.action == "urn:m:pingResponse" and reply.relates_to == ""
    assert etree.QName(reply.payload).localname == "ping"
    assert steps.RECEIVED[0].headers["soap-action"] == "urn:m:ping"
    assert steps.RECEIVED[0].headers["soap-version"] == "1.1"
    # SOAP 1.1 over MTOM: root part type text/xml, action in SOAPAction; answered the same way.
    part = Part("p@t", "text/plain", b"part")
    reply = await soap_call(client, url, b'<m:ping xmlns:m="urn:m"/>', action="urn:m:ping", version="1.1", parts=[part])
    assert reply.status == 200 and reply.is_mtom and reply.version == "1.1"
    assert 'start-info="text/xml"' in reply.headers["Content-Type"] and 'type="text/xml"' in reply.root_type
    assert reply.parts["p@t"].data == b"part" and steps.RECEIVED[1].headers["soap-mtom"] == "true"


async def test_reply_action_from_the_service_and_query_response(
    soap_engine: SoapEngine, client: aiohttp.ClientSession
) -> None:
    step = "transform: {python: tests.adapters.soap.steps:query_response}"
    set_action = 'set-header: {name: soap-reply-action, value: "urn:x:custom"}'
    engine = await soap_engine({"a": ("soap://127.0.0.1:0/a", step), "b": ("soap://127.0.0.1:0/b", step, set_action)})
    base = f"http://127.0.0.1:{engine.http_port}"
    plain = await soap_call(client, f"{base}/a", QUERY, action=ITI18)
    assert plain.action == ITI18 + "Response"
    assert plain.payload.get("status").endswith(":Success")
    custom = await soap_call(client, f"{base}/b", QUERY, action=ITI18)
    assert custom.action == "urn:x:custom"


async def test_mtom_request_with_declared_root_and_encoded_cids(
    soap_engine: SoapEngine, client: aiohttp.ClientSession, db_url: str
) -> None:
    engine = await soap_engine({"r": ("soap://127.0.0.1:0/repo", RECORD, ECHO)}, db_url=db_url)
    url = f"http://127.0.0.1:{engine.http_port}/repo"
    parts = [Part("doc 1@esb.test", "text/xml", b"<ClinicalDocument/>"), Part("2@x", "application/pdf", b"%PDF\r\n")]
    documents = "".join(f"<xds:Document>{include(p.content_id)}</xds:Document>" for p in parts)
    payload = (
        f'<xds:RetrieveDocumentSetResponse xmlns:xds="{XDS}">{documents}</xds:RetrieveDocumentSetResponse>'.encode()
    )
    data = envelope(payload, action=ITI43, message_id="urn:uuid:m-1")
    assert data.startswith(b"<?xml")  # the root part that trips spyne
    value, body = mtom(data, parts, action=ITI43, start=False)
    reply = await post(client, url, body, value)
    assert reply.status == 200, reply.body[:300]
    seen = steps.RECEIVED[0]
    assert seen.headers["soap-mtom"] == "true" and seen.headers["soap-action"] == ITI43
    assert [(a.content_id, a.content_type, a.read()) for a in seen.attachments] == [
        (p.content_id, p.content_type, p.data) for p in parts
    ]
    assert all(a.path and Path(a.path).is_relative_to(engine.settings.data_dir / "spool") for a in seen.attachments)
    assert b"xop:Include" in seen.body and b"cid:doc%201%40esb.test" in seen.body
    replayed = attachments_from_headers(
        admin.get_message(engine.journal.engine, reply.headers["X-Message-Id"])["headers"]
    )
    assert [a.path for a in replayed] == [a.path for a in seen.attachments]
    # A MTOM request gets a MTOM answer (echo sends the same parts back).
    assert reply.is_mtom and reply.relates_to == "urn:uuid:m-1"
    assert 'start-info="application/soap+xml"' in reply.headers["Content-Type"]
    assert reply.root_type.startswith("application/xop+xml")
    assert {cid: p.data for cid, p in reply.parts.items()} == {p.content_id: p.data for p in parts}


async def test_mtom_reply_with_file_and_memory_attachments(
    soap_engine: SoapEngine, client: aiohttp.ClientSession
) -> None:
    step = "transform: {python: tests.adapters.soap.steps:documents_back}"
    engine = await soap_engine({"r": ("soap://127.0.0.1:0/repo", step)})
    url = f"http://127.0.0.1:{engine.http_port}/repo"
    image = bytes(range(256)) * 1000
    reply = await soap_call(client, url, b'<q xmlns="urn:q"/>', action=ITI43, parts=[Part("img@t", "image/png", image)])
    assert reply.status == 200 and reply.is_mtom
    assert reply.action == ITI43 + "Response"
    hrefs = [i.get("href") for i in reply.payload.iter("{http://www.w3.org/2004/08/xop/include}Include")]
    assert hrefs == ["cid:img@t", "cid:note 1@esb.test"]
    assert reply.parts["img@t"].data == image and reply.parts["img@t"].content_type == "image/png"
    assert reply.parts["note 1@esb.test"].data == b"a note kept in memory"
    assert int(reply.headers["Content-Length"]) == len(reply.body)


async def test_plain_request_gets_mtom_reply_when_the_reply_has_attachments(
    soap_engine: SoapEngine, client: aiohttp.ClientSession
) -> None:
    step = "transform: {python: tests.adapters.soap.steps:documents_back}"
    engine = await soap_engine({"r": ("soap://127.0.0.1:0/repo", step)})
    reply = await soap_call(client, f"http://127.0.0.1:{engine.http_port}/repo", b'<q xmlns="urn:q"/>', action=ITI43)
    assert reply.is_mtom and list(reply.parts) == ["note 1@esb.test"]


async def test_route_failures_become_faults(soap_engine: SoapEngine, client: aiohttp.ClientSession) -> None:
    engine = await soap_engine(
        {
            "sender": ("soap://127.0.0.1:0/sender", "transform: {python: tests.adapters.soap.steps:sender_fault}"),
            "receiver": (
                "soap://127.0.0.1:0/receiver",
                "transform: {python: tests.adapters.soap.steps:receiver_fault}",
            ),
            "boom": ("soap://127.0.0.1:0/boom", "transform: {python: tests.adapters.soap.steps:boom}"),
            "boom11": ("soap://127.0.0.1:0/boom11", "transform: {python: tests.adapters.soap.steps:boom}"),
        }
    )
    base = f"http://127.0.0.1:{engine.http_port}"
    sender = await soap_call(client, f"{base}/sender", QUERY, action=ITI18, message_id="urn:uuid:s")
    assert sender.status == 400  # SOAP 1.2 HTTP binding: env:Sender -> 400
    fault = sender.fault
    assert fault is not None and (fault.code, fault.subcode) == ("Sender", "a:InvalidAddress")
    assert fault.reason == "the request names repository 9.9.9, which is not this one"
    assert sender.relates_to == "urn:uuid:s" and sender.action == f"{WSA}/fault"
    receiver = await soap_call(client, f"{base}/receiver", QUERY, action=ITI18)
    assert receiver.status == 500 and receiver.fault is not None and receiver.fault.code == "Receiver"
    boom = await soap_call(client, f"{base}/boom", QUERY, action=ITI18)
    message_id = boom.headers["X-Message-Id"]
    assert boom.status == 500 and boom.fault is not None and boom.fault.code == "Receiver"
    assert message_id in boom.fault.reason and "RuntimeError" in boom.fault.reason
    assert b"Zhang" not in boom.body and b"Traceback" not in boom.body
    assert admin.get_message(engine.journal.engine, message_id)["status"] == "failed"
    boom11 = await soap_call(client, f"{base}/boom11", QUERY, action=ITI18, version="1.1")
    assert boom11.status == 500 and boom11.root.findtext(f".//{{{SOAP11}}}Fault/faultcode") == "s:Server"


async def test_filtered_message_is_accepted_without_a_body(
    soap_engine: SoapEngine, client: aiohttp.ClientSession
) -> None:
    engine = await soap_engine({"r": ("soap://127.0.0.1:0/oneway", "filter: {header: soap-action, equals: urn:x}")})
    reply = await soap_call(client, f"http://127.0.0.1:{engine.http_port}/oneway", QUERY, action=ITI18)
    assert reply.status == 202 and reply.body == b""


async def test_journal_failure_is_a_receiver_fault_with_503(
    soap_engine: SoapEngine, client: aiohttp.ClientSession
) -> None:
    engine = await soap_engine({"r": ("soap://127.0.0.1:0/in", ECHO)})
    url = f"http://127.0.0.1:{engine.http_port}/in"
    with engine.journal.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {messages.name} RENAME TO away"))
    part = Part("p@t", "text/plain", b"kept nowhere")
    reply = await soap_call(client, url, QUERY, action=ITI18, message_id="urn:uuid:j", parts=[part])
    assert reply.status == 503 and int(reply.headers["Retry-After"]) > 0
    assert reply.fault is not None and reply.fault.code == "Receiver" and reply.relates_to == "urn:uuid:j"
    spool = engine.settings.data_dir / "spool"
    assert spool.is_dir() and not any(spool.iterdir()), "parts of an unjournaled request were left behind"
    with engine.journal.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE away RENAME TO {messages.name}"))
    assert (await soap_call(client, url, QUERY, action=ITI18)).status == 200


async def test_get_without_wsdl_and_other_methods(soap_engine: SoapEngine, client: aiohttp.ClientSession) -> None:
    engine = await soap_engine({"r": ("soap://127.0.0.1:0/ws", ECHO)})
    url = f"http://127.0.0.1:{engine.http_port}/ws"
    async with client.get(f"{url}?wsdl") as answer:
        assert answer.status == 404 and "no WSDL" in await answer.text()
    async with client.get(url) as answer:
        assert answer.status == 405 and answer.headers["Allow"] == "POST, GET"
    async with client.put(url, data=b"x") as answer:
        assert answer.status == 405
    reply = await post(client, url, envelope(QUERY, action=ITI18), content_type())
    assert reply.status == 200 and reply.payload.tag == etree.fromstring(QUERY).tag
    assert reply.root.tag == f"{{{SOAP12}}}Envelope"
