"""Acceptance: an engine killed mid-batch resumes exactly where it stopped (real processes, real PostgreSQL).

A PostgreSQL staging table of 2000 rows feeds a route (lock claims, wait=true)
that writes each row to a second table. The engine is SIGKILLed while a batch
is in flight (rows journaled but not yet marked), started again, and then every
row must be done, the journal must hold exactly one message per row key, and
the downstream table must hold each row once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.table.database import staging_engine
from esb.journal.schema import deliveries, messages
from tests.adapters.table.conftest import insert_patients, patient_columns, unique
from tests.durability.test_kill9 import EngineProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.pg]

ROWS = 2000


@pytest.fixture
def engines() -> Iterator[list[EngineProcess]]:
    started: list[EngineProcess] = []
    yield started
    for engine in started:
        if engine.process is not None and engine.process.poll() is None:
            engine.process.kill()
            engine.process.wait()


def count(url: str, query: sa.Select[Any]) -> int:
    with staging_engine(url).connect() as conn:
        return int(conn.execute(query).scalar_one())


def journaled(journal_url: str) -> list[tuple[str, str]]:
    """(row key, status) of every journaled message."""
    engine = sa.create_engine(journal_url)
    try:
        with engine.connect() as conn:
            return [(h["table-key"], s) for h, s in conn.execute(sa.select(messages.c.headers, messages.c.status))]
    finally:
        engine.dispose()


async def test_an_engine_killed_mid_batch_resumes_exactly_where_it_stopped(
    tmp_path: Path, pg_staging_url: str, engines: list[EngineProcess]
) -> None:
    url = pg_staging_url
    staging = sa.Table(unique("his"), sa.MetaData(), *patient_columns())
    out = sa.Table(
        unique("out"),
        sa.MetaData(),
        sa.Column("source_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("mrn", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100)),
    )
    for table in (staging, out):
        table.create(staging_engine(url))
    insert_patients(url, staging, ROWS)
    route = f"""
        route:
          id: his-feed
          from: "table:{staging.name}?url={url}&poll=50ms&batch=100&claim=lock&error=error"
          steps:
            - transform: {{python: "tests.adapters.table.helpers:pause"}}
            - transform: {{python: "tests.adapters.table.helpers:to_out_row"}}
            - to: "table:{out.name}?url={url}&mode=upsert"
    """
    journal_url = f"sqlite:///{tmp_path}/journal.db"
    engine = EngineProcess(tmp_path, {"his-feed": route}, db_url=journal_url)
    engines.append(engine)
    done = sa.select(sa.func.count()).select_from(staging).where(staging.c.status == "done")

    def mid_batch() -> bool:
        finished = count(url, done)
        return 300 <= finished < ROWS - 300 and len(journaled(journal_url)) > finished

    engine.start()
    await engine.wait_ready()
    await wait_until(mid_batch, 60, "rows journaled beyond those marked done")
    engine.kill9()
    finished_at_kill = count(url, done)
    assert finished_at_kill < ROWS

    engine.start()
    await engine.wait_ready()
    await wait_until(lambda: count(url, done) == ROWS, 60, "every row done")
    await wait_until(
        lambda: count(url, sa.select(sa.func.count()).select_from(out)) == ROWS, 60, "every row downstream"
    )
    assert engine.terminate() == 0

    held = journaled(journal_url)
    per_key = Counter(key for key, _ in held)
    assert sorted(int(key) for key in per_key) == list(range(1, ROWS + 1))
    assert set(per_key.values()) == {1}  # exactly one message per row: nothing processed twice
    assert {status for _, status in held} == {"processed"}
    journal = sa.create_engine(journal_url)
    with journal.connect() as conn:
        states = Counter(s for (s,) in conn.execute(sa.select(deliveries.c.status)))
    journal.dispose()
    assert states == {"delivered": ROWS}
    with staging_engine(url).connect() as conn:
        downstream = conn.execute(sa.select(out.c.source_id, out.c.mrn).order_by(out.c.source_id)).all()
        failed = conn.execute(sa.select(sa.func.count()).where(staging.c.status != "done")).scalar_one()
    assert [tuple(r) for r in downstream] == [(i, f"MRN{i:06d}") for i in range(1, ROWS + 1)]
    assert failed == 0
