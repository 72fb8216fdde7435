"""Hospital databases for the ETL tests: a patient table behind a view, on SQLite, PostgreSQL and MariaDB.

As in tests/conftest.py: an unset ESB_TEST_PG_URL / ESB_TEST_MYSQL_URL skips,
a set one whose server is unreachable fails. Every table and view has a fresh
name, so the tests can run again and side by side.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.table.database import dispose_all, staging_engine
from tests.conftest import fresh_pg_schema

PG_URL = os.environ.get("ESB_TEST_PG_URL")
MYSQL_URL = os.environ.get("ESB_TEST_MYSQL_URL")

#: the moment the test rows were "last changed"; later changes add minutes
T0 = dt.datetime(2024, 3, 1, 8, 0, 0)


@pytest.fixture(autouse=True)
def _no_listeners(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The EMPI's default listener writes files under ./var: none in tests."""
    monkeypatch.setenv("ESB_EMPI_LISTENERS", str(tmp_path / "no-listeners.yaml"))
    yield
    dispose_all()


class HisDb:
    """A HIS patient table and the view the ETL job reads (``view``), on one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = staging_engine(url)
        suffix = uuid.uuid4().hex[:10]
        self.table = sa.Table(
            f"his_patient_{suffix}",
            sa.MetaData(),
            sa.Column("patient_no", sa.String(32), primary_key=True),
            sa.Column("name", sa.String(100)),
            sa.Column("sex", sa.String(8)),
            sa.Column("birth_date", sa.String(32)),
            sa.Column("id_card", sa.String(18)),
            sa.Column("phone", sa.String(20)),
            sa.Column("address", sa.String(200)),
            sa.Column("fee", sa.Numeric(8, 2)),
            sa.Column("created_at", sa.DateTime),
            sa.Column("updated_at", sa.DateTime),
        )
        self.view = f"v_his_patient_{suffix}"
        self.table.create(self.engine)
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"CREATE VIEW {self.view} AS SELECT * FROM {self.table.name}"))

    def drop(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"DROP VIEW IF EXISTS {self.view}"))
        self.table.drop(self.engine, checkfirst=True)

    def insert(self, *rows: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), [patient(**r) for r in rows])

    def update(self, patient_no: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.update().where(self.table.c.patient_no == patient_no).values(**values))

    def uri(self, **options: Any) -> str:
        """The ``etl:`` URI of the view; options are added to the query as given."""
        query = "&".join(f"{k}={v}" for k, v in {"watermark": "updated_at", "key": "patient_no", **options}.items())
        return f"etl:{self.view}?url={self.url}&{query}"


def patient(n: int | None = None, **values: Any) -> dict[str, Any]:
    """A patient row: ``patient(3)`` is P0003, updated 3 minutes after T0; values override."""
    number = n if n is not None else 0
    row: dict[str, Any] = {
        "patient_no": f"P{number:04d}",
        "name": f"张{'一二三四五六七八九十'[number % 10]}{number}",
        "sex": "1" if number % 2 else "2",
        "birth_date": (dt.date(1950, 1, 1) + dt.timedelta(days=number * 37)).isoformat(),
        "id_card": None,
        "phone": f"139{number:08d}",
        "address": "北京市东城区",
        "fee": None,
        "created_at": T0,
        "updated_at": T0 + dt.timedelta(minutes=number),
    }
    row.update(values)
    return row


def mysql_url() -> str:
    if not MYSQL_URL:
        pytest.skip("ESB_TEST_MYSQL_URL is not set")
    return MYSQL_URL


@pytest.fixture
def pg_source_url() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("ESB_TEST_PG_URL is not set")
    with fresh_pg_schema(PG_URL) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg), "mariadb"])
def source_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this reads its view from SQLite, PostgreSQL and MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/his.db"
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_source_url"))
    return mysql_url()


@pytest.fixture
def his(source_url: str) -> Iterator[HisDb]:
    db = HisDb(source_url)
    yield db
    db.drop()


@pytest.fixture
def sqlite_his(tmp_path: Path) -> Iterator[HisDb]:
    db = HisDb(f"sqlite:///{tmp_path}/his.db")
    yield db
    db.drop()
