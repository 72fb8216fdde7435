"""One node runs a job at a time: the lease in the checkpoint row, its expiry, and two engines on one job."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.etl import schema as t
from adapters.etl.source import Position
from adapters.etl.state import BatchResult, Counts, JobState, LeaseLostError, Reject
from esb.journal import database
from tests.etl import helpers as h
from tests.etl.conftest import T0, HisDb, patient
from tests.support import StartEngine, wait_for


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2024, 6, 1, 2, 0, 0)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def journal_db(db_url: str) -> Iterator[sa.Engine]:
    engine = database.make_engine(db_url)
    database.upgrade(engine)
    yield engine
    engine.dispose()


def test_the_lease_goes_to_one_node_and_moves_only_when_it_runs_out(journal_db: sa.Engine) -> None:
    clock = Clock()
    a = JobState(journal_db, "nightly", "node-a", 60, clock)
    b = JobState(journal_db, "nightly", "node-b", 60, clock)
    assert a.acquire() == (True, 0)
    assert b.acquire() == (False, 0)
    assert a.acquire() == (True, 0)  # a holder may take its own job again (a restarted node)
    run_a = a.start_run(t.BACKFILL)
    a.commit(run_a, BatchResult(Counts(read=2, loaded=2)), Position(T0, "P0002"))
    clock.now += dt.timedelta(seconds=59)
    assert a.renew() and b.acquire() == (False, 0)

    clock.now += dt.timedelta(seconds=61)  # node-a died: its lease ran out
    assert b.acquire() == (True, 1)  # and its run is marked interrupted
    assert h.runs(journal_db, "nightly")[0]["status"] == t.INTERRUPTED
    assert b.position() == Position(T0, "P0002")
    late = BatchResult(Counts(read=1, rejected=1), rejects=[Reject("P0003", "w", "boom", "{}", None)])
    with pytest.raises(LeaseLostError, match="another node took the ETL job over"):
        a.commit(run_a, late, Position(T0, "P0003"))
    assert not a.renew()
    assert h.rejects(journal_db, "nightly") == {}  # the late batch wrote nothing at all
    assert h.runs(journal_db, "nightly")[0]["rows_read"] == 2
    assert b.position() == Position(T0, "P0002")
    b.release()
    assert a.acquire() == (True, 0)


async def test_two_engines_never_run_one_job_at_once(
    tmp_path: Path, sqlite_his: HisDb, start_engine: StartEngine
) -> None:
    his = sqlite_his
    his.insert(*(patient(n) for n in range(1, 9)))
    h.write_route(tmp_path / "routes", "his-patients", h.patients_route("his-patients", his.uri(batch=3, poll="50ms")))
    shared = f"sqlite:///{tmp_path}/shared.db"
    one = await start_engine(db_url=shared, node_id="node-1")
    two = await start_engine(db_url=shared, node_id="node-2")
    db = one.journal.engine
    first, second = h.consumer_of(one, "his-patients"), h.consumer_of(two, "his-patients")
    await wait_for(lambda: len(h.journaled(db, "his-patients")) == 8, what="the backfill")
    holder, standby = (first, second) if first.job.held else (second, first)
    stopped = one if holder is first else two
    assert holder.job.held and not standby.job.held and standby.reports == []
    assert {r["owner"] for r in h.runs(db, "his-patients")} == {holder.job.state.owner}

    owner = holder.job.state.owner
    await stopped.stop()  # a clean stop gives the job back; the other node takes it at its next poll
    # given back (None), or already taken by the standby's poll (50 ms) while the stop finished
    assert h.checkpoint(db, "his-patients")["owner"] in (None, standby.job.state.owner)
    assert owner != standby.job.state.owner
    his.insert(patient(9, updated_at=T0 + dt.timedelta(hours=1)))
    await wait_for(lambda: len(h.journaled(db, "his-patients")) == 9, what="the standby's read")
    assert standby.job.held
    assert h.runs(db, "his-patients")[-1]["owner"] == standby.job.state.owner
    assert Counter(m["key"] for m in h.journaled(db, "his-patients")) == {f"P000{n}": 1 for n in range(1, 10)}


async def test_a_node_that_lost_the_job_writes_nothing_and_takes_it_back_later(
    tmp_path: Path, sqlite_his: HisDb, start_engine: StartEngine
) -> None:
    his = sqlite_his
    his.insert(*(patient(n) for n in range(1, 4)))
    h.write_route(tmp_path / "routes", "his-patients", h.patients_route("his-patients", his.uri(poll="50ms")))
    engine = await start_engine()
    db, consumer = engine.journal.engine, h.consumer_of(engine, "his-patients")
    await wait_for(lambda: h.idle(consumer, 1), what="the first run")

    # another node takes the job over, as if this node's lease had run out while it was busy
    far = dt.datetime(2100, 1, 1)
    with db.begin() as conn:
        conn.execute(sa.update(t.checkpoints).values(owner="node-x", lease_until=far))
    his.insert(patient(4, updated_at=T0 + dt.timedelta(hours=1)))
    await wait_for(lambda: consumer.job.lost.is_set(), what="the node letting go")
    failed = h.runs(db, "his-patients")[-1]
    assert (failed["status"], failed["error"].split(":")[0]) == (t.FAILED, "LeaseLostError")
    point = h.checkpoint(db, "his-patients")
    assert (point["owner"], point["last_key"]) == ("node-x", "P0003")  # the late batch moved nothing
    assert not consumer.job.held and consumer._task is not None and not consumer._task.done()  # still polling

    # node-x gives the job back: this node takes it again; the row it handed over meanwhile is not loaded twice
    with db.begin() as conn:
        conn.execute(sa.update(t.checkpoints).values(owner=None, lease_until=None))
    await wait_for(lambda: h.checkpoint(db, "his-patients")["last_key"] == "P0004", what="the job taken back")
    assert Counter(m["key"] for m in h.journaled(db, "his-patients")) == {f"P000{n}": 1 for n in range(1, 5)}
    assert h.runs(db, "his-patients")[-1]["rows_skipped"] == 1
