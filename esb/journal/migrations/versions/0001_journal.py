"""The message journal, delivery queue, attempt log and timer ticks.

Spelled out table by table instead of built from ``esb.journal.schema``: a
migration is a frozen picture of the schema at its revision, so later
revisions can change ``schema.py`` without this one changing under them.
``tests/journal/test_migrations.py`` checks that head equals ``schema.py``.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_messages",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("route_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=True),
        sa.Column("source", sa.String(1000), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("body_size", sa.Integer(), nullable=False),
        sa.Column("store_mode", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("replay_of", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_esb_messages_status_lease", "esb_messages", ["status", "lease_until"])
    op.create_index("ix_esb_messages_route_time", "esb_messages", ["route_id", "received_at"])
    op.create_index("ix_esb_messages_correlation", "esb_messages", ["correlation_id"])

    op.create_table(
        "esb_deliveries",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(32), nullable=False),
        sa.Column("route_id", sa.String(200), nullable=False),
        sa.Column("destination", sa.String(1000), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("delay", sa.Float(), nullable=False),
        sa.Column("multiplier", sa.Float(), nullable=False),
        sa.Column("max_delay", sa.Float(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["esb_messages.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_esb_deliveries_claim", "esb_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_esb_deliveries_message", "esb_deliveries", ["message_id"])
    op.create_index("ix_esb_deliveries_destination", "esb_deliveries", ["destination", "status"])

    op.create_table(
        "esb_delivery_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("node", sa.String(200), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["esb_deliveries.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_esb_attempts_delivery", "esb_delivery_attempts", ["delivery_id"])

    op.create_table(
        "esb_timer_ticks",
        sa.Column("route_id", sa.String(200), nullable=False),
        sa.Column("tick", sa.DateTime(), nullable=False),
        sa.Column("node", sa.String(200), nullable=True),
        sa.UniqueConstraint("route_id", "tick", name="uq_esb_timer_ticks"),
    )


def downgrade() -> None:
    op.drop_table("esb_timer_ticks")
    op.drop_index("ix_esb_attempts_delivery", table_name="esb_delivery_attempts")
    op.drop_table("esb_delivery_attempts")
    for index in ("ix_esb_deliveries_destination", "ix_esb_deliveries_message", "ix_esb_deliveries_claim"):
        op.drop_index(index, table_name="esb_deliveries")
    op.drop_table("esb_deliveries")
    for index in ("ix_esb_messages_correlation", "ix_esb_messages_route_time", "ix_esb_messages_status_lease"):
        op.drop_index(index, table_name="esb_messages")
    op.drop_table("esb_messages")
