"""``from: stomp:`` against the real broker: ACK after the journal, NACK when not taken, redelivery, durability."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.stomp import StompConsumer
from esb.components import Outcome
from esb.errors import EngineStoppingError
from esb.exchange import Exchange
from esb.journal import admin
from esb.journal.schema import messages
from esb.runtime.context import EngineContext
from esb.runtime.engine import Engine
from esb.settings import Settings
from tests.adapters.stomp.support import (
    Broker,
    Client,
    free_port,
    lose_the_first_ack,
    queue_depth,
    start_proxy,
    unique,
)
from tests.conftest import write_routes
from tests.support import StartEngine, wait_for

FAST = {"reconnect_delay": "100ms", "reconnect_max": "500ms"}


def journal(engine: Engine, route_id: str) -> list[dict[str, Any]]:
    query = sa.select(messages.c.status, messages.c.headers, messages.c.body).where(messages.c.route_id == route_id)
    with engine.journal.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def stomp_consumer(engine: Engine, route_id: str) -> StompConsumer:
    consumer = engine.routes[route_id].consumer
    assert isinstance(consumer, StompConsumer)
    return consumer


def consumer_for(
    make_settings: Callable[..., Settings], uri: str, handler: Any, route_id: str = "direct-test"
) -> StompConsumer:
    context = EngineContext(make_settings())
    adapter, endpoint = context.endpoint(uri)
    consumer = adapter.consumer(endpoint, handler, route_id)
    assert isinstance(consumer, StompConsumer)
    return consumer


async def test_messages_are_journaled_then_acked(
    tmp_path: Path,
    db_url: str,
    queue_name: Callable[[str], str],
    start_engine: StartEngine,
    broker: Broker,
    client: Client,
) -> None:
    name = queue_name("in")
    source = broker.uri(f"/queue/{name}", prefetch=10, **FAST)
    write_routes(tmp_path / "routes", {"mq-in": f'route:\n  id: mq-in\n  from: "{source}"\n  steps: []\n'})
    engine = await start_engine(db_url=db_url)
    for index in range(3):
        headers = {"esb-message-id": f"up-{index}", "content-type": "text/plain; charset=utf-8", "x-site": "north"}
        await asyncio.to_thread(client.publish, f"/queue/{name}", f"order {index}".encode(), headers)
    consumer = stomp_consumer(engine, "mq-in")
    await wait_for(lambda: consumer.acked == 3, what="three messages ACKed")
    rows = journal(engine, "mq-in")
    assert sorted(bytes(r["body"]) for r in rows) == [b"order 0", b"order 1", b"order 2"]
    headers = rows[0]["headers"]
    assert headers["stomp-destination"] == f"/queue/{name}" and headers["stomp-x-site"] == "north"
    assert headers["content-type"] == "text/plain; charset=utf-8" and headers["charset"] == "utf-8"
    await engine.stop()
    assert await asyncio.to_thread(queue_depth, name) == 0  # nothing left unacknowledged
    assert consumer.nacked == 0


async def test_a_message_not_taken_is_handed_back_and_comes_again(
    make_settings: Callable[..., Settings], broker: Broker, client: Client, queue_name: Callable[[str], str]
) -> None:
    name = queue_name("refused")
    seen: list[Exchange] = []

    async def handler(exchange: Exchange, wait: bool) -> Outcome:
        seen.append(exchange)
        if len(seen) == 1:  # what the engine answers while it stops (or when the journal is down)
            return Outcome(None, "failed", error=EngineStoppingError("engine is shutting down"))
        return Outcome("m-1", "accepted", exchange)

    consumer = consumer_for(make_settings, broker.uri(f"/queue/{name}", **FAST), handler)
    await consumer.start()
    try:
        await asyncio.to_thread(client.publish, f"/queue/{name}", b"ADT", {"esb-message-id": "up-1"})
        await wait_for(lambda: consumer.acked == 1, what="the message taken on its second delivery")
        assert consumer.link is not None
        product = consumer.link.broker
    finally:
        await consumer.stop()
    assert consumer.handed_back == 1 and len(seen) == 2
    # RabbitMQ requeues a NACKed message; ActiveMQ would dead-letter it, so there the connection is reopened
    assert (consumer.nacked, consumer.connections) == ((1, 1) if product == "rabbitmq" else (0, 2))
    assert seen[0].headers["stomp-redelivered"] == "false" and seen[1].headers["stomp-redelivered"] == "true"
    assert seen[1].body == b"ADT"
    assert await asyncio.to_thread(queue_depth, name) == 0


async def test_a_message_redelivered_after_the_journal_took_it_runs_once(
    tmp_path: Path,
    queue_name: Callable[[str], str],
    start_engine: StartEngine,
    broker: Broker,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The connection drops between the journal commit and the ACK: the broker hands the message out again."""
    name = queue_name("redeliver")
    source = broker.uri(f"/queue/{name}", **FAST)
    write_routes(tmp_path / "routes", {"mq-in": f'route:\n  id: mq-in\n  from: "{source}"\n  steps: []\n'})
    dropped = lose_the_first_ack(monkeypatch)
    engine = await start_engine()
    await asyncio.to_thread(client.publish, f"/queue/{name}", b"ADT A01", {"esb-message-id": "up-7"})
    consumer = stomp_consumer(engine, "mq-in")
    await wait_for(lambda: consumer.acked == 1, what="the redelivered message ACKed")
    assert dropped and consumer.connections == 2
    rows = journal(engine, "mq-in")
    assert len(rows) == 1 and bytes(rows[0]["body"]) == b"ADT A01"
    assert admin.route_counts(engine.journal.engine)["mq-in"] == {"processed": 1}
    await engine.stop()
    assert await asyncio.to_thread(queue_depth, name) == 0


async def test_durable_topic_subscription_keeps_messages_while_we_are_away(
    make_settings: Callable[..., Settings], broker: Broker, client: Client
) -> None:
    topic, subscription = f"/topic/{unique('durable')}", unique("sub")
    got: list[bytes] = []

    async def handler(exchange: Exchange, wait: bool) -> Outcome:
        got.append(exchange.body)
        return Outcome(f"m-{len(got)}", "accepted", exchange)

    uri = broker.uri(topic, durable="true", subscription=subscription, **FAST)
    first = consumer_for(make_settings, uri, handler)
    await first.start()
    try:
        await wait_for(lambda: first.connections == 1, what="subscribed")
        await asyncio.to_thread(client.publish, topic, b"one")
        await wait_for(lambda: got == [b"one"], what="the first message")
        assert first.link is not None
        await first.link.close(grace=0)  # the connection drops under the consumer: it reconnects alone
        await wait_for(lambda: first.connections == 2, what="reconnected")
        await asyncio.to_thread(client.publish, topic, b"two")
        await wait_for(lambda: got == [b"one", b"two"], what="a message after our reconnect")
    finally:
        await first.stop()
    await asyncio.to_thread(client.publish, topic, b"three")  # nobody connected: the subscription keeps it
    second = consumer_for(make_settings, uri, handler)
    await second.start()
    try:
        await wait_for(lambda: got == [b"one", b"two", b"three"], what="the message sent while we were away")
    finally:
        await second.stop()
        await asyncio.to_thread(client.drop_durable, topic, subscription)
    assert first.acked + second.acked == 3


async def test_a_broker_down_at_start_does_not_stop_the_engine(
    tmp_path: Path,
    queue_name: Callable[[str], str],
    start_engine: StartEngine,
    broker: Broker,
    client: Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The consumer retries with backoff and logs without secrets; once the broker is there it consumes."""
    name, port = queue_name("late"), free_port()
    source = broker.uri(f"/queue/{name}", reconnect_delay="100ms", reconnect_max="200ms").replace(
        f":{broker.port}/", f":{port}/"
    )
    write_routes(tmp_path / "routes", {"late": f'route:\n  id: late\n  from: "{source}"\n  steps: []\n'})
    caplog.set_level(logging.WARNING, logger="esb.adapters.stomp")
    engine = await start_engine()
    consumer = stomp_consumer(engine, "late")
    await wait_for(lambda: any("cannot connect" in r.getMessage() for r in caplog.records), what="a warning")
    assert engine.ready and consumer.connections == 0
    assert all(f":{broker.passcode}@" not in r.getMessage() for r in caplog.records)
    await asyncio.to_thread(client.publish, f"/queue/{name}", b"waiting", {"esb-message-id": "w-1"})
    proxy = await start_proxy(broker, port=port)  # the broker "comes up" where the route looks for it
    try:
        await wait_for(lambda: consumer.acked == 1, timeout=15, what="the waiting message taken")
    finally:
        proxy.close()
    assert [bytes(r["body"]) for r in journal(engine, "late")] == [b"waiting"]
