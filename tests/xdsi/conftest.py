"""Fixtures of the XDS-I.b tests: the real archive, registry, repository and stored queries on one database.

Every test runs on SQLite and, with ESB_TEST_PG_URL, on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from esb.journal import database
from esb.storage import LocalDiskStore
from profiles.dicom.archive import Archive
from profiles.dicom.config import DicomConfig
from profiles.xds.config import XdsConfig
from profiles.xds.registry.query import StoredQueries
from profiles.xds.registry.register import Registry
from profiles.xds.repository import Repository
from profiles.xdsi.config import XdsiConfig
from profiles.xdsi.publisher import Publisher
from tests.xds import samples

REPOSITORY_UID = samples.REPOSITORY_UNIQUE_ID
CONFIG = XdsiConfig(
    repository_unique_id=REPOSITORY_UID,
    ae_title="ESBTEST",
    wado_base="http://127.0.0.1:8080/dicomweb",
    home_community_id="urn:oid:1.2.156.112.9999.2",
)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """Every table of the engine, migrated (journal, EMPI, XDS, archive, XDS-I)."""
    engine = database.make_engine(db_url)
    database.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def archive(engine: sa.Engine, tmp_path: Path) -> Archive:
    config = DicomConfig(study_complete_after=0.0)
    return Archive(engine, LocalDiskStore(tmp_path / "images"), config, samples.MASTER_OID, ae_title="ESBTEST")


@pytest.fixture
def registry(engine: sa.Engine) -> Registry:
    return Registry(engine, XdsConfig(), samples.MASTER_OID)


@pytest.fixture
def queries(engine: sa.Engine) -> StoredQueries:
    return StoredQueries(engine, XdsConfig(), samples.MASTER_OID)


@pytest.fixture
def repository(engine: sa.Engine, tmp_path: Path, registry: Registry) -> Repository:
    config = XdsConfig(repository_unique_id=REPOSITORY_UID)
    return Repository(engine, config, LocalDiskStore(tmp_path / "documents"), registry.register)


@pytest.fixture
def publisher(engine: sa.Engine, archive: Archive, repository: Repository, queries: StoredQueries) -> Publisher:
    return Publisher(engine, archive, repository, CONFIG, master_oid=samples.MASTER_OID, query=queries.run)
