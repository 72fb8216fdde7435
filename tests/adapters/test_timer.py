"""``timer:`` with real engines: repeat, cron, and one fire per tick across nodes sharing a journal."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from adapters.timer import Schedule, TimerConsumer, TimerOptions
from esb.journal.schema import messages, timer_ticks
from esb.routes.lint import lint
from esb.runtime.context import EngineContext
from esb.runtime.engine import Engine
from esb.settings import Settings
from esb.uri import Duration
from tests.conftest import write_routes
from tests.support import StartEngine, wait_for


def fired(engine: Engine, route_id: str) -> list[dict[str, Any]]:
    query = sa.select(messages.c.headers, messages.c.body).where(messages.c.route_id == route_id)
    with engine.journal.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def route(route_id: str, source: str) -> str:
    return f'route:\n  id: {route_id}\n  from: "{source}"\n  steps:\n    - log: {{message: tick}}\n'


def consumer_of(engine: Engine, route_id: str) -> TimerConsumer:
    consumer = engine.routes[route_id].consumer
    assert isinstance(consumer, TimerConsumer)
    return consumer


def fired_at(row: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(row["headers"]["timer-fired-at"])


async def test_period_fires_repeat_times_on_aligned_ticks(
    tmp_path: Path, db_url: str, start_engine: StartEngine
) -> None:
    write_routes(tmp_path / "routes", {"beat": route("beat", "timer:beat?period=100ms&repeat=3&body=ping")})
    engine = await start_engine(db_url=db_url)
    consumer = consumer_of(engine, "beat")
    await wait_for(lambda: consumer.finished)
    rows = sorted(fired(engine, "beat"), key=fired_at)
    assert [r["headers"]["timer-count"] for r in rows] == ["1", "2", "3"]
    assert {r["body"] for r in rows} == {b"ping"} and {r["headers"]["timer-name"] for r in rows} == {"beat"}
    times = [fired_at(r) for r in rows]
    assert all(t.tzinfo == dt.UTC and t.microsecond % 100_000 == 0 for t in times), times
    assert all((b - a) >= dt.timedelta(milliseconds=100) for a, b in zip(times, times[1:], strict=False))
    assert (consumer.ticks, consumer.fired, consumer.lost) == (3, 3, 0)
    with engine.journal.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(timer_ticks)).scalar() == 3


async def test_cron_with_plus_for_spaces_and_delay(tmp_path: Path, start_engine: StartEngine) -> None:
    write_routes(tmp_path / "routes", {"cron": route("cron", "timer:sec?cron=*+*+*+*+*+*&repeat=2&delay=200ms")})
    started = dt.datetime.now(dt.UTC)
    engine = await start_engine()
    consumer = consumer_of(engine, "cron")
    await wait_for(lambda: consumer.finished, timeout=5)
    times = sorted(fired_at(r) for r in fired(engine, "cron"))
    assert len(times) == 2 and all(t.microsecond == 0 for t in times), times
    assert times[0] >= started + dt.timedelta(milliseconds=200)
    assert times[1] - times[0] == dt.timedelta(seconds=1)


#: runs of slow_tick going on now, and the most there ever were at once
RUNNING = {"now": 0, "most": 0}


async def slow_tick(exchange: Any) -> None:
    """A route step that outlasts the timer's period three times over."""
    RUNNING["now"] += 1
    RUNNING["most"] = max(RUNNING["most"], RUNNING["now"])
    try:
        await asyncio.sleep(0.35)
    finally:
        RUNNING["now"] -= 1


async def test_a_run_longer_than_the_period_is_not_overlapped_by_the_next_tick(
    tmp_path: Path, start_engine: StartEngine
) -> None:
    steps = "  steps:\n    - transform: {python: tests.adapters.test_timer:slow_tick}\n"
    text = 'route:\n  id: slow\n  from: "timer:slow?period=100ms&repeat=3"\n' + steps
    write_routes(tmp_path / "routes", {"slow": text})
    RUNNING.update(now=0, most=0)
    engine = await start_engine()
    consumer = consumer_of(engine, "slow")
    await wait_for(lambda: consumer.finished)
    assert RUNNING == {"now": 0, "most": 1}, "a tick waits for the last one's run to end"
    times = sorted(fired_at(r) for r in fired(engine, "slow"))
    assert len(times) == 3 == consumer.fired
    # the ticks the runs covered were skipped, not caught up afterwards
    assert all((b - a) >= dt.timedelta(milliseconds=300) for a, b in zip(times, times[1:], strict=False)), times


async def test_two_engines_fire_each_tick_once(tmp_path: Path, db_url: str, start_engine: StartEngine) -> None:
    write_routes(tmp_path / "routes", {"shared": route("shared", "timer:shared?period=100ms")})
    first = await start_engine(db_url=db_url, node_id="node-a")
    second = await start_engine(db_url=db_url, node_id="node-b")
    consumers = [consumer_of(first, "shared"), consumer_of(second, "shared")]

    def contended() -> bool:
        return sum(c.lost for c in consumers) >= 5 and all(c.ticks >= 5 for c in consumers)

    await wait_for(contended)
    for consumer in consumers:  # timers first, so no tick is claimed by an engine that is shutting down
        await consumer.stop()
    rows = fired(first, "shared")
    per_tick = Counter(r["headers"]["timer-fired-at"] for r in rows)
    assert per_tick and max(per_tick.values()) == 1, per_tick
    assert sum(c.fired for c in consumers) == len(rows)
    with first.journal.engine.connect() as conn:
        claimed = conn.execute(sa.select(timer_ticks.c.tick, timer_ticks.c.node)).all()
    assert len(claimed) == len(rows)
    assert {node for _, node in claimed} <= {"node-a", "node-b"}


def test_schedule_is_the_same_on_every_node() -> None:
    period = Schedule(TimerOptions(name="t", period=Duration(0.25)))
    assert period.first(1000.1) == 1000.25
    assert period.following(1000.25, now=1000.3) == 1000.5
    assert period.following(1000.25, now=1001.6) == 1001.75  # missed ticks are skipped, not caught up
    nightly = Schedule(TimerOptions(name="n", cron="0 2 * * *", timezone="Europe/Paris"))
    noon = dt.datetime(2024, 1, 15, 12, tzinfo=dt.UTC).timestamp()
    assert nightly.first(noon) == dt.datetime(2024, 1, 16, 1, tzinfo=dt.UTC).timestamp()
    exact = dt.datetime(2024, 1, 16, 1, tzinfo=dt.UTC).timestamp()
    assert nightly.first(exact) == exact


def test_lint_reports_bad_timer_options(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    write_routes(
        tmp_path / "routes",
        {
            "both": route("both", "timer:a?period=1s&cron=* * * * *"),
            "neither": route("neither", "timer:b"),
            "badcron": route("badcron", "timer:c?cron=61 * * * *"),
            "zone": route("zone", "timer:d?cron=0 2 * * *&timezone=Europe/Pariss"),
            "typo": route("typo", "timer:e?perod=1s"),
            "into": ('route:\n  id: into\n  from: "timer:f?period=1s"\n  steps:\n    - to: "timer:g?period=1s"\n'),
        },
    )
    errors = [str(e) for e in lint([tmp_path / "routes"], EngineContext(make_settings())).errors]
    text = "\n".join(errors)
    assert "timer:a: give exactly one of period or cron (got both)" in text
    assert "timer:b: give exactly one of period or cron (got neither)" in text
    assert "timer:c: cron expression '61 * * * *' is not valid" in text
    assert "timezone 'Europe/Pariss' is not known (did you mean 'Europe/Paris'?)" in text
    assert "unknown option 'perod' (did you mean 'period'?)" in text
    assert "timer:g: a timer only starts routes; it cannot be used in 'to:'" in text
    assert len(errors) == 6, errors
