"""``to: table:``: insert and upsert on real databases, an array in one transaction, clear errors."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging

import pytest
import sqlalchemy as sa

from adapters.table import TableAdapter
from adapters.table.database import staging_engine
from adapters.table.options import TableOptions
from adapters.table.producer import TableProducer
from esb.errors import DeliveryError, PermanentDeliveryError
from esb.exchange import Exchange
from esb.uri import parse_uri
from tests.adapters.table.conftest import MakeTable, rows, unique


def events_table(make_table: MakeTable) -> sa.Table:
    return make_table(
        [
            sa.Column("event_id", sa.String(20), primary_key=True),
            sa.Column("patient_id", sa.String(32), nullable=False),
            sa.Column("kind", sa.String(8)),
            sa.Column("birth_date", sa.Date),
            sa.Column("recorded_at", sa.DateTime),
            sa.Column("amount", sa.Numeric(8, 2)),
            sa.Column("photo", sa.LargeBinary),
            sa.Column("status", sa.String(16)),
        ],
        name=unique("events"),
    )


def body(value: object) -> Exchange:
    return Exchange(body=json.dumps(value).encode())


async def test_insert_converts_json_text_back_per_column_type(staging_url: str, make_table: MakeTable) -> None:
    table = events_table(make_table)
    options = TableOptions(table=table.name, url=staging_url, columns=("event_id:id", "patient_id:pid", "birth_date",
                           "recorded_at", "amount", "photo"), constants=("status:new", "kind:A04"))  # fmt: skip
    producer = TableProducer(options)
    event = {
        "id": "E1",
        "pid": "P1",
        "birth_date": "1970-05-06",
        "recorded_at": "2026-11-29T08:30:00",
        "amount": "12.50",
        "photo": "AAEC",
        "ignored": "not a mapped field",
    }
    assert await producer.send(body(event)) is None
    [row] = rows(staging_url, table)
    assert row == {
        "event_id": "E1",
        "patient_id": "P1",
        "kind": "A04",
        "birth_date": dt.date(1970, 5, 6),
        "recorded_at": dt.datetime(2026, 11, 29, 8, 30),
        "amount": decimal.Decimal("12.50"),
        "photo": b"\x00\x01\x02",
        "status": "new",
    }


async def test_upsert_inserts_then_updates_on_the_key(staging_url: str, make_table: MakeTable) -> None:
    table = events_table(make_table)
    producer = TableProducer(TableOptions(table=table.name, url=staging_url, mode="upsert"))
    await producer.send(body([{"event_id": "E1", "patient_id": "P1", "kind": "A04"}, {"event_id": "E2",
                              "patient_id": "P2", "kind": "A04"}]))  # fmt: skip
    await producer.send(body({"event_id": "E1", "patient_id": "P1", "kind": "A08"}))
    assert [(r["event_id"], r["kind"]) for r in rows(staging_url, table)] == [("E1", "A08"), ("E2", "A04")]


async def test_upsert_without_native_statement_updates_then_inserts(staging_url: str, make_table: MakeTable) -> None:
    """The MS SQL / Oracle / DB2 path, run here on a real database by pretending the dialect has no upsert."""
    table = events_table(make_table)
    producer = TableProducer(TableOptions(table=table.name, url=staging_url, mode="upsert"))
    with staging_engine(staging_url).begin() as conn:
        producer._update_then_insert(conn, producer.table(), ["event_id"], ["kind", "patient_id"],
                                     [{"event_id": "E1", "patient_id": "P1", "kind": "A04"}])  # fmt: skip
        producer._update_then_insert(conn, producer.table(), ["event_id"], ["kind", "patient_id"],
                                     [{"event_id": "E1", "patient_id": "P1", "kind": "A08"},
                                      {"event_id": "E2", "patient_id": "P2", "kind": "A01"}])  # fmt: skip
    assert [(r["event_id"], r["kind"]) for r in rows(staging_url, table)] == [("E1", "A08"), ("E2", "A01")]


async def test_an_array_is_written_all_or_nothing(staging_url: str, make_table: MakeTable) -> None:
    table = events_table(make_table)
    producer = TableProducer(TableOptions(table=table.name, url=staging_url))
    batch = [{"event_id": f"E{i}", "patient_id": f"P{i}"} for i in range(50)]
    batch[37]["patient_id"] = None  # NOT NULL: the whole array is refused
    with pytest.raises(PermanentDeliveryError, match=f"table '{table.name}': .*'?patient_id"):
        await producer.send(body(batch))
    assert rows(staging_url, table) == []
    batch[37]["patient_id"] = "P37"
    await producer.send(body(batch))
    assert len(rows(staging_url, table)) == 50


async def test_errors_name_table_and_column_but_no_value(
    staging_url: str, make_table: MakeTable, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    table = events_table(make_table)
    producer = TableProducer(TableOptions(table=table.name, url=staging_url))
    with pytest.raises(PermanentDeliveryError, match=rf"table '{table.name}' has no column 'patient' \(did you mean"):
        await producer.send(body({"event_id": "E1", "patient": "SECRET-PID"}))
    await producer.send(body({"event_id": "E1", "patient_id": "SECRET-PID"}))
    with pytest.raises(PermanentDeliveryError, match=f"table '{table.name}': .*(constraint|PRIMARY|event_id)") as dup:
        await producer.send(body({"event_id": "E1", "patient_id": "SECRET-PID"}))
    with pytest.raises(PermanentDeliveryError, match="column 'birth_date': a value does not fit") as bad:
        await producer.send(body({"event_id": "E2", "patient_id": "SECRET-PID", "birth_date": "05/06/1970"}))
    with pytest.raises(PermanentDeliveryError, match="must be a JSON object or an array of objects"):
        await producer.send(body([1, 2]))
    for error in (dup.value, bad.value):
        assert "SECRET" not in str(error) and "1970" not in str(error)
    assert "SECRET" not in caplog.text


async def test_an_unreachable_database_is_retried() -> None:
    producer = TableProducer(TableOptions(table="events", url="postgresql+psycopg://nobody@127.0.0.1:1/none"))
    with pytest.raises((DeliveryError, PermanentDeliveryError)) as caught:
        await producer.send(body({"event_id": "E1"}))
    assert type(caught.value) is DeliveryError  # retried, not dead-lettered


def test_endpoint_takes_the_database_url_verbatim() -> None:
    adapter = TableAdapter.__new__(TableAdapter)
    raw = (
        "table:his.events?mode=upsert&url=postgresql+psycopg://u:p@db/his?sslmode=require&application_name=esb&keys=a,b"
    )
    endpoint = adapter.endpoint(parse_uri(raw))
    options = endpoint.options
    assert options.table == "his.events" and options.mode == "upsert" and options.keys == ("a", "b")
    assert options.url == "postgresql+psycopg://u:p@db/his?sslmode=require&application_name=esb"
    assert adapter.check(endpoint, consumer=False) == []
    assert adapter.check(endpoint, consumer=True) == [
        "table: option 'keys' has no effect in 'from:' (it is for 'to:' endpoints)",
        "table: option 'mode' has no effect in 'from:' (it is for 'to:' endpoints)",
    ]
    typo = adapter.endpoint(parse_uri("table:t?url=sqlite:///x.db&bach=5"))
    assert typo.options.url == "sqlite:///x.db?bach=5"
    assert adapter.check(typo, consumer=True) == [
        "table: 'bach' after url= is taken as a parameter of the database URL (did you mean 'batch'?)"
    ]
