"""Per test module: one Orthanc, one storescp and one engine with the shipped routes, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dicom_e2e.harness import Platform, StoreScp, platform
from tests.orthanc_support import Orthanc, orthanc  # noqa: F401  (the module-scoped Orthanc fixture)
from tests.xds_e2e.harness import module_database


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with module_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="module")
def storescp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreScp]:
    peer = StoreScp(tmp_path_factory.mktemp("storescp") / "received")
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture(scope="module")
def esb(
    module_db_url: str,
    orthanc: Orthanc,  # noqa: F811  (the fixture imported above)
    storescp: StoreScp,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    with platform(tmp_path_factory.mktemp("engine"), module_db_url, orthanc, storescp) as running:
        yield running
