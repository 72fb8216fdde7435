"""Inbound duplicate control: (route, key) -> the message that took it (STOMP, staging tables, ETL).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_inbound_keys",
        sa.Column("route_id", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("message_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("route_id", "key"),
    )
    op.create_index("ix_esb_inbound_keys_created", "esb_inbound_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_esb_inbound_keys_created", table_name="esb_inbound_keys")
    op.drop_table("esb_inbound_keys")
