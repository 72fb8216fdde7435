"""Fixtures for the archive tests: a migrated database (SQLite and PostgreSQL), a blob store, an archive."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from esb.journal import database
from esb.storage import LocalDiskStore
from profiles.dicom.archive import Archive
from profiles.dicom.config import DicomConfig

MASTER_OID = "1.2.156.112.9999.1.1"  # EmpiConfig's default master domain


class Clock:
    """The archive's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 30, 8, 0, 0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = database.make_engine(db_url)
    database.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def blobs(tmp_path: Path) -> LocalDiskStore:
    return LocalDiskStore(tmp_path / "dicom")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_archive(engine: sa.Engine, blobs: LocalDiskStore, clock: Clock) -> Callable[..., Archive]:
    def make(**options: Any) -> Archive:
        config = options.pop("config", DicomConfig(study_complete_after=60.0, cache_expiry=3600.0))
        return Archive(engine, blobs, config, MASTER_OID, ae_title="ESBTEST", clock=clock, **options)

    return make


@pytest.fixture
def archive(make_archive: Callable[..., Archive]) -> Archive:
    return make_archive()
