"""Audit tests: a database with the audit tables, an installed trail, certificates and a syslog receiver."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import esb.audit as audit
from esb import authz
from esb.audit.model import AuditSource
from esb.audit.schema import patients, records
from esb.audit.store import AuditStore
from esb.audit.trail import AuditTrail
from esb.journal import database
from esb.journal.schema import metadata
from tests.audit.receivers import PySyslog
from tests.tlsutil import Certs, make_certs


@pytest.fixture(autouse=True)
def _fresh_capture(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with nothing captured, no audit config from the environment and audit.read known."""
    for name in ("ESB_AUDIT_REPOSITORY", "ESB_AUDIT_CONFIG", "ESB_ADMIN_DENY"):
        monkeypatch.delenv(name, raising=False)
    if "audit.read" not in authz.PERMISSIONS:  # until the users helper adds it to esb/authz.py (issue 7)
        monkeypatch.setattr(authz, "PERMISSIONS", (*authz.PERMISSIONS, "audit.read"))
    audit.clear_captured()
    yield
    audit.clear_captured()


@pytest.fixture
def audit_db(db_url: str) -> Iterator[sa.Engine]:
    """The engine database (SQLite, and PostgreSQL with ESB_TEST_PG_URL) with the audit tables only
    (the full upgrade costs seconds; tests/audit/test_migration.py holds the migration to the schema)."""
    engine = database.make_engine(db_url)
    metadata.create_all(engine, tables=[records, patients])
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def store(audit_db: sa.Engine) -> AuditStore:
    return AuditStore(audit_db)


@pytest.fixture
def trail(store: AuditStore) -> Iterator[AuditTrail]:
    """A trail installed for the test: emit() stores into ``audit_db``."""
    made = AuditTrail(store, AuditSource("test-node", "test-site"))
    made.start()
    audit.install(made)
    try:
        yield made
    finally:
        made.stop()
        audit.uninstall(made)


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    directory = tmp_path / "certs"
    directory.mkdir()
    return make_certs(directory)


@pytest.fixture
def py_syslog(certs: Certs) -> Iterator[PySyslog]:
    """A started Python syslog receiver (TLS, no client certificate asked for, and UDP)."""
    receiver = PySyslog(certs.server_context(ssl.CERT_NONE))
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.close()
