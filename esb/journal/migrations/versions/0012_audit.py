"""Audit trail (IHE ATNA): audit records, the durable buffer towards the ARR, and their patients (esb/audit/schema.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_audit_records",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("event_id", sa.String(16), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("outcome", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("source_node", sa.String(200), nullable=False),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_esb_audit_records_unsent", "esb_audit_records", ["sent_at", "lease_until"])
    op.create_index("ix_esb_audit_records_created", "esb_audit_records", ["created_at"])
    op.create_index("ix_esb_audit_records_user", "esb_audit_records", ["user_id", "created_at"])
    op.create_index("ix_esb_audit_records_event", "esb_audit_records", ["event_id", "created_at"])
    op.create_table(
        "esb_audit_patients",
        sa.Column("record_id", sa.String(32), nullable=False),
        sa.Column("patient_id", sa.String(256), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["esb_audit_records.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("record_id", "patient_id"),
    )
    op.create_index("ix_esb_audit_patients_patient", "esb_audit_patients", ["patient_id"])


def downgrade() -> None:
    op.drop_index("ix_esb_audit_patients_patient", table_name="esb_audit_patients")
    op.drop_table("esb_audit_patients")
    op.drop_index("ix_esb_audit_records_event", table_name="esb_audit_records")
    op.drop_index("ix_esb_audit_records_user", table_name="esb_audit_records")
    op.drop_index("ix_esb_audit_records_created", table_name="esb_audit_records")
    op.drop_index("ix_esb_audit_records_unsent", table_name="esb_audit_records")
    op.drop_table("esb_audit_records")
