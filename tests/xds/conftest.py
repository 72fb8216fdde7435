"""Fixtures shared by the XDS tests: a migrated database (SQLite and PostgreSQL) and a document store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from esb.journal import database
from esb.storage import LocalDiskStore


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """Every table of the engine (journal, EMPI, registry, repository), migrated."""
    engine = database.make_engine(db_url)
    database.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> LocalDiskStore:
    return LocalDiskStore(tmp_path / "documents")
