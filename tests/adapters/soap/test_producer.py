"""soap: producer and adapters.soap.client.call against soap: consumers of a real engine on 127.0.0.1."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

from adapters.soap.client import call
from esb.errors import DeliveryError, PermanentDeliveryError, SoapFaultError
from esb.exchange import Attachment, Exchange
from esb.journal import admin
from tests.adapters.soap import steps
from tests.adapters.soap.conftest import SoapEngine
from tests.soap_client import Part, include, soap_call
from tests.support import wait_for
from tests.tlsutil import make_certs

ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
RECORD = "transform: {python: tests.adapters.soap.steps:record}"
PAYLOAD = b'<xds:ProvideAndRegisterDocumentSetRequest xmlns:xds="urn:ihe:iti:xds-b:2007"/>'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_producer_forwards_payload_and_attachments_as_mtom(
    soap_engine: SoapEngine, client: aiohttp.ClientSession, db_url: str
) -> None:
    port = free_port()
    target = f"soap://127.0.0.1:{port}/target?action=urn:x:forward"
    engine = await soap_engine(
        {
            "front": (f"soap://127.0.0.1:{port}/front", f"to: {target}"),
            "target": (
                f"soap://127.0.0.1:{port}/target",
                RECORD,
                "transform: {python: tests.adapters.soap.steps:query_response}",
            ),
        },
        http_port=port,
        db_url=db_url,
    )
    documents = [
        Part("doc1@src", "text/xml", b"<ClinicalDocument/>"),
        Part("doc2@src", "image/jpeg", b"\xff\xd8" * 5000),
    ]
    payload = f'<p xmlns="urn:p"><d>{include("doc1@src")}</d><d>{include("doc2@src")}</d></p>'.encode()
    reply = await soap_call(client, f"http://127.0.0.1:{port}/front", payload, action=ITI41, parts=documents)
    assert reply.status == 200
    await wait_for(lambda: len(steps.RECEIVED) == 1, what="delivery to the target route")
    seen = steps.RECEIVED[0]
    assert seen.headers["http-path"] == "/target"
    assert seen.headers["soap-action"] == "urn:x:forward" and seen.headers["soap-mtom"] == "true"
    assert seen.headers["soap-to"] == f"http://127.0.0.1:{port}/target"
    assert seen.headers["soap-message-id"].startswith("urn:uuid:")
    assert seen.headers["soap-reply-to"] == "http://www.w3.org/2005/08/addressing/anonymous"
    assert b"cid:doc1%40src" in seen.body
    assert [(a.content_id, a.content_type, a.read()) for a in seen.attachments] == [
        (d.content_id, d.content_type, d.data) for d in documents
    ]
    message_id = reply.headers["X-Message-Id"]

    def delivered() -> bool:
        return [d["status"] for d in admin.get_message(engine.journal.engine, message_id)["deliveries"]] == [
            "delivered"
        ]

    await wait_for(delivered, what="delivery recorded as delivered")


async def test_producer_maps_faults_and_statuses(soap_engine: SoapEngine) -> None:
    engine = await soap_engine(
        {
            "sender": ("soap://127.0.0.1:0/sender", "transform: {python: tests.adapters.soap.steps:sender_fault}"),
            "receiver": (
                "soap://127.0.0.1:0/receiver",
                "transform: {python: tests.adapters.soap.steps:receiver_fault}",
            ),
            "ok": ("soap://127.0.0.1:0/ok", RECORD, "to: service:echo/echo"),
        }
    )
    base = f"soap://127.0.0.1:{engine.http_port}"
    request = Exchange(body=PAYLOAD, headers={"soap-action": ITI41})
    with pytest.raises(PermanentDeliveryError, match=r"answered a Fault \(a:InvalidAddress\): the request names"):
        await engine.context.producer(f"{base}/sender").send(request)
    with pytest.raises(DeliveryError, match=r"answered a Fault \(Receiver\)") as raised:
        await engine.context.producer(f"{base}/receiver").send(request)
    assert not isinstance(raised.value, PermanentDeliveryError)
    with pytest.raises(PermanentDeliveryError, match="answered 404"):
        await engine.context.producer(f"{base}/nowhere").send(request)
    with pytest.raises(PermanentDeliveryError, match="no action to send"):
        await engine.context.producer(f"{base}/ok").send(Exchange(body=PAYLOAD))
    with pytest.raises(PermanentDeliveryError, match="the payload is not XML"):
        await engine.context.producer(f"{base}/ok").send(Exchange(body=b"not xml", headers={"soap-action": "urn:a"}))
    with pytest.raises(DeliveryError, match="ClientConnectorError"):
        await engine.context.producer(f"soap://127.0.0.1:{free_port()}/x?action=urn:a").send(request)
    answer = await engine.context.producer(f"{base}/ok?version=1.1").send(request)
    assert answer is not None and answer.headers["soap-version"] == "1.1"
    assert answer.headers["soap-action"] == ITI41 + "Response" and answer.body.startswith(b"<xds:Provide")
    assert steps.RECEIVED[0].headers["soap-version"] == "1.1" and steps.RECEIVED[0].headers["soap-mtom"] == "false"


async def test_client_call_returns_payload_attachments_and_raises_faults(
    soap_engine: SoapEngine, tmp_path: Path
) -> None:
    engine = await soap_engine(
        {
            "docs": ("soap://127.0.0.1:0/docs", "transform: {python: tests.adapters.soap.steps:documents_back}"),
            "sender": ("soap://127.0.0.1:0/sender", "transform: {python: tests.adapters.soap.steps:sender_fault}"),
        }
    )
    base = f"http://127.0.0.1:{engine.http_port}"
    big = Attachment("scan@src", "application/dicom", data=b"D" * 5000)
    payload, attachments, headers = await call(
        f"{base}/docs", b'<q xmlns="urn:q"/>', action="urn:ihe:iti:2007:RetrieveDocumentSet",
        attachments=[big], spool_dir=tmp_path / "spool", memory_limit=1000,
    )  # fmt: skip
    assert payload.startswith(b"<xds:RetrieveDocumentSetResponse")
    assert headers["soap-action"] == "urn:ihe:iti:2007:RetrieveDocumentSetResponse"
    assert headers["soap-mtom"] == "true" and headers["soap-relates-to"].startswith("urn:uuid:")
    by_id = {a.content_id: a for a in attachments}
    assert by_id["scan@src"].path is not None and Path(by_id["scan@src"].path).is_relative_to(tmp_path / "spool")
    assert by_id["scan@src"].read() == big.data  # over memory_limit: spooled
    assert by_id["note 1@esb.test"].data == b"a note kept in memory"  # under it: in memory
    with pytest.raises(SoapFaultError) as raised:
        await call(f"{base}/sender", b'<q xmlns="urn:q"/>', action="urn:a", version="1.1")
    fault = raised.value
    assert (fault.code, fault.reason) == ("Sender", "the request names repository 9.9.9, which is not this one")
    with pytest.raises(SoapFaultError) as raised:
        await call(f"{base}/sender", b'<q xmlns="urn:q"/>', action="urn:a")
    assert raised.value.subcode == "a:InvalidAddress"


async def test_tls_round_trip(soap_engine: SoapEngine, tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    port = free_port()
    server = f"tls=true&certfile={certs.server_cert}&keyfile={certs.server_key}"
    engine = await soap_engine({"r": (f"soap://127.0.0.1:{port}/secure?{server}", RECORD, "to: service:echo/echo")})
    request = Exchange(body=PAYLOAD, headers={"soap-action": ITI41})
    reply = await engine.context.producer(f"soap://127.0.0.1:{port}/secure?tls=true&cafile={certs.ca}").send(request)
    assert reply is not None and reply.headers["http-status"] == "200"
    with pytest.raises(DeliveryError, match="certificate verify failed"):
        await engine.context.producer(f"soap://127.0.0.1:{port}/secure?tls=true").send(request)
    assert len(steps.RECEIVED) == 1
