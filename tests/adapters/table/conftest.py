"""Staging databases for the ``table:`` tests: SQLite always, PostgreSQL and MariaDB when their URLs are set.

As in tests/conftest.py: an unset ESB_TEST_PG_URL / ESB_TEST_MYSQL_URL skips,
a set one whose server is unreachable fails. Every table has a fresh name.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.table.database import dispose_all, staging_engine
from tests.conftest import fresh_pg_schema

PG_URL = os.environ.get("ESB_TEST_PG_URL")
MYSQL_URL = os.environ.get("ESB_TEST_MYSQL_URL")

#: a staging table like a hospital's: surrogate key, patient fields, status columns
MakeTable = Callable[..., sa.Table]


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    dispose_all()


def mysql_url() -> str:
    if not MYSQL_URL:
        pytest.skip("ESB_TEST_MYSQL_URL is not set")
    return MYSQL_URL


@pytest.fixture
def pg_staging_url() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("ESB_TEST_PG_URL is not set")
    with fresh_pg_schema(PG_URL) as url:
        yield url


@pytest.fixture
def mysql_staging_url() -> str:
    return mysql_url()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg), "mariadb"])
def staging_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs on SQLite, PostgreSQL and MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/staging.db"
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_staging_url"))
    return mysql_url()


def unique(prefix: str = "stg") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def patient_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("mrn", sa.String(32)),
        sa.Column("name", sa.String(100)),
        sa.Column("birth_date", sa.Date),
        sa.Column("weight", sa.Numeric(6, 2)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(40)),
        sa.Column("processed_at", sa.DateTime),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_at", sa.DateTime),
    ]


@pytest.fixture
def make_table(staging_url: str) -> Iterator[MakeTable]:
    """``make_table(columns=None, name=None)`` creates a table on the staging database, dropped afterwards."""
    yield from _tables(staging_url)


def _tables(url: str) -> Iterator[MakeTable]:
    engine = staging_engine(url)
    made: list[sa.Table] = []

    def make(columns: list[sa.Column[object]] | None = None, name: str | None = None) -> sa.Table:
        table = sa.Table(name or unique(), sa.MetaData(), *(columns or patient_columns()))
        table.create(engine)
        made.append(table)
        return table

    yield make
    for table in made:
        table.drop(engine, checkfirst=True)


@pytest.fixture
def pg_table(pg_staging_url: str) -> Iterator[MakeTable]:
    yield from _tables(pg_staging_url)


@pytest.fixture
def mysql_table(mysql_staging_url: str) -> Iterator[MakeTable]:
    yield from _tables(mysql_staging_url)


def insert_patients(url: str, table: sa.Table, count: int, *, start: int = 1, status: str = "new") -> None:
    rows = [
        {
            "id": i,
            "mrn": f"MRN{i:06d}",
            "name": f"Patient {i}",
            "birth_date": dt.date(1950, 1, 1) + dt.timedelta(days=i),
            "weight": decimal.Decimal(f"{50 + i % 40}.25"),
            "status": status,
        }
        for i in range(start, start + count)
    ]
    with staging_engine(url).begin() as conn:
        conn.execute(table.insert(), rows)


def statuses(url: str, table: sa.Table) -> dict[int, str]:
    with staging_engine(url).connect() as conn:
        return {row.id: row.status for row in conn.execute(sa.select(table.c.id, table.c.status).order_by("id"))}


def rows(url: str, table: sa.Table) -> list[dict[str, object]]:
    with staging_engine(url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(table.select().order_by(*table.primary_key.columns))]
