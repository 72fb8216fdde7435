"""A destination's password reaches the broker, never the journal: deliveries keep the redacted URI.

The route file names the passcode as ``${STOMP_TEST_PASSCODE}``; the engine
queues the delivery, the journal row shows ``***`` where the passcode was, and
the delivery worker still logs in to the real RabbitMQ with the real one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from esb.errors import DeliveryError
from esb.exchange import Exchange
from esb.journal.schema import deliveries
from esb.runtime.context import EngineContext
from esb.settings import Settings
from tests.adapters.stomp.support import Broker, Client
from tests.conftest import write_routes
from tests.support import StartEngine, wait_for


def destinations(engine_url: str) -> list[tuple[str, str]]:
    db = sa.create_engine(engine_url)
    try:
        with db.connect() as conn:
            return [(r.destination, r.status) for r in conn.execute(sa.select(deliveries))]
    finally:
        db.dispose()


async def test_the_journal_keeps_the_destination_without_its_password_and_delivery_still_logs_in(
    tmp_path: Path,
    start_engine: StartEngine,
    broker: Broker,
    client: Client,
    queue_name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = queue_name("secret")
    client.subscribe(f"/queue/{name}", "peer")
    monkeypatch.setenv("STOMP_TEST_PASSCODE", broker.passcode)
    target = f"stomp://{broker.login}:${{STOMP_TEST_PASSCODE}}@{broker.host}:{broker.port}/queue/{name}"
    text = f'route:\n  id: out\n  from: seda:out\n  steps:\n    - to: "{target}"\n'
    write_routes(tmp_path / "routes", {"out": text})
    engine = await start_engine()
    handler = engine.context.local_endpoints["seda:out"]
    assert (await handler(Exchange(body=b"to the broker"), True)).status == "processed"
    received = await asyncio.to_thread(client.get)
    assert received.body == b"to the broker"
    shown = f"stomp://{broker.login}:***@{broker.host}:{broker.port}/queue/{name}"
    await wait_for(lambda: destinations(engine.settings.db_url) == [(shown, "delivered")])


def test_one_destination_with_two_passwords_is_refused_and_an_unknown_redacted_one_is_not_guessed(
    make_settings: Callable[..., Settings],
) -> None:
    context = EngineContext(make_settings())
    first = "stomp://u:one@127.0.0.1:61613/queue/a"
    assert context.stored_destination(first) == "stomp://u:***@127.0.0.1:61613/queue/a"
    assert context.stored_destination(first) == "stomp://u:***@127.0.0.1:61613/queue/a"  # the same route twice
    assert context.real_destination("stomp://u:***@127.0.0.1:61613/queue/a") == first
    with pytest.raises(Exception, match="two different passwords"):
        context.stored_destination("stomp://u:two@127.0.0.1:61613/queue/a")
    assert context.stored_destination("mllp://127.0.0.1:2575") == "mllp://127.0.0.1:2575"
    assert context.real_destination("mllp://127.0.0.1:2575") == "mllp://127.0.0.1:2575"  # rows of old, too
    with pytest.raises(DeliveryError, match="no route on this node sends to"):
        context.real_destination("stomp://u:***@127.0.0.1:61613/queue/elsewhere")
