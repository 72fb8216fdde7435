"""``stomp:`` against a real ActiveMQ 5 (Debian's 5.17), the JMS broker hospitals run most.

What differs from RabbitMQ and is checked here: a message the engine does
not take is handed back by reconnecting (a NACK would send it to
``ActiveMQ.DLQ``), a durable topic subscriber is named by ``client-id`` and
``activemq.subscriptionName``, and a redelivered message keeps its
JMSMessageID, which the journal deduplicates on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.stomp import StompConsumer
from esb.components import Outcome
from esb.errors import EngineStoppingError
from esb.exchange import Exchange
from esb.journal.schema import messages
from esb.runtime.context import EngineContext
from esb.settings import Settings
from tests.adapters.stomp.support import Broker, Client, lose_the_first_ack, unique
from tests.conftest import write_routes
from tests.support import StartEngine, wait_for

FAST = {"reconnect_delay": "100ms", "reconnect_max": "500ms"}


@pytest.fixture
def peer(activemq: Broker) -> Iterator[Client]:
    client = Client(activemq)
    yield client
    client.close()


def consumer_for(make_settings: Callable[..., Settings], uri: str, handler: Any) -> StompConsumer:
    adapter, endpoint = EngineContext(make_settings()).endpoint(uri)
    consumer = adapter.consumer(endpoint, handler, "amq-test")
    assert isinstance(consumer, StompConsumer)
    return consumer


async def test_a_relay_through_activemq_journals_and_forwards_each_message_once(
    tmp_path: Path,
    start_engine: StartEngine,
    activemq: Broker,
    peer: Client,
) -> None:
    inbox, outbox = unique("in"), unique("out")
    peer.subscribe(f"/queue/{outbox}", "peer")
    source = activemq.uri(f"/queue/{inbox}", **FAST)
    target = activemq.uri(f"/queue/{outbox}")
    route = f'route:\n  id: amq-relay\n  from: "{source}"\n  steps:\n    - to: "{target}"\n'
    write_routes(tmp_path / "routes", {"amq-relay": route})
    engine = await start_engine()
    for n in range(20):
        await asyncio.to_thread(peer.publish, f"/queue/{inbox}", f"msg-{n}".encode(), {"content-type": "text/plain"})
    frames = [await asyncio.to_thread(peer.get, 15.0) for _ in range(20)]
    assert sorted(f.body for f in frames) == sorted(f"msg-{n}".encode() for n in range(20))
    assert all(f.headers["persistent"] == "true" and f.headers["esb-message-id"] for f in frames)
    with engine.journal.engine.connect() as conn:
        rows = conn.execute(sa.select(messages.c.status).where(messages.c.route_id == "amq-relay")).all()
    assert [r.status for r in rows] == ["processed"] * 20


async def test_a_message_not_taken_comes_again_and_never_reaches_the_dead_letter_queue(
    make_settings: Callable[..., Settings],
    activemq: Broker,
    peer: Client,
) -> None:
    name = unique("refused")
    seen: list[Exchange] = []

    async def handler(exchange: Exchange, wait: bool) -> Outcome:
        seen.append(exchange)
        if len(seen) == 1:  # what the engine answers while it stops (or when the journal is down)
            return Outcome(None, "failed", error=EngineStoppingError("engine is shutting down"))
        return Outcome("m-1", "accepted", exchange)

    peer.subscribe("/queue/ActiveMQ.DLQ", "dlq")
    consumer = consumer_for(make_settings, activemq.uri(f"/queue/{name}", **FAST), handler)
    await consumer.start()
    try:
        await asyncio.to_thread(peer.publish, f"/queue/{name}", b"ADT")
        await wait_for(lambda: consumer.acked == 1, what="the message taken on its second delivery")
    finally:
        await consumer.stop()
    assert (consumer.handed_back, consumer.nacked, consumer.connections) == (1, 0, 2)
    assert [s.headers["stomp-redelivered"] for s in seen] == ["false", "true"]
    assert seen[0].headers["stomp-message-id"] == seen[1].headers["stomp-message-id"]  # the JMSMessageID
    assert peer.frames.empty(), "a message the engine handed back went to ActiveMQ.DLQ"


async def test_a_durable_subscriber_gets_what_was_published_while_it_was_away(
    make_settings: Callable[..., Settings],
    activemq: Broker,
    peer: Client,
) -> None:
    topic, subscription = f"/topic/{unique('durable')}", unique("sub")
    got: list[bytes] = []

    async def handler(exchange: Exchange, wait: bool) -> Outcome:
        got.append(exchange.body)
        return Outcome(f"m-{len(got)}", "accepted", exchange)

    uri = activemq.uri(topic, durable="true", subscription=subscription, client_id=f"esb-{subscription}", **FAST)
    first = consumer_for(make_settings, uri, handler)
    await first.start()
    try:
        await wait_for(lambda: first.connections == 1, what="subscribed")
        await asyncio.to_thread(peer.publish, topic, b"one")
        await wait_for(lambda: got == [b"one"], what="the first message")
    finally:
        await first.stop()
    await asyncio.to_thread(peer.publish, topic, b"two")  # nobody connected: the durable subscriber keeps it
    second = consumer_for(make_settings, uri, handler)
    await second.start()
    try:
        await wait_for(lambda: got == [b"one", b"two"], what="the message sent while we were away")
    finally:
        await second.stop()


async def test_a_message_redelivered_after_the_journal_took_it_runs_once(
    tmp_path: Path,
    start_engine: StartEngine,
    activemq: Broker,
    peer: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The connection drops between the journal commit and the ACK; ActiveMQ's JMSMessageID is the key."""
    name = unique("redeliver")
    source = activemq.uri(f"/queue/{name}", **FAST)
    write_routes(tmp_path / "routes", {"mq-in": f'route:\n  id: mq-in\n  from: "{source}"\n  steps: []\n'})
    dropped = lose_the_first_ack(monkeypatch)
    engine = await start_engine()
    await asyncio.to_thread(peer.publish, f"/queue/{name}", b"once")
    consumer = engine.routes["mq-in"].consumer
    assert isinstance(consumer, StompConsumer)
    await wait_for(lambda: consumer.acked == 1, timeout=15, what="the redelivered message acknowledged")
    with engine.journal.engine.connect() as conn:
        rows = conn.execute(sa.select(messages.c.status).where(messages.c.route_id == "mq-in")).all()
    assert [r.status for r in rows] == ["processed"], "the redelivery ran the route again"
    assert len(dropped) == 1
