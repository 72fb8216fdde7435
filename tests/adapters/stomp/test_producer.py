"""``to: stomp:`` against the real broker: persistent SEND with a receipt, failover, TLS, a missing receipt."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.stomp import StompProducer
from adapters.stomp.connection import LinkError
from esb.errors import DeliveryError
from esb.exchange import Exchange
from esb.runtime.context import EngineContext
from esb.settings import Settings
from tests.adapters.stomp.support import Broker, Client, free_port, port_of, start_mute_broker, start_proxy
from tests.tlsutil import make_certs


def producer_for(make_settings: Callable[..., Settings], uri: str) -> StompProducer:
    producer = EngineContext(make_settings()).producer(uri)
    assert isinstance(producer, StompProducer)
    return producer


def delivery(body: bytes, delivery_id: str, **headers: str) -> Exchange:
    """What the delivery worker hands a producer: the queued message with its delivery id."""
    return Exchange(body=body, headers={"esb-delivery-id": delivery_id, **headers})


async def test_persistent_send_with_receipt_carries_a_stable_message_id(
    make_settings: Callable[..., Settings], broker: Broker, client: Client, queue_name: Callable[[str], str]
) -> None:
    name = queue_name("out")
    client.subscribe(f"/queue/{name}", "peer")
    producer = producer_for(make_settings, broker.uri(f"/queue/{name}"))
    try:
        message = delivery(b'{"event":"registered"}', "d-1", **{"content-type": "application/json"})
        message.headers["stomp-correlation-id"] = "c-9"
        await producer.send(message)
        await producer.send(delivery(b"again", "d-1"))  # the journal's retry of the same delivery
    finally:
        await producer.close()
    first, second = await asyncio.to_thread(client.get), await asyncio.to_thread(client.get)
    assert first.body == b'{"event":"registered"}' and first.headers["persistent"] == "true"
    assert first.headers["content-type"] == "application/json" and first.headers["correlation-id"] == "c-9"
    assert first.headers["esb-message-id"] == second.headers["esb-message-id"] == "d-1"


async def test_a_missing_receipt_fails_the_send(make_settings: Callable[..., Settings]) -> None:
    """No RECEIPT within receipt_timeout: the delivery fails (and the journal retries it later)."""
    mute = await start_mute_broker()
    producer = producer_for(make_settings, f"stomp://127.0.0.1:{port_of(mute)}/queue/x?receipt_timeout=300ms")
    try:
        with pytest.raises(DeliveryError, match="no RECEIPT within 0.3s"):
            await producer.send(delivery(b"x", "d-1"))
    finally:
        await producer.close()
        mute.close()


async def test_failover_skips_a_broker_that_is_down_and_all_down_fails(
    make_settings: Callable[..., Settings], broker: Broker, client: Client, queue_name: Callable[[str], str]
) -> None:
    name, dead = queue_name("failover"), free_port()
    client.subscribe(f"/queue/{name}", "peer")
    uri = broker.uri(f"/queue/{name}", failover=f"{broker.host}:{broker.port}").replace(f":{broker.port}/", f":{dead}/")
    producer = producer_for(make_settings, uri)
    try:
        await producer.send(delivery(b"via the second broker", "d-1"))
    finally:
        await producer.close()
    assert (await asyncio.to_thread(client.get)).body == b"via the second broker"

    nowhere = producer_for(make_settings, f"stomp://127.0.0.1:{dead}/queue/{name}?connect_timeout=1s")
    with pytest.raises(LinkError, match=f"cannot connect to 127.0.0.1:{dead}"):
        await nowhere.send(delivery(b"lost?", "d-2"))
    await nowhere.close()


async def test_tls_to_the_broker(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    broker: Broker,
    client: Client,
    queue_name: Callable[[str], str],
) -> None:
    """STOMP over TLS, verified against our CA (a TLS front of the test broker stands in for stomp+ssl)."""
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    front = await start_proxy(broker, ssl_context=certs.server_context(ssl.CERT_NONE))
    name = queue_name("tls")
    client.subscribe(f"/queue/{name}", "peer")
    base = broker.uri(f"/queue/{name}", tls="true", cafile=str(certs.ca)).replace(
        f":{broker.port}/", f":{port_of(front)}/"
    )
    producer = producer_for(make_settings, base)
    untrusted = producer_for(make_settings, base.split("&cafile=")[0] + "&connect_timeout=2s")
    try:
        await producer.send(delivery(b"over TLS", "d-1"))
        with pytest.raises(LinkError, match="cannot connect"):
            await untrusted.send(delivery(b"not to an unknown CA", "d-2"))
    finally:
        await producer.close()
        await untrusted.close()
        front.close()
    assert (await asyncio.to_thread(client.get)).body == b"over TLS"


async def test_sends_of_several_workers_share_one_connection(
    make_settings: Callable[..., Settings], broker: Broker, client: Client, queue_name: Callable[[str], str]
) -> None:
    name = queue_name("shared")
    client.subscribe(f"/queue/{name}", "peer")
    producer = producer_for(make_settings, broker.uri(f"/queue/{name}"))
    try:
        await asyncio.gather(*(producer.send(delivery(f"{i}".encode(), f"d-{i}")) for i in range(40)))
        link = producer._link
        await producer.send(delivery(b"last", "d-last"))
        assert producer._link is link  # still the first connection
    finally:
        await producer.close()
    got = [await asyncio.to_thread(client.get) for _ in range(41)]
    assert sorted(f.headers["esb-message-id"] for f in got) == sorted([f"d-{i}" for i in range(40)] + ["d-last"])


async def test_a_dropped_connection_is_made_again_on_the_next_send(
    make_settings: Callable[..., Settings], broker: Broker, client: Client, queue_name: Callable[[str], str]
) -> None:
    name = queue_name("again")
    client.subscribe(f"/queue/{name}", "peer")
    producer = producer_for(make_settings, broker.uri(f"/queue/{name}"))
    try:
        await producer.send(delivery(b"one", "d-1"))
        first = producer._link
        assert first is not None
        await first.close(grace=0)
        await producer.send(delivery(b"two", "d-2"))
        assert producer._link is not first
    finally:
        await producer.close()
    assert [(await asyncio.to_thread(client.get)).body for _ in range(2)] == [b"one", b"two"]


async def test_a_refused_login_says_what_the_broker_said(
    make_settings: Callable[..., Settings], broker: Broker
) -> None:
    uri = broker.uri("/queue/never").replace(f":{broker.passcode}@", ":not-the-password@")
    producer = producer_for(make_settings, uri)
    try:
        with pytest.raises(LinkError, match="the broker answered ERROR: .+") as refused:
            await producer.send(delivery(b"x", "d-1"))
    finally:
        await producer.close()
    assert "not-the-password" not in str(refused.value)
