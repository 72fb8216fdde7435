"""Fixtures and helpers for the ITI-42 registry tests: a migrated database and a Registry on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from esb.errors import XdsError
from esb.journal import database
from profiles.xds import ebxml
from profiles.xds.config import XdsConfig
from profiles.xds.registry.register import Registry
from profiles.xds.registry.schema import codes, objects, values
from tests.xds import samples


@pytest.fixture
def reg_engine(db_url: str) -> Iterator[sa.Engine]:
    engine = database.make_engine(db_url)
    database.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def registry(reg_engine: sa.Engine) -> Registry:
    return Registry(reg_engine, XdsConfig(), samples.MASTER_OID)


@pytest.fixture
def pid(reg_engine: sa.Engine) -> str:
    """An active EMPI master patient ID."""
    return samples.add_patient(reg_engine)


def status_of(response: Any) -> str:
    return str(response.get("status")).rsplit(":", 1)[-1]


def errors_of(response: Any) -> list[tuple[str, str]]:
    """(errorCode, location) of each RegistryError."""
    return [(e.get("errorCode"), e.get("location") or "") for e in response.iter(ebxml.q("rs", "RegistryError"))]


def ok(registry: Registry, request: Any) -> None:
    response = registry.register(request)
    assert status_of(response) == "Success", errors_of(response)
    assert not errors_of(response)


def refused(registry: Registry, request: Any) -> list[tuple[str, str]]:
    """Register expecting Failure; the (code, location) pairs."""
    response = registry.register(request)
    assert status_of(response) == "Failure"
    found = errors_of(response)
    assert found
    return found


def row(engine: sa.Engine, **where: Any) -> Any:
    """The one objects row matching ``where`` (column=value)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(objects).filter_by(**where)).all()
    assert len(rows) == 1, (where, len(rows))
    return rows[0]


def rows(engine: sa.Engine, **where: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(objects).filter_by(**where).order_by(objects.c.id)))


def snapshot(engine: sa.Engine) -> tuple[list[Any], ...]:
    """Every row of the three registry tables, to show a refusal changed nothing."""
    with engine.connect() as conn:
        return tuple(
            [tuple(r) for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]
            for table in (objects, codes, values)
        )


def register_document(registry: Registry, pid: str, **document: Any) -> str:
    """Register SS + one DocumentEntry; the entry's entryUUID."""
    unique_id = document.setdefault("unique_id", samples.new_oid())
    ok(registry, samples.submission(pid, document=document))
    return str(row(registry.engine, unique_id=unique_id, kind="document").id)


def codes_raised(exc: XdsError) -> list[tuple[str, str]]:
    return [(e.code, e.location) for e in exc.all()]
