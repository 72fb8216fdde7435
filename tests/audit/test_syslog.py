"""RFC 5424 messages over TLS (RFC 5425) and UDP (RFC 5426) to a receiver in Python on 127.0.0.1.

The receiver parses every frame strictly (octet count, header, structured
data, BOM); these tests check the transports and the sender against it:
framing, certificates both ways, and records surviving a receiver that is
down for a while.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest

import esb.audit as audit
from esb.audit import events as e
from esb.audit import xml
from esb.audit.config import AuditConfig, parse_repository
from esb.audit.model import AuditSource
from esb.audit.sender import Sender
from esb.audit.store import AuditStore, Search
from esb.audit.syslog import AuditTransportError, message, transport_for
from esb.audit.trail import AuditTrail
from tests.audit.receivers import PySyslog, Rsyslog, rsyslog_wanted, wait_for
from tests.tlsutil import Certs, make_certs

NOW = dt.datetime(2026, 11, 29, 8, 30, 15, 123456)


def config(receiver: PySyslog, certs: Certs, transport: str = "tls", **more: object) -> AuditConfig:
    port = receiver.tls_port if transport == "tls" else receiver.udp_port
    values: dict[str, object] = {
        "repository": parse_repository(f"syslog+{transport}://127.0.0.1:{port}"), "cafile": str(certs.ca),
        "retry_delay": 0.05, "retry_max_delay": 0.2, "connect_timeout": 5.0, **more,
    }  # fmt: skip
    return AuditConfig(**values)  # type: ignore[arg-type]


def messages(n: int) -> list[bytes]:
    event = e.application_activity(started=True, node="node-1")
    body = xml.render(event, AuditSource("node-1"))
    return [message(body, record_id=f"{i:032x}", created_at=NOW, hostname="node host", app_name="ATNA",
                    procid="42") for i in range(n)]  # fmt: skip


@pytest.mark.parametrize("transport", ["tls", "udp"])
async def test_messages_are_framed_as_rfc_5424_with_the_xml_after_a_bom(
    transport: str, py_syslog: PySyslog, certs: Certs
) -> None:
    sender = transport_for(config(py_syslog, certs, transport))
    assert sender is not None
    await sender.send(messages(3))
    await sender.close()
    got = await asyncio.to_thread(wait_for, "3 messages", lambda: len(py_syslog.messages) == 3)
    assert got and py_syslog.errors == []
    first = py_syslog.messages[0]
    assert (first.transport, first.pri, first.timestamp, first.host, first.app, first.procid, first.msgid) == (
        transport, 85, "2026-11-29T08:30:15.123456Z", "node_host", "ATNA", "42", "IHE+RFC-3881",
    )  # fmt: skip
    assert py_syslog.record_ids == [f"{i:032x}" for i in range(3)]
    assert xml.problems(first.xml) == []


async def test_a_client_certificate_is_presented_when_configured(certs: Certs) -> None:
    receiver = PySyslog(certs.server_context(ssl.CERT_REQUIRED))
    receiver.start()
    try:
        with_cert = transport_for(
            config(receiver, certs, certfile=str(certs.client_cert), keyfile=str(certs.client_key))
        )
        assert with_cert is not None
        await with_cert.send(messages(1))
        await with_cert.close()
        await asyncio.to_thread(wait_for, "the message", lambda: len(receiver.messages) == 1)
        subject = dict(x[0] for x in receiver.peers[0]["subject"])
        assert subject["commonName"] == "esb test client"
        without = transport_for(config(receiver, certs))
        assert without is not None
        for _ in range(3):  # refused every time, never counted as sent (TLS 1.3 refuses after the handshake)
            with pytest.raises(AuditTransportError):
                await without.send(messages(1))
        await without.close()
    finally:
        receiver.close()
    assert len(receiver.messages) == 1


async def test_the_repository_certificate_is_verified_against_the_cafile(
    py_syslog: PySyslog, certs: Certs, tmp_path: Path
) -> None:
    (tmp_path / "other").mkdir()
    other = make_certs(tmp_path / "other")  # a CA that did not sign the receiver's certificate
    sender = transport_for(config(py_syslog, certs, cafile=str(other.ca)))
    assert sender is not None
    with pytest.raises(AuditTransportError, match="CERTIFICATE_VERIFY_FAILED"):
        await sender.send(messages(1))
    await sender.close()
    assert py_syslog.messages == []


async def test_records_wait_while_the_receiver_is_down_and_all_arrive_after(
    store: AuditStore, py_syslog: PySyslog, certs: Certs
) -> None:
    trail = AuditTrail(store, AuditSource("node-1"))
    trail.start()
    audit.install(trail)
    transport = transport_for(config(py_syslog, certs))
    assert transport is not None
    sender = Sender(store, transport, config(py_syslog, certs), node="node-1")
    loop = asyncio.get_running_loop()
    trail.on_stored = lambda _: loop.call_soon_threadsafe(sender.wake)  # as the engine wires them
    sender.start()
    emitted: list[str] = []

    def emit(n: int) -> None:
        for _ in range(n):
            event = e.user_authentication(user="alice", success=True, peer_host="127.0.0.1", method="password")
            emitted.append(event.record_id)
            audit.emit(event)

    try:
        emit(5)
        await asyncio.to_thread(wait_for, "5 records", lambda: len(set(py_syslog.record_ids)) == 5)
        await asyncio.to_thread(py_syslog.stop)
        emit(7)
        await asyncio.to_thread(wait_for, "a failed send", lambda: store.status()["last_error"])
        state = store.status()
        assert state["unsent"] == 7 and "cannot connect" in state["last_error"]
        await asyncio.to_thread(py_syslog.start)
        await asyncio.to_thread(wait_for, "all 12 records", lambda: set(py_syslog.record_ids) == set(emitted))
        await asyncio.to_thread(wait_for, "nothing unsent", lambda: store.status()["unsent"] == 0)
    finally:
        await sender.stop(drain=0)
        audit.uninstall(trail)
        trail.stop()
    rows, _ = store.search(Search(limit=100))
    assert all(r.sent_at is not None for r in rows) and len(rows) == 12
    assert store.status()["last_error"] is None


@pytest.mark.parametrize("transport", ["tls", "udp"])
async def test_rsyslog_takes_both_transports(transport: str, certs: Certs, tmp_path: Path) -> None:
    """rsyslog (imtcp with gtls, imudp) reads the framing and the header as RFC 5424 says (ESB_TEST_RSYSLOG=1)."""
    rsyslog_wanted()
    receiver = Rsyslog(tmp_path, certs.ca, certs.server_cert, certs.server_key)
    await asyncio.to_thread(receiver.start)
    try:
        port = receiver.tls_port if transport == "tls" else receiver.udp_port
        sender = transport_for(AuditConfig(repository=parse_repository(f"syslog+{transport}://127.0.0.1:{port}"),
                                           cafile=str(certs.ca)))  # fmt: skip
        assert sender is not None
        await sender.send(messages(3))
        await sender.close()
        await asyncio.to_thread(wait_for, "3 records in rsyslog's file", lambda: len(receiver.record_ids) == 3)
    finally:
        await asyncio.to_thread(receiver.close)
    assert receiver.record_ids == [f"{i:032x}" for i in range(3)]
    assert {(m.msgid, m.app) for m in receiver.messages} == {("IHE+RFC-3881", "ATNA")}
    assert all(xml.problems(m.xml) == [] for m in receiver.messages)


async def test_udp_truncates_what_a_datagram_cannot_carry(py_syslog: PySyslog, certs: Certs) -> None:
    from esb.audit.syslog import MAX_DATAGRAM

    sender = transport_for(config(py_syslog, certs, "udp"))
    assert sender is not None
    big = message("<AuditMessage>" + "x" * 70_000, record_id="f" * 32, created_at=NOW, hostname="h", app_name="ATNA")
    await sender.send([big, *messages(1)])
    await sender.close()
    await asyncio.to_thread(wait_for, "both datagrams", lambda: len(py_syslog.messages) == 2)
    assert py_syslog.record_ids == ["f" * 32, f"{0:032x}"]
    header = len(big) - len(big.split(b"] ", 1)[1])
    assert len(py_syslog.messages[0].body) == MAX_DATAGRAM - header  # cut at the datagram's limit
