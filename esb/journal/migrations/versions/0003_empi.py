"""The EMPI: domains, persons, patients, identifiers, blocking keys, assertions, reviews, history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLES = (
    "esb_empi_history",
    "esb_empi_reviews",
    "esb_empi_assertions",
    "esb_empi_blocking",
    "esb_empi_identifiers",
    "esb_empi_patients",
    "esb_empi_persons",
    "esb_empi_domains",
)


def upgrade() -> None:
    op.create_table(
        "esb_empi_domains",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("namespace", sa.String(200), nullable=False),
        sa.Column("universal_id", sa.String(200), nullable=False),
        sa.Column("universal_id_type", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("auto_registered", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )

    op.create_table(
        "esb_empi_persons",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("merged_into", sa.String(64), nullable=True),
        sa.Column("golden", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )

    op.create_table(
        "esb_empi_patients",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("domain_key", sa.String(200), nullable=False),
        sa.Column("local_id", sa.String(200), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=True),
        sa.Column("link_kind", sa.String(16), nullable=False),
        sa.Column("link_weight", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("merged_into", sa.String(32), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(400), nullable=True),
        sa.Column("event_time", sa.String(32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("family", sa.String(200), nullable=True),
        sa.Column("given", sa.String(200), nullable=True),
        sa.Column("family_pinyin", sa.String(200), nullable=True),
        sa.Column("given_pinyin", sa.String(200), nullable=True),
        sa.Column("birth_date", sa.String(8), nullable=True),
        sa.Column("sex", sa.String(1), nullable=True),
        sa.Column("national_id", sa.String(18), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("domain_key", "local_id", name="uq_esb_empi_patients_local"),
    )
    op.create_index("ix_esb_empi_patients_person", "esb_empi_patients", ["person_id"])
    op.create_index("ix_esb_empi_patients_pinyin", "esb_empi_patients", ["family_pinyin", "given_pinyin"])
    op.create_index("ix_esb_empi_patients_name", "esb_empi_patients", ["family", "given"])
    op.create_index("ix_esb_empi_patients_birth", "esb_empi_patients", ["birth_date"])
    op.create_index("ix_esb_empi_patients_national_id", "esb_empi_patients", ["national_id"])

    op.create_table(
        "esb_empi_identifiers",
        sa.Column("domain_key", sa.String(200), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("patient_id", sa.String(32), nullable=False),
        sa.Column("type_code", sa.String(10), nullable=True),
        sa.PrimaryKeyConstraint(),
        sa.UniqueConstraint("domain_key", "value", name="uq_esb_empi_identifiers"),
    )
    op.create_index("ix_esb_empi_identifiers_patient", "esb_empi_identifiers", ["patient_id"])

    op.create_table(
        "esb_empi_blocking",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("patient_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint(),
        sa.UniqueConstraint("key", "patient_id", name="uq_esb_empi_blocking"),
    )
    op.create_index("ix_esb_empi_blocking_patient", "esb_empi_blocking", ["patient_id"])

    op.create_table(
        "esb_empi_assertions",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("patient_a", sa.String(32), nullable=False),
        sa.Column("patient_b", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_esb_empi_assertions_b", "esb_empi_assertions", ["patient_b"])
    op.create_index("ix_esb_empi_assertions_a", "esb_empi_assertions", ["patient_a"])

    op.create_table(
        "esb_empi_reviews",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("patient_a", sa.String(32), nullable=False),
        sa.Column("patient_b", sa.String(32), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("patient_a", "patient_b", name="uq_esb_empi_reviews_pair"),
    )
    op.create_index("ix_esb_empi_reviews_status", "esb_empi_reviews", ["status"])

    op.create_table(
        "esb_empi_history",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("op", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=True),
        sa.Column("patient_id", sa.String(32), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_esb_empi_history_patient", "esb_empi_history", ["patient_id"])
    op.create_index("ix_esb_empi_history_person", "esb_empi_history", ["person_id"])


def downgrade() -> None:
    for table in _TABLES:
        op.drop_table(table)
