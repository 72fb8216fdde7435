"""Acceptance (issue 6): a broker restart mid-stream loses nothing and duplicates nothing.

An engine relays queue A -> journal -> queue B (and a copy queue the test
reads), a second route takes B -> journal. The test publishes N messages with
unique ids to A at a steady pace and restarts RabbitMQ (``rabbitmqctl
stop_app`` / ``start_app``) while they flow: every connection of the engine
drops mid-stream, in-flight messages go back to their queues, deliveries
fail and are retried. Then every id must have reached B, each route must
hold exactly N messages (the broker's redeliveries were recognised by their
``esb-message-id``), and any repeat on the copy queue (a SEND whose receipt
was lost in the restart) must carry the same ``esb-message-id`` as the first
copy, which is what lets the next hop (route b-in) drop it.

Runs whenever ESB_TEST_STOMP_URL is set (CI sets it): it needs rabbitmqctl on
the machine, as root.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from esb.journal import admin
from esb.uri import redact
from tests.adapters.stomp.support import Broker, Client, Frame, queue_depth, rabbitmqctl
from tests.adapters.stomp.test_consumer import stomp_consumer
from tests.conftest import write_routes
from tests.support import StartEngine, wait_for

N = 300
#: messages published before the restart starts (the rest go during and after it)
BEFORE = 100


def restart_broker(broker: Broker) -> None:
    rabbitmqctl("stop_app")
    rabbitmqctl("start_app")
    deadline = time.monotonic() + 30
    while not broker.reachable():
        if time.monotonic() > deadline:
            raise AssertionError("RabbitMQ's STOMP port did not come back within 30s")
        time.sleep(0.1)


async def test_a_broker_restart_mid_stream_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, queue_name: Callable[[str], str], start_engine: StartEngine, broker: Broker
) -> None:
    a, b, copy = queue_name("a"), queue_name("b"), queue_name("b-copy")
    consume = {"prefetch": 50, "reconnect_delay": "100ms", "reconnect_max": "1s"}
    send = {"connect_timeout": "2s", "receipt_timeout": "2s"}
    to_b, to_copy = broker.uri(f"/queue/{b}", **send), broker.uri(f"/queue/{copy}", **send)
    write_routes(
        tmp_path / "routes",
        {
            "relay": f"""
                route:
                  id: relay
                  from: "{broker.uri(f"/queue/{a}", **consume)}"
                  steps:
                    - multicast: ["{to_b}", "{to_copy}"]
                  on_error:
                    - retry: {{max_attempts: 200, delay: 200ms, multiplier: 2, max_delay: 1s}}
            """,
            "b-in": f"""
                route:
                  id: b-in
                  from: "{broker.uri(f"/queue/{b}", **consume)}"
                  steps: []
            """,
        },
    )
    engine = await start_engine()
    relay, b_in = stomp_consumer(engine, "relay"), stomp_consumer(engine, "b-in")
    await wait_for(lambda: relay.connections == 1 and b_in.connections == 1, what="both routes subscribed")

    published = 0
    before_restart = threading.Event()

    def publish_all() -> None:
        nonlocal published
        publisher = Client(broker)
        deadline = time.monotonic() + 40
        try:
            for index in range(N):
                body, headers = str(index).encode(), {"esb-message-id": f"in-{index}"}
                publisher.publish_steadily(f"/queue/{a}", body, headers, deadline)
                published += 1
                if published == BEFORE:
                    before_restart.set()
                time.sleep(0.01)  # a steady stream, so the restart finds messages at every stage
        finally:
            publisher.close()

    publishing = asyncio.create_task(asyncio.to_thread(publish_all))
    assert await asyncio.to_thread(before_restart.wait, 30)
    await asyncio.to_thread(restart_broker, broker)
    await publishing
    assert relay.connections >= 2 and b_in.connections >= 2, "the restart did not cut the engine's connections"

    db = engine.journal.engine
    await wait_for(lambda: admin.route_counts(db).get("b-in", {}).get("processed", 0) >= N,
                   timeout=30, what=f"{N} messages through b-in")  # fmt: skip
    # the journal keeps each destination without its passcode
    kept_b, kept_copy = redact(to_b), redact(to_copy)
    assert ":***@" in kept_b and ":***@" in kept_copy
    await wait_for(lambda: admin.delivery_counts(db, [kept_b, kept_copy]) == {kept_b: {"delivered": N}, kept_copy: {
        "delivered": N}}, timeout=30, what="every delivery recorded as delivered")  # fmt: skip

    assert admin.route_counts(db)["relay"] == {"processed": N}  # no redelivery of A was journaled twice
    assert admin.route_counts(db)["b-in"] == {"processed": N}  # no repeat on B was journaled twice

    frames = await asyncio.to_thread(collect, broker, copy)
    by_body: dict[bytes, set[str]] = defaultdict(set)
    for frame in frames:
        by_body[frame.body].add(frame.headers["esb-message-id"])
    assert set(by_body) == {str(i).encode() for i in range(N)}  # nothing lost
    repeats = {body: ids for body, ids in by_body.items() if len(ids) > 1}
    assert repeats == {}, f"a repeat on B carries another esb-message-id: {repeats}"


def collect(broker: Broker, name: str) -> list[Frame]:
    """Every message of a queue, repeats included: read (and ACK) until N distinct bodies came and the
    broker counts none left in the queue, ready or unacknowledged."""
    reader = Client(broker)
    frames: list[Frame] = []
    deadline = time.monotonic() + 30
    try:
        reader.subscribe(f"/queue/{name}", "collector", ack="client-individual")
        while len({f.body for f in frames}) < N or queue_depth(name) > 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: {len(frames)} messages read, the queue is not drained in 30s")
            try:
                frames.append(reader.frames.get(timeout=0.5))
            except queue.Empty:
                continue
            reader.ack(frames[-1])
            while not reader.frames.empty():
                frames.append(reader.frames.get_nowait())
                reader.ack(frames[-1])
    finally:
        reader.close()
    return frames
