"""ODBC: connection-string URLs, and the ``postgresql+pyodbc`` dialect against the real psqlODBC driver.

The real tests need unixODBC with the PostgreSQL Unicode driver and run when
ESB_TEST_ODBC=1 (ESB_TEST_ODBC_CONNECT may name another connection string).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from adapters.table.consumer import TableConsumer
from adapters.table.database import ODBC, reflect_table, safe_url, staging_engine
from adapters.table.odbc import parse_pg_array
from adapters.table.options import TableOptions
from adapters.table.producer import TableProducer
from esb.components import Outcome
from esb.errors import ConfigError
from esb.exchange import Exchange
from tests.adapters.table.conftest import insert_patients, patient_columns, statuses, unique

CONNECT = os.environ.get(
    "ESB_TEST_ODBC_CONNECT", "DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=5432;DATABASE=test;UID=postgres"
)


@pytest.fixture
def odbc_url() -> str:
    if os.environ.get("ESB_TEST_ODBC") != "1":
        pytest.skip("ESB_TEST_ODBC is not 1")
    return ODBC.url(CONNECT, "postgresql")


@pytest.fixture
def odbc_tables(odbc_url: str) -> Iterator[list[sa.Table]]:
    made: list[sa.Table] = []
    yield made
    for table in made:
        table.drop(staging_engine(odbc_url), checkfirst=True)


def test_odbc_urls_become_sqlalchemy_urls() -> None:
    url = ODBC.url("DRIVER={PostgreSQL Unicode};SERVER=db;PWD={se;cret}", "postgresql")
    assert url.startswith("odbc:///?odbc_connect=DRIVER%3D%7BPostgreSQL+Unicode%7D%3BSERVER%3Ddb")
    assert ODBC.normalize(url).startswith("postgresql+pyodbc:///?odbc_connect=DRIVER%3D")
    assert ODBC.normalize(ODBC.url("DSN=his", "mssql")) == "mssql+pyodbc:///?odbc_connect=DSN%3Dhis"
    assert ODBC.normalize("mssql+pyodbc://u:p@dsn") == "mssql+pyodbc://u:p@dsn"
    assert "cret" not in safe_url(url) and "PWD%3D%2A%2A%2A" in safe_url(url)
    with pytest.raises(ConfigError, match=r"needs dialect=postgresql\|mssql\|mysql\|mariadb \(got 'db2'\)"):
        ODBC.normalize("odbc:///?odbc_connect=DSN%3Dx&dialect=db2")


def test_postgresql_array_literals_parse() -> None:
    assert parse_pg_array('{id,"a b","q\\"x",NULL}') == ["id", "a b", 'q"x', None]
    assert parse_pg_array("{}") == []


async def test_staging_table_through_psqlodbc(odbc_url: str, odbc_tables: list[sa.Table]) -> None:
    engine = staging_engine(odbc_url)
    assert engine.dialect.name == "postgresql" and engine.dialect.driver == "pyodbc"
    staging = sa.Table(unique("odbc"), sa.MetaData(), *patient_columns())
    odbc_tables.append(staging)
    staging.create(engine)
    assert reflect_table(engine, staging.name).primary_key.columns.keys() == ["id"]
    insert_patients(odbc_url, staging, 5)
    bodies: list[dict[str, object]] = []

    async def handler(exchange: Exchange, wait: bool) -> Outcome:
        bodies.append(json.loads(exchange.body))
        return Outcome("m", "processed", exchange)

    consumer = TableConsumer(TableOptions(table=staging.name, url=odbc_url, batch=3), handler, "feed", "n")
    assert await consumer.poll() is True and await consumer.poll() is False
    assert consumer.claimer is not None and consumer.claimer.mode == "lock"  # FOR UPDATE SKIP LOCKED over ODBC
    assert [b["id"] for b in bodies] == [1, 2, 3, 4, 5]
    assert bodies[0]["birth_date"] == "1950-01-02" and bodies[0]["weight"] == "51.25"
    assert set(statuses(odbc_url, staging).values()) == {"done"}


async def test_binary_rows_upsert_through_psqlodbc(odbc_url: str, odbc_tables: list[sa.Table]) -> None:
    """executemany with a binary column: fast_executemany must stay off there (HY090)."""
    table = sa.Table(
        unique("odbcbin"),
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("photo", sa.LargeBinary),
        sa.Column("note", sa.String(20)),
    )
    odbc_tables.append(table)
    table.create(staging_engine(odbc_url))
    producer = TableProducer(TableOptions(table=table.name, url=odbc_url, mode="upsert"))
    first = [{"id": i, "photo": None if i == 0 else "AAEC", "note": None} for i in range(20)]
    assert producer.write(json.dumps(first).encode()) == 20
    producer.write(json.dumps([{"id": 0, "photo": "/w==", "note": "again"}]).encode())
    with staging_engine(odbc_url).connect() as conn:
        got = conn.execute(sa.select(table).order_by(table.c.id)).all()
    assert len(got) == 20 and tuple(got[0]) == (0, b"\xff", "again") and got[1].photo == b"\x00\x01\x02"
