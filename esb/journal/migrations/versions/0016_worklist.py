"""Modality Worklist items and performed procedure steps (profiles/worklist/schema.py).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_worklist_items",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("accession_number", sa.String(16), nullable=False),
        sa.Column("sps_id", sa.String(16), nullable=False),
        sa.Column("requested_procedure_id", sa.String(16), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("issuer", sa.String(64), nullable=False),
        sa.Column("patient_name", sa.String(200), nullable=False),
        sa.Column("patient_name_key", sa.String(200), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("station_ae", sa.String(16), nullable=False),
        sa.Column("start_date", sa.String(8), nullable=False),
        sa.Column("start_time", sa.String(13), nullable=False),
        sa.Column("performing_physician", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("placer_order", sa.String(64), nullable=False),
        sa.Column("filler_order", sa.String(64), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("accession_number", "sps_id", name="uq_esb_worklist_items_step"),
    )
    op.create_index("ix_esb_worklist_items_station", "esb_worklist_items", ["station_ae", "start_date"])
    op.create_index("ix_esb_worklist_items_modality", "esb_worklist_items", ["modality", "start_date"])
    op.create_index("ix_esb_worklist_items_patient", "esb_worklist_items", ["patient_id"])
    op.create_index("ix_esb_worklist_items_status", "esb_worklist_items", ["status", "start_date"])
    op.create_table(
        "esb_worklist_performed",
        sa.Column("sop_uid", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("station_ae", sa.String(16), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("accession_numbers", sa.String(200), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sop_uid"),
    )
    op.create_index("ix_esb_worklist_performed_status", "esb_worklist_performed", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_table("esb_worklist_performed")
    op.drop_table("esb_worklist_items")
