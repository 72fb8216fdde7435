"""Scheduled ETL jobs: each cron tick runs once per cluster, and a run left by a dead node resumes at start."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.etl import schema as t
from adapters.etl.source import Position
from adapters.etl.state import BatchResult, Counts, JobState
from esb.journal import database, utcnow
from esb.journal.schema import timer_ticks
from tests.etl import helpers as h
from tests.etl.conftest import T0, HisDb, patient
from tests.support import StartEngine, wait_for


async def test_each_tick_runs_the_job_once_across_nodes_and_logs_counts_only(
    tmp_path: Path, sqlite_his: HisDb, start_engine: StartEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="esb.adapters.etl")
    sqlite_his.insert(*(patient(n) for n in range(1, 7)))
    uri = sqlite_his.uri(batch=4, schedule="* * * * * *")  # every second (a 6th cron field is seconds)
    h.write_route(tmp_path / "routes", "daily", h.patients_route("daily", uri))
    shared = f"sqlite:///{tmp_path}/shared.db"
    one = await start_engine(db_url=shared, node_id="node-1")
    two = await start_engine(db_url=shared, node_id="node-2")
    db = one.journal.engine
    consumers = [h.consumer_of(one, "daily"), h.consumer_of(two, "daily")]
    await wait_for(lambda: sum(len(c.reports) for c in consumers) >= 3, what="three ticks' runs")
    await one.stop()
    await two.stop()

    runs = h.runs(db, "daily")
    with db.connect() as conn:
        ticks = conn.execute(sa.select(sa.func.count()).where(timer_ticks.c.route_id == "daily")).scalar_one()
    assert len(runs) == sum(len(c.reports) for c in consumers) <= ticks  # a tick is run by one node only
    assert [(r["mode"], r["rows_read"]) for r in runs[:2]] == [("backfill", 6), ("incremental", 0)]
    # every run finished, except that the engines' stop may have cut the last tick's run short
    assert {r["status"] for r in runs[:-1]} == {t.DONE} and runs[-1]["status"] in (t.DONE, t.INTERRUPTED)
    assert Counter(m["key"] for m in h.journaled(db, "daily")) == {f"P000{n}": 1 for n in range(1, 7)}
    summary = [r.getMessage() for r in caplog.records if "backfill run" in r.getMessage()]
    assert len(summary) == 1 and "read 6, loaded 6, rejected 0, skipped 0 in " in summary[0]
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "P000" not in logged and "张" not in logged  # no patient data above DEBUG


async def test_a_run_left_by_a_dead_node_resumes_when_an_engine_starts(
    tmp_path: Path, sqlite_his: HisDb, start_engine: StartEngine
) -> None:
    sqlite_his.insert(*(patient(n) for n in range(1, 6)))
    shared = f"sqlite:///{tmp_path}/shared.db"
    journal = database.make_engine(shared)
    database.upgrade(journal)
    # a node took the job an hour ago, loaded two rows and died: its lease ran out long since
    dead = JobState(journal, "nightly", "dead-node", 60, clock=lambda: utcnow() - dt.timedelta(hours=1))
    assert dead.acquire() == (True, 0)
    run_id = dead.start_run(t.BACKFILL)
    dead.commit(run_id, BatchResult(Counts(read=2, loaded=2)), Position(T0 + dt.timedelta(minutes=2), "P0002"))
    journal.dispose()

    uri = sqlite_his.uri(schedule="0 2 * * *")  # the next tick is hours away
    h.write_route(tmp_path / "routes", "nightly", h.patients_route("nightly", uri))
    engine = await start_engine(db_url=shared)
    consumer = h.consumer_of(engine, "nightly")
    await wait_for(lambda: h.idle(consumer, 1), what="the resumed run")
    assert [m["key"] for m in h.journaled(engine.journal.engine, "nightly")] == ["P0003", "P0004", "P0005"]
    old, new = h.runs(engine.journal.engine, "nightly")
    assert (old["status"], old["rows_read"]) == (t.INTERRUPTED, 2)
    assert (new["mode"], new["status"], new["rows_read"], new["owner"]) == ("incremental", t.DONE, 3, "test-node")
    assert h.checkpoint(engine.journal.engine, "nightly")["owner"] is None  # given back after the run
