"""The Alembic migrations build exactly ``schema.py``, on SQLite and PostgreSQL, and re-running them is harmless."""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

from adapters.etl import schema as etl_schema
from esb.audit import schema as audit_schema
from esb.cli import main_group
from esb.journal import database, schema
from esb.security import users as users_schema
from profiles.dicom import collect_schema as dicom_collect_schema
from profiles.dicom import commitment_schema as dicom_commitment_schema
from profiles.dicom import schema as dicom_schema
from profiles.empi import schema as empi_schema
from profiles.worklist import schema as worklist_schema
from profiles.xds.registry import schema as xds_schema
from profiles.xds.repository import schema as xds_repository_schema
from profiles.xdsi import schema as xdsi_schema

#: the newest migration; every table of every module that adds to the one metadata
HEAD = "0016"
assert empi_schema.patients.metadata is schema.metadata
assert xds_schema.objects.metadata is schema.metadata
assert xds_repository_schema.documents.metadata is schema.metadata
assert dicom_schema.studies.metadata is schema.metadata
assert xdsi_schema.manifests.metadata is schema.metadata
assert worklist_schema.items.metadata is schema.metadata
assert dicom_collect_schema.jobs.metadata is schema.metadata
assert dicom_commitment_schema.commitments.metadata is schema.metadata
assert etl_schema.checkpoints.metadata is schema.metadata
assert audit_schema.records.metadata is schema.metadata
assert users_schema.users.metadata is schema.metadata


def differences(engine: sa.Engine) -> list[object]:
    """What autogenerate would write into a new migration (the version table is left out by alembic)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, schema.metadata))


def table_names(engine: sa.Engine) -> set[str]:
    return {name for name in sa.inspect(engine).get_table_names() if name.startswith("esb_")}


def test_upgrade_to_head_equals_schema_and_is_idempotent(db_url: str) -> None:
    engine = database.make_engine(db_url)
    try:
        assert table_names(engine) == set()
        assert database.current_revision(engine) is None
        database.upgrade(engine)
        assert differences(engine) == []
        database.upgrade(engine)
        assert differences(engine) == []
        assert database.current_revision(engine) == database.head_revision(engine) == HEAD
        assert table_names(engine) == set(schema.metadata.tables)
    finally:
        engine.dispose()


def test_downgrade_to_base_drops_everything_and_upgrade_rebuilds(db_url: str) -> None:
    engine = database.make_engine(db_url)
    try:
        database.upgrade(engine)
        database.downgrade(engine, "base")
        assert table_names(engine) == set()
        assert database.current_revision(engine) is None
        database.upgrade(engine)
        assert differences(engine) == []
    finally:
        engine.dispose()


def test_cli_db_upgrade_reports_the_head_revision(db_url: str) -> None:
    runner = CliRunner()
    for _ in range(2):  # the second run finds the schema current and says so
        result = runner.invoke(main_group, ["--json", "db", "upgrade"], env={"ESB_DB_URL": db_url})
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["revision"] == report["head"] == HEAD
    engine = database.make_engine(db_url)
    try:
        assert differences(engine) == []
    finally:
        engine.dispose()
