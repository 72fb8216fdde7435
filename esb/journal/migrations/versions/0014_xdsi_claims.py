"""XDS-I.b: a publisher's claim on the study whose manifest it is submitting (profiles/xdsi/claims.py).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_xdsi_claims",
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("study_uid"),
    )


def downgrade() -> None:
    op.drop_table("esb_xdsi_claims")
