"""ACCEPTANCE: an engine killed mid-batch resumes exactly where it stopped (real process, real SIGKILL).

A backfill of a few thousand PostgreSQL rows runs in an ``esb run`` subprocess;
it is killed with SIGKILL in the middle of a batch (rows journaled past the
checkpoint, some still in their route) and started again. Every row must then
be in the journal exactly once (one message per dedup key, all processed),
the new run must start at the checkpoint the dead one left, and the job's
checkpoint must end at the last row.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.etl import schema as t
from esb.journal import database
from tests.durability.test_kill9 import EngineProcess, wait_until
from tests.etl import helpers as h
from tests.etl.conftest import T0, HisDb

pytestmark = pytest.mark.slow

ROWS = 2000
BATCH = 400


@pytest.fixture
def engines() -> Iterator[list[EngineProcess]]:
    started: list[EngineProcess] = []
    yield started
    for engine in started:
        if engine.process is not None and engine.process.poll() is None:
            engine.process.kill()
            engine.process.wait()


async def test_a_killed_backfill_resumes_where_it_stopped_and_loads_every_row_once(
    tmp_path: Path, pg_source_url: str, engines: list[EngineProcess]
) -> None:
    his = HisDb(pg_source_url)
    # ten rows per timestamp, so batch boundaries fall inside watermark ties
    rows = [{"patient_no": f"P{n:05d}", "name": f"患者{n}", "sex": "1", "birth_date": "1980-01-01",
             "created_at": T0, "updated_at": T0 + dt.timedelta(seconds=n // 10)} for n in range(ROWS)]  # fmt: skip
    with his.engine.begin() as conn:
        conn.execute(his.table.insert(), rows)
    uri = his.uri(batch=BATCH, parallel=4, poll="100ms")
    route = f'route:\n  id: backfill\n  from: "{uri}"\n  steps:\n    - transform: {{python: tests.etl.helpers:pause}}\n'
    db_url = f"sqlite:///{tmp_path}/var/esb.db"  # the journal (a PostgreSQL journal changes nothing here)
    engine = EngineProcess(tmp_path, {"backfill": route}, db_url=db_url, ESB_NODE_ID="etl-node")
    engines.append(engine)
    journal = database.make_engine(db_url)
    try:
        engine.start()
        await engine.wait_ready()
        # kill inside the second or third batch: past a checkpoint, with rows of the batch in flight
        await wait_until(lambda: count(journal) >= BATCH + BATCH // 2, 60, "the backfill to be under way")
        engine.kill9()
        before = Counter(m["key"] for m in h.journaled(journal, "backfill"))
        stopped_at = h.checkpoint(journal, "backfill")["last_key"]
        assert stopped_at is not None and stopped_at < f"P{ROWS - 1:05d}", "the kill came too late"
        ahead = sum(1 for key in before if key > stopped_at)
        assert ahead > 0, "the kill did not land mid-batch"

        engine.start()
        await engine.wait_ready()
        last = f"P{ROWS - 1:05d}"
        await wait_until(lambda: h.checkpoint(journal, "backfill")["last_key"] == last, 60, "the checkpoint at the end")
        await wait_until(lambda: finished(journal), 30, "every message processed")
        assert engine.terminate() == 0

        messages = h.journaled(journal, "backfill")
        assert Counter(m["key"] for m in messages) == Counter(r["patient_no"] for r in rows)  # once each
        assert {m["status"] for m in messages} == {"processed"}
        dead, *resumed = h.runs(journal, "backfill")
        assert (dead["mode"], dead["status"]) == ("backfill", t.INTERRUPTED)
        # the new run read from the dead run's checkpoint: the rows after it, those journaled before the kill
        # being answered "duplicate" (skipped) by the journal and never loaded twice
        assert sum(r["rows_read"] for r in resumed) == sum(1 for r in rows if r["patient_no"] > stopped_at)
        assert sum(r["rows_skipped"] for r in resumed) == ahead
        assert dead["rows_read"] + sum(r["rows_read"] for r in resumed) == ROWS
    finally:
        journal.dispose()
        his.drop()


def count(journal: sa.Engine) -> int:
    try:
        return len(h.journaled(journal, "backfill"))
    except sa.exc.OperationalError:  # the engine has not created its tables yet
        return 0


def finished(journal: sa.Engine) -> bool:
    return {m["status"] for m in h.journaled(journal, "backfill")} == {"processed"}
