"""Claims under concurrency: two engines on one staging table never take the same row.

PostgreSQL and MariaDB claim with row locks (FOR UPDATE SKIP LOCKED), SQLite with
status marks. Oracle, MS SQL and DB2 are not on this machine: their statements
are checked by compiling them with SQLAlchemy's dialects (no server involved).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite

from adapters.table.claim import Claimer, lock_supported
from adapters.table.consumer import TableConsumer
from adapters.table.database import staging_engine
from adapters.table.options import TableOptions
from esb.components import Outcome
from esb.exchange import DEDUP_KEY, Exchange
from esb.journal.schema import messages
from esb.runtime.engine import Engine
from esb.uri import Duration
from tests.adapters.table.conftest import MakeTable, insert_patients, patient_columns, rows, statuses
from tests.conftest import write_routes
from tests.support import StartEngine, wait_for

COUNT = 300


def journaled_keys(engine: Engine) -> list[int]:
    with engine.journal.engine.connect() as conn:
        return [int(h["table-key"]) for (h,) in conn.execute(sa.select(messages.c.headers))]


async def test_two_engines_never_take_the_same_row(
    tmp_path: Path, staging_url: str, make_table: MakeTable, start_engine: StartEngine
) -> None:
    staging = make_table()
    insert_patients(staging_url, staging, COUNT)
    source = f"table:{staging.name}?url={staging_url}&poll=10ms&batch=7&lease=30s"
    write_routes(tmp_path / "routes", {"feed": f'route:\n  id: feed\n  from: "{source}"\n  steps:\n    - log: row\n'})
    # separate journals: a row taken by both would be journaled in both
    first = await start_engine(node_id="node-a", db_url=f"sqlite:///{tmp_path}/a.db")
    second = await start_engine(node_id="node-b", db_url=f"sqlite:///{tmp_path}/b.db")
    await wait_for(lambda: set(statuses(staging_url, staging).values()) == {"done"}, timeout=30, what="all rows done")
    taken_a, taken_b = journaled_keys(first), journaled_keys(second)
    assert sorted(taken_a + taken_b) == list(range(1, COUNT + 1))  # each row once, in one journal only
    assert taken_a and taken_b  # both engines worked
    mode = "mark" if staging_url.startswith("sqlite") else "lock"
    consumers = [runner.consumer for e in (first, second) for runner in e.routes.values()]
    assert all(isinstance(c, TableConsumer) and c.claimer and c.claimer.mode == mode for c in consumers)


async def test_a_dead_nodes_mark_claims_are_taken_back_after_the_lease(staging_url: str, make_table: MakeTable) -> None:
    staging = make_table()
    insert_patients(staging_url, staging, 6)
    options = TableOptions(table=staging.name, url=staging_url, claim="mark", batch=4, lease=Duration(60))
    dead = Claimer(staging_engine(staging_url), staging, options, ["mrn"], node_id="dead-node")
    batch = dead.claim()  # ... and the node dies holding rows 1-4
    assert [row.key for row in batch.rows] == [(1,), (2,), (3,), (4,)]
    assert all(row.status == "new" for row in batch.rows)
    long_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=120)
    with staging_engine(staging_url).begin() as conn:
        conn.execute(staging.update().where(staging.c.id.in_([1, 2])).values(claimed_at=long_ago))
    taken: list[str] = []

    async def engine(exchange: Exchange, wait: bool) -> Outcome:
        taken.append(exchange.properties[DEDUP_KEY])
        return Outcome("m", "processed", exchange)

    live = TableConsumer(options, engine, "feed", "live-node")
    await live.poll()
    # rows 1-2 had a stale claim, 3-4 are still the dead node's (within its lease), 5-6 were pending
    assert sorted(taken) == [f"{staging.name}:{i}" for i in (1, 2, 5, 6)]
    assert statuses(staging_url, staging) == {1: "done", 2: "done", 3: "claimed", 4: "claimed", 5: "done", 6: "done"}
    assert {r["claimed_by"] for r in rows(staging_url, staging) if r["id"] in (3, 4)} == {batch.token}
    assert batch.token is not None and batch.token.startswith("dead-node/")


async def test_mark_claims_are_renewed_while_routes_run(tmp_path: Path, make_table: MakeTable) -> None:
    url = f"sqlite:///{tmp_path}/staging.db"
    staging = sa.Table("renewed", sa.MetaData(), *patient_columns())
    staging.create(staging_engine(url))
    insert_patients(url, staging, 1)
    release = asyncio.Event()
    seen: list[Any] = []

    async def slow_engine(exchange: Exchange, wait: bool) -> Outcome:
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

        async def route() -> None:
            await release.wait()
            done.set_result(Outcome("m", "processed", exchange))

        seen.append(asyncio.create_task(route()))
        return Outcome("m", "accepted", exchange, done=done)

    options = TableOptions(table="renewed", url=url, claim="mark", lease=Duration(0.2), poll=Duration(0.01))
    consumer = TableConsumer(options, slow_engine, "feed", "node-a")
    polling = asyncio.create_task(consumer.poll())
    await wait_for(lambda: bool(seen), what="row handed over")
    first_claim = rows(url, staging)[0]["claimed_at"]
    await wait_for(lambda: rows(url, staging)[0]["claimed_at"] != first_claim, what="claim renewed")
    assert consumer.claimer is not None and consumer.claimer.take_back_stale() == 0
    release.set()
    await polling
    assert statuses(url, staging) == {1: "done"}


async def test_a_row_that_cannot_be_read_or_mapped_is_failed_and_the_batch_goes_on(
    staging_url: str, make_table: MakeTable
) -> None:
    """Bad data in the table itself: the row is failed with the column named, the others go through."""
    if staging_url.startswith("mysql"):
        pytest.skip("MariaDB stores neither malformed dates nor NaN")
    columns = [*patient_columns(), sa.Column("score", sa.Float)]
    staging = make_table(columns)
    insert_patients(staging_url, staging, 4)
    with staging_engine(staging_url).begin() as conn:
        if staging_url.startswith("sqlite"):  # a legacy table with text in a date column
            conn.execute(sa.text(f"UPDATE {staging.name} SET birth_date = '1990-13-45' WHERE id = 2"))
        else:
            conn.execute(staging.update().where(staging.c.id == 2).values(score=math.nan))
    handed: list[str] = []

    async def engine(exchange: Exchange, wait: bool) -> Outcome:
        handed.append(exchange.headers["table-key"])
        return Outcome("m", "processed", exchange)

    options = TableOptions(table=staging.name, url=staging_url, error="error")
    await TableConsumer(options, engine, "feed", "n").poll()
    assert handed == ["1", "3", "4"]
    with staging_engine(staging_url).connect() as conn:
        marked = conn.execute(sa.select(staging.c.status, staging.c.error).where(staging.c.id == 2)).one()
    assert marked.status == "failed" and statuses(staging_url, staging)[3] == "done"
    if staging_url.startswith("sqlite"):
        reason = "reading: column 'birth_date' cannot be read (ValueError)"
    else:
        reason = "mapping: column 'score': a float that is not finite (NaN or infinity) has no JSON form"
    assert marked.error == reason[:40]  # cut to the column's String(40)


def claimer_for(dialect: sa.Dialect, options: TableOptions) -> Claimer:
    """A Claimer whose statements are compiled for ``dialect`` without a server."""
    table = sa.Table("his_patients", sa.MetaData(), *patient_columns())
    engine = sa.create_engine("sqlite://")
    claimer = Claimer.__new__(Claimer)
    claimer.engine = engine
    claimer.table = table
    claimer.options = options
    claimer.node_id = "n"
    claimer.key = ["id"]
    claimer.mode = "lock" if options.claim == "lock" else "mark"
    claimer.read = ["id", "status", "mrn"]
    claimer.order = [table.c.id]
    claimer.error_length = 40
    claimer._pending = table.c.status.in_(list(options.pending))
    claimer._mark = claimer._mark_statement()
    engine.dialect = dialect  # compile-only: statements render for the target dialect
    return claimer


def sql(statement: sa.ClauseElement, dialect: sa.Dialect) -> str:
    return " ".join(str(statement.compile(dialect=dialect)).split())


def test_compile_only_oracle_lock_claim_has_skip_locked_and_no_row_limit() -> None:
    """Compile-only check (no Oracle server here): ORA-02014 forbids FETCH FIRST with FOR UPDATE."""
    dialect = oracle.dialect()
    claimer = claimer_for(dialect, TableOptions(table="his_patients", url="oracle+oracledb://", claim="lock"))
    text = sql(claimer.lock_statement(), dialect)
    assert text.endswith("ORDER BY his_patients.id FOR UPDATE SKIP LOCKED")
    assert "FETCH" not in text and "ROWNUM" not in text


@pytest.mark.parametrize("dialect", [postgresql.dialect(), mysql.dialect(is_mariadb=True), mysql.dialect()])
def test_compile_only_lock_claim_limits_the_batch(dialect: sa.Dialect) -> None:
    claimer = claimer_for(dialect, TableOptions(table="his_patients", url="x://", claim="lock", batch=5))
    text = sql(claimer.lock_statement(), dialect)
    assert " LIMIT " in text and text.endswith("FOR UPDATE SKIP LOCKED")


@pytest.mark.parametrize("dialect", [mssql.dialect(), sqlite.dialect()], ids=["mssql", "sqlite"])
def test_compile_only_mark_claim_is_a_conditional_update(dialect: sa.Dialect) -> None:
    """Compile-only for MS SQL (and DB2, which takes the same portable SQL): no row locks, a conditional mark."""
    claimer = claimer_for(dialect, TableOptions(table="his_patients", url="mssql+pyodbc://", claim="mark", batch=5))
    candidates = sql(claimer.candidates_statement(), dialect)
    assert "FOR UPDATE" not in candidates
    assert candidates.startswith("SELECT TOP __[POSTCOMPILE_param_1]" if dialect.name == "mssql" else "SELECT")
    mark = sql(claimer._mark, dialect)
    assert mark.startswith("UPDATE his_patients SET status=")
    assert "WHERE his_patients.id = " in mark and "AND his_patients.claimed_by = " in mark


def test_lock_is_chosen_only_where_skip_locked_exists() -> None:
    def engine_for(dialect: sa.Dialect, version: tuple[int, ...]) -> sa.Engine:
        engine = sa.create_engine("sqlite://")
        dialect.server_version_info = version
        engine.dialect = dialect
        return engine

    assert lock_supported(engine_for(postgresql.dialect(), (12, 0)))
    assert lock_supported(engine_for(oracle.dialect(), (19, 0)))
    assert lock_supported(engine_for(mysql.dialect(), (8, 0, 1)))
    assert not lock_supported(engine_for(mysql.dialect(), (5, 7, 40)))
    assert lock_supported(engine_for(mysql.dialect(is_mariadb=True), (10, 6, 2)))
    assert not lock_supported(engine_for(mysql.dialect(is_mariadb=True), (10, 5, 9)))
    assert not lock_supported(engine_for(mssql.dialect(), (16, 0)))
    assert not lock_supported(engine_for(sqlite.dialect(), (3, 40)))
