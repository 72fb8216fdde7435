"""Shared fixtures: databases (SQLite always, PostgreSQL when ESB_TEST_PG_URL is set),
settings, and a started engine on port 0.

A set ESB_TEST_PG_URL whose server is unreachable fails the tests that need it;
only an unset variable skips them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from esb.runtime.engine import Engine
from esb.settings import Settings, load_settings

PG_URL = os.environ.get("ESB_TEST_PG_URL")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    if not PG_URL:
        pytest.skip("ESB_TEST_PG_URL is not set")
    with fresh_pg_schema(PG_URL) as url:
        yield url


@contextlib.contextmanager
def fresh_pg_schema(base_url: str) -> Iterator[str]:
    """``base_url`` with its search_path set to a new schema, dropped on exit."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/journal.db"
    return str(request.getfixturevalue("pg_url"))


def write_routes(directory: Path, routes: dict[str, str]) -> Path:
    """Write route files ``{stem: yaml}`` (dedented) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for stem, text in routes.items():
        (directory / f"{stem}.yaml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return directory


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a test engine: temp data dir, SQLite journal, HTTP on port 0."""

    def make(**overrides: Any) -> Settings:
        base = load_settings()
        values: dict[str, Any] = {
            "data_dir": tmp_path / "var",
            "db_url": f"sqlite:///{tmp_path}/var/esb.db",
            "http_port": 0,
            "route_paths": (tmp_path / "routes",),
            "delivery_poll": 0.05,
            "shutdown_timeout": 5.0,
            "node_id": "test-node",
        }
        values.update(overrides)
        return dataclasses.replace(base, **values)

    return make


@pytest.fixture
async def start_engine(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[Callable[..., Awaitable[Engine]]]:
    """``await start_engine(**settings_overrides)`` -> a started engine, stopped at teardown."""
    if "db_url" in request.fixturenames:
        # Set the database up first so it is torn down after the engines stop,
        # whatever order the test lists its fixtures in.
        request.getfixturevalue("db_url")
    engines: list[Engine] = []

    async def start(**overrides: Any) -> Engine:
        engine = Engine(make_settings(**overrides))
        await engine.start()
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        await engine.stop()
