"""Fixtures for collection and on-demand tests: one Orthanc per module, a migrated database, the real archive.

``CountingArchive`` is :class:`profiles.dicom.archive.Archive` itself, counting
the stores per SOP Instance UID (to prove nothing is fetched twice) and able
to refuse chosen instances (a store failing mid-study, as a crash would leave it).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydicom import dcmread
from pydicom.dataset import Dataset

from esb.errors import DicomError
from esb.journal import database
from esb.storage import LocalDiskStore
from profiles.dicom.api import InstanceRef, Stored
from profiles.dicom.archive import Archive
from profiles.dicom.config import DicomConfig, RemoteAe
from tests.dicom_support import SMALL_CT, series
from tests.orthanc_support import Orthanc, orthanc  # noqa: F401  (the module-scoped Orthanc fixture)

MASTER_OID = "1.2.156.112.9999.1.1"  # EmpiConfig's default master domain
CACHE_EXPIRY = 3600.0


class Clock:
    """The archive's clock, moved by hand (cache expiry)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 30, 8, 0, 0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class CountingArchive(Archive):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stores: Counter[str] = Counter()
        self.sources: dict[str, str] = {}
        self.refuse: set[str] = set()

    def store(self, path: Path, *, calling_ae: str = "", source: str = "") -> Stored:
        sop = str(dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
        if sop in self.refuse:
            raise DicomError("refused by the test", status=0xA700)
        stored = super().store(path, calling_ae=calling_ae, source=source)
        self.stores[stored.instance.sop_instance_uid] += 1
        self.sources[stored.instance.sop_instance_uid] = source
        return stored

    def study_instances(self, study_uid: str) -> list[InstanceRef]:
        identifier = Dataset()
        identifier.StudyInstanceUID = study_uid
        return self.select("STUDY", identifier)

    def total_size(self) -> int:
        with self.engine.connect() as conn:
            from profiles.dicom.schema import instances

            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(instances.c.size), 0))).scalar_one())


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = database.make_engine(db_url)
    database.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_archive(engine: sa.Engine, tmp_path: Path, clock: Clock) -> Callable[..., CountingArchive]:
    def make(**options: Any) -> CountingArchive:
        config = DicomConfig(cache_expiry=CACHE_EXPIRY)
        store = LocalDiskStore(tmp_path / "images")
        return CountingArchive(engine, store, config, MASTER_OID, ae_title="ESBTEST", clock=clock, **options)

    return make


@pytest.fixture
def archive(make_archive: Callable[..., CountingArchive]) -> CountingArchive:
    return make_archive()


_years = itertools.count(1901)


@pytest.fixture
def year() -> str:
    """A StudyDate year no other test of the session uses: tests share one Orthanc and query it by date."""
    return str(next(_years))


@dataclass(frozen=True)
class Study:
    uid: str
    date: str
    files: list[Path]

    @property
    def sop_uids(self) -> set[str]:
        return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in self.files}


def upload_study(
    peer: Orthanc, directory: Path, date: str, series_sizes: tuple[int, ...] = (2,), source: str = SMALL_CT
) -> Study:
    """One study of ``series_sizes`` series (fresh UIDs, copies of ``source``) dated ``date``, uploaded to Orthanc."""
    files: list[Path] = []
    study_uid = ""
    for number, size in enumerate(series_sizes):
        made = series(directory / f"{date}-{len(files)}-{number}", size, study_date=date, study_uid=study_uid or None,
                      source=source)  # fmt: skip
        study_uid = study_uid or str(dcmread(made[0], stop_before_pixels=True).StudyInstanceUID)
        files += made
    peer.upload(files)
    return Study(study_uid, date, files)


def remote_of(peer: Orthanc, *, dicomweb: bool = True) -> RemoteAe:
    return RemoteAe(peer.ae_title, "127.0.0.1", peer.dicom_port, peer.dicomweb_url if dicomweb else "")
