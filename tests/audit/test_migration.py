"""Migration 0012 builds exactly the audit tables of esb/audit/schema.py, and takes them away again."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from esb.audit import schema as audit_schema
from esb.journal import database, schema

AUDIT_TABLES = {"esb_audit_records", "esb_audit_patients"}


def audit_differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        found = compare_metadata(context, schema.metadata)
    return [d for d in found if "esb_audit" in repr(d)]


def test_0012_creates_the_audit_tables_as_declared_and_downgrades(db_url: str) -> None:
    assert audit_schema.records.metadata is schema.metadata
    engine = database.make_engine(db_url)
    try:
        database.upgrade(engine, "0012")
        assert AUDIT_TABLES <= set(sa.inspect(engine).get_table_names())
        assert audit_differences(engine) == []
        database.downgrade(engine, "0011")
        assert not AUDIT_TABLES & set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
