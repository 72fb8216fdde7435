"""EMPI events on a STOMP topic: a listener in config/listeners.yaml with a ``stomp:`` URI, fed through service:empi."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from esb.journal import admin
from esb.uri import redact
from tests.adapters.stomp.support import Broker, Client, unique
from tests.conftest import write_routes
from tests.empi.test_service import ROUTES, ZHANG_HIS, adt, send
from tests.support import StartEngine, wait_for


async def test_an_empi_feed_publishes_a_json_event_on_a_topic(
    tmp_path: Path, start_engine: StartEngine, broker: Broker, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"/topic/{unique('empi.events')}"
    destination = broker.uri(topic, forward_headers="empi-event")
    (tmp_path / "listeners.yaml").write_text(f"listeners:\n  - {{name: hub, uri: '{destination}', format: json}}\n")
    monkeypatch.setenv("ESB_EMPI_LISTENERS", str(tmp_path / "listeners.yaml"))
    client.subscribe(topic, "hub-peer")
    write_routes(tmp_path / "routes", ROUTES)
    engine = await start_engine()

    reply = await send(engine, adt("A01", "c1", ZHANG_HIS))
    frame = await asyncio.to_thread(client.get, 15.0)
    event = json.loads(frame.body)
    assert event["event"] == "registered" and event["person_id"] == reply.headers["empi-person"]
    assert (event["patient"]["value"], event["patient"]["namespace"]) == ("H100", "HIS1")
    assert frame.headers["content-type"] == "application/json" and frame.headers["persistent"] == "true"
    assert frame.headers["empi-event"] == "registered"
    kept = redact(destination)  # the journal keeps the listener's URI without its passcode
    await wait_for(lambda: [d["status"] for d in admin.deliveries_to(engine.journal.engine, kept)] == [
        "delivered"
    ], what="the delivery recorded as delivered")  # fmt: skip
    (sent,) = admin.deliveries_to(engine.journal.engine, kept)
    assert frame.headers["esb-message-id"] == sent["id"]
