"""MLLP duplicate detection: the first answer per (route, sending application/facility, control id).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_mllp_dedup",
        sa.Column("route_id", sa.String(200), nullable=False),
        sa.Column("sending_application", sa.String(250), nullable=False),
        sa.Column("sending_facility", sa.String(250), nullable=False),
        sa.Column("control_id", sa.String(200), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(32), nullable=True),
        sa.Column("ack_code", sa.String(2), nullable=True),
        sa.Column("error_code", sa.String(16), nullable=True),
        sa.Column("ack_text", sa.String(500), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("route_id", "sending_application", "sending_facility", "control_id"),
    )
    op.create_index("ix_esb_mllp_dedup_received", "esb_mllp_dedup", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_esb_mllp_dedup_received", table_name="esb_mllp_dedup")
    op.drop_table("esb_mllp_dedup")
