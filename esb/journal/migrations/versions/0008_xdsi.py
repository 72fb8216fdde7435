"""XDS-I.b: the KOS manifests published per study.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_xdsi_manifests",
        sa.Column("kos_uid", sa.String(64), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("entry_uuid", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(256), nullable=False),
        sa.Column("digest", sa.String(40), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kos_uid"),
    )
    op.create_index("ix_esb_xdsi_manifests_study", "esb_xdsi_manifests", ["study_uid", "published_at"])


def downgrade() -> None:
    op.drop_table("esb_xdsi_manifests")
