"""One engine per test module, with the shipped routes, on SQLite and on PostgreSQL (``pg``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.xds_e2e.harness import RunningEngine, module_database, running_engine
from tests.xds_e2e.zeep_xds import XdsClient


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The ``db_url`` fixture per module: SQLite, and PostgreSQL (a fresh schema) when ESB_TEST_PG_URL is set."""
    with module_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="module")
def xds(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    """The engine with routes/xds-registry.yaml, routes/xds-repository.yaml and routes/hl7-in.yaml."""
    with running_engine(tmp_path_factory.mktemp("engine"), module_db_url) as running:
        yield running


@pytest.fixture(scope="module")
def client(xds: RunningEngine) -> XdsClient:
    return XdsClient(xds)
