"""DICOM storage commitment requests and their reports (profiles/dicom/commitment_schema.py).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_dicom_commitments",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("transaction_uid", sa.String(64), nullable=False),
        sa.Column("calling_ae", sa.String(16), nullable=False),
        sa.Column("remote", sa.String(64), nullable=False),
        sa.Column("refs", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("committed", sa.Integer(), nullable=True),
        sa.Column("failed", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_esb_dicom_commitments_due", "esb_dicom_commitments", ["status", "next_attempt_at"])
    op.create_index("ix_esb_dicom_commitments_transaction", "esb_dicom_commitments", ["transaction_uid"])


def downgrade() -> None:
    op.drop_table("esb_dicom_commitments")
