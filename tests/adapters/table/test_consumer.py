"""``from: table:`` with real engines against real databases: rows in, marked done or failed, never twice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Literal

import pytest
import sqlalchemy as sa

from adapters.table.consumer import TableConsumer
from adapters.table.database import staging_engine
from adapters.table.options import TableOptions
from esb.components import Outcome
from esb.errors import EngineStoppingError
from esb.exchange import Exchange
from esb.journal.schema import messages
from esb.runtime.engine import Engine
from tests.adapters.table.conftest import MakeTable, insert_patients, rows, statuses, unique
from tests.conftest import write_routes
from tests.support import StartEngine, wait_for


def journal(engine: Engine, route_id: str) -> list[dict[str, Any]]:
    query = sa.select(messages.c.status, messages.c.headers, messages.c.body).where(messages.c.route_id == route_id)
    with engine.journal.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def settled(url: str, table: sa.Table, count: int) -> bool:
    values = statuses(url, table)
    return len(values) == count and not {"new", "claimed"} & set(values.values())


def out_table(make_table: MakeTable) -> sa.Table:
    return make_table(
        [
            sa.Column("source_id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("mrn", sa.String(32), nullable=False),
            sa.Column("name", sa.String(100)),
            sa.Column("status", sa.String(16)),
        ],
        name=unique("out"),
    )


async def test_rows_are_marked_done_or_failed_with_the_reason(
    tmp_path: Path, staging_url: str, make_table: MakeTable, start_engine: StartEngine
) -> None:
    staging, out = make_table(), out_table(make_table)
    insert_patients(staging_url, staging, 25)
    with staging_engine(staging_url).begin() as conn:
        conn.execute(staging.update().where(staging.c.id.in_([7, 19])).values(name="BAD name"))
    source = f"table:{staging.name}?url={staging_url}&poll=50ms&batch=10&error=error&processed_at=processed_at"
    write_routes(
        tmp_path / "routes",
        {
            "feed": f"""
                route:
                  id: feed
                  from: "{source}"
                  steps:
                    - validate: {{python: "tests.adapters.table.helpers:refuse_flagged"}}
                    - transform: {{python: "tests.adapters.table.helpers:to_out_row"}}
                    - to: "table:{out.name}?url={staging_url}&mode=upsert&constants=status:new"
            """
        },
    )
    engine = await start_engine()
    await wait_for(lambda: settled(staging_url, staging, 25), what="every row marked")
    await wait_for(lambda: len(rows(staging_url, out)) == 23, what="23 rows downstream")

    marked = {row["id"]: row for row in rows(staging_url, staging)}
    assert sorted(i for i, r in marked.items() if r["status"] == "failed") == [7, 19]
    assert all(r["status"] == "done" for i, r in marked.items() if i not in (7, 19))
    assert all(r["processed_at"] is not None for r in marked.values())
    reason = str(marked[7]["error"])
    assert reason.startswith("ValidationError: name flagged") and len(reason) == 40  # cut to String(40)
    assert marked[1]["error"] is None
    downstream = rows(staging_url, out)
    assert [r["source_id"] for r in downstream] == [i for i in range(1, 26) if i not in (7, 19)]
    assert {r["status"] for r in downstream} == {"new"} and downstream[0]["mrn"] == "MRN000001"

    held = journal(engine, "feed")
    assert sorted(int(m["headers"]["table-key"]) for m in held) == list(range(1, 26))
    assert sorted(m["status"] for m in held).count("failed") == 2
    first = next(m for m in held if m["headers"]["table-key"] == "1")
    assert first["headers"]["table-name"] == staging.name
    assert json.loads(first["body"]) == {
        "id": 1,
        "mrn": "MRN000001",
        "name": "Patient 1",
        "birth_date": "1950-01-02",
        "weight": "51.25",
        "status": "new",
    }
    assert first["headers"]["table-status"] == "new"


async def test_a_row_read_again_after_a_crash_is_marked_done_not_run_again(
    tmp_path: Path, staging_url: str, make_table: MakeTable, start_engine: StartEngine
) -> None:
    staging, out = make_table(), out_table(make_table)
    insert_patients(staging_url, staging, 3)
    source = f"table:{staging.name}?url={staging_url}&poll=50ms&columns=id,mrn,name:name"
    write_routes(
        tmp_path / "routes",
        {
            "feed": f"""
                route:
                  id: feed
                  from: "{source}"
                  steps:
                    - transform: {{python: "tests.adapters.table.helpers:to_out_row"}}
                    - to: "table:{out.name}?url={staging_url}"
            """
        },
    )
    engine = await start_engine()
    await wait_for(lambda: settled(staging_url, staging, 3), what="rows marked")
    await wait_for(lambda: len(rows(staging_url, out)) == 3, what="rows downstream")
    assert json.loads(journal(engine, "feed")[0]["body"]).keys() == {"id", "mrn", "name"}

    # the node died after journaling row 2 but before marking it: the row is pending again
    with staging_engine(staging_url).begin() as conn:
        conn.execute(staging.update().where(staging.c.id == 2).values(status="new"))
    await wait_for(lambda: statuses(staging_url, staging)[2] == "done", what="row 2 marked again")
    await asyncio.sleep(0.3)  # a second delivery would be queued by now
    assert len(journal(engine, "feed")) == 3
    assert len(rows(staging_url, out)) == 3  # plain insert: a second run would have failed on the key
    duplicates = engine.context.metrics.registry.get_sample_value("esb_route_duplicates_total", {"route": "feed"})
    assert duplicates == 1


@pytest.mark.parametrize("claim", ["auto", "mark"])
async def test_a_row_the_engine_does_not_take_stays_pending(
    staging_url: str, make_table: MakeTable, claim: Literal["auto", "mark"]
) -> None:
    staging = make_table()
    insert_patients(staging_url, staging, 4)
    with staging_engine(staging_url).begin() as conn:
        conn.execute(staging.update().where(staging.c.id == 3).values(status="update"))
    handed: list[str] = []

    async def stopping_engine(exchange: Exchange, wait: bool) -> Outcome:
        handed.append(exchange.headers["table-status"])
        if len(handed) == 1:
            return Outcome("m1", "processed", exchange)
        return Outcome(None, "failed", error=EngineStoppingError("engine is shutting down"))

    options = TableOptions(table=staging.name, url=staging_url, batch=10, pending=("new", "update"), claim=claim)
    consumer = TableConsumer(options, stopping_engine, "feed", "node-a")
    assert await consumer.poll() is False
    assert handed == ["new", "new"]  # the refusal stops the batch
    # each row keeps the pending value it had, also after a mark-mode claim was given back
    assert statuses(staging_url, staging) == {1: "done", 2: "new", 3: "update", 4: "new"}
    assert all(row["claimed_by"] is None for row in rows(staging_url, staging) if row["id"] != 1)


async def test_a_view_needs_a_key_and_columns_select_and_rename(staging_url: str, make_table: MakeTable) -> None:
    staging = make_table()
    insert_patients(staging_url, staging, 2)
    view = unique("v")
    with staging_engine(staging_url).begin() as conn:
        conn.execute(
            sa.text(f"CREATE VIEW {view} AS SELECT id, mrn, status, claimed_by, claimed_at FROM {staging.name}")
        )
    bodies: list[dict[str, Any]] = []

    async def engine(exchange: Exchange, wait: bool) -> Outcome:
        bodies.append(json.loads(exchange.body))
        return Outcome("m", "processed", exchange)

    try:
        without_key = TableConsumer(TableOptions(table=view, url=staging_url), engine, "feed", "n")
        with pytest.raises(Exception, match=f"table '{view}' has no primary key.*key=COLUMN"):
            without_key.prepare()
        options = TableOptions(table=view, url=staging_url, key=("id",), columns=("id:row", "mrn:patient_id"))
        consumer = TableConsumer(options, engine, "feed", "n")
        if staging_url.startswith("sqlite"):
            with pytest.raises(Exception, match="cannot modify"):  # SQLite views are read-only
                await consumer.poll()
            return
        await consumer.poll()
        assert bodies == [{"row": 1, "patient_id": "MRN000001"}, {"row": 2, "patient_id": "MRN000002"}]
        assert statuses(staging_url, staging) == {1: "done", 2: "done"}
    finally:
        with staging_engine(staging_url).begin() as conn:
            conn.execute(sa.text(f"DROP VIEW {view}"))


async def test_missing_table_or_column_is_a_clear_error(staging_url: str, make_table: MakeTable) -> None:
    staging = make_table()

    async def engine(exchange: Exchange, wait: bool) -> Outcome:
        raise AssertionError("nothing may be handed over")

    missing = TableConsumer(TableOptions(table="no_such_table", url=staging_url), engine, "feed", "n")
    with pytest.raises(Exception, match="table 'no_such_table' does not exist in"):
        missing.prepare()
    wrong = TableConsumer(
        TableOptions(table=staging.name, url=staging_url, status="state", error="eror"), engine, "feed", "n"
    )
    with pytest.raises(Exception, match=r"has no column 'state'.*'eror' \(did you mean 'error'\?\)"):
        wrong.prepare()
