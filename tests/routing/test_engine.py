"""Engine lifecycle: admin endpoints, refusing bad config, draining at shutdown, backpressure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from esb.errors import LintError
from esb.exchange import Exchange
from esb.journal import admin
from esb.runtime.engine import Engine
from esb.settings import Settings
from tests.conftest import write_routes
from tests.routing.helpers import CALLS

ECHO = """
    route:
      id: ping
      from: seda:ping
      steps:
        - to: service:echo/echo
"""


async def test_health_ready_and_metrics(tmp_path: Path, start_engine: Callable[..., Awaitable[Engine]]) -> None:
    write_routes(tmp_path / "routes", {"ping": ECHO})
    engine = await start_engine()
    outcome = await engine.context.local_endpoints["seda:ping"](Exchange(body=b"x"), True)
    assert outcome.status == "processed"
    base = f"http://127.0.0.1:{engine.http_port}"
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{base}/healthz") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ok"
        async with client.get(f"{base}/readyz") as response:
            assert response.status == 200
            assert (await response.json())["routes"] == ["ping"]
        async with client.get(f"{base}/metrics") as response:
            text = await response.text()
        async with client.get(f"{base}/nothing-here") as response:
            assert response.status == 404
    assert 'esb_route_received_total{route="ping"} 1.0' in text
    assert 'esb_route_processed_total{route="ping"} 1.0' in text
    assert 'esb_route_latency_seconds_count{route="ping"} 1.0' in text


async def test_engine_refuses_a_config_that_does_not_lint(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    write_routes(
        tmp_path / "routes",
        {"bad": "route:\n  id: bad\n  from: seda:bad\n  steps:\n    - transfrom: {python: x:y}\n"},
    )
    engine = Engine(make_settings())
    with pytest.raises(LintError) as caught:
        await engine.start()
    assert "bad.yaml:5:7: step: unknown key 'transfrom' (did you mean 'transform'?)" in str(caught.value)
    engine.journal.close()


async def test_shutdown_drains_in_flight_exchanges(
    tmp_path: Path, make_settings: Callable[..., Settings], db_url: str
) -> None:
    write_routes(
        tmp_path / "routes",
        {
            "slow": """
                route:
                  id: slow
                  from: seda:slow
                  steps:
                    - transform: {python: "tests.routing.helpers:slow"}
            """
        },
    )
    CALLS.clear()
    engine = Engine(make_settings(db_url=db_url))
    await engine.start()
    handler = engine.context.local_endpoints["seda:slow"]
    for index in range(5):
        outcome = await handler(Exchange(body=str(index).encode()), False)
        assert outcome.status == "accepted"
    await engine.stop()
    assert sorted(CALLS) == ["0", "1", "2", "3", "4"]
    from esb.journal import Journal

    journal = Journal(db_url)
    statuses = {m["status"] for m in admin.list_messages(journal.engine, route="slow")}
    journal.close()
    assert statuses == {"processed"}


async def test_max_pending_applies_backpressure(tmp_path: Path, start_engine: Callable[..., Awaitable[Engine]]) -> None:
    write_routes(
        tmp_path / "routes",
        {
            "slow": """
                route:
                  id: slow
                  from: seda:slow
                  concurrency: 1
                  max_pending: 2
                  steps:
                    - transform: {python: "tests.routing.helpers:slow"}
            """
        },
    )
    engine = await start_engine()
    handler = engine.context.local_endpoints["seda:slow"]
    await handler(Exchange(body=b"1"), False)
    await handler(Exchange(body=b"2"), False)
    third = asyncio.create_task(handler(Exchange(body=b"3"), False))
    await asyncio.sleep(0.1)
    assert not third.done(), "a third message must wait while two are pending"
    outcome = await asyncio.wait_for(third, timeout=5)
    assert outcome.status == "accepted"
