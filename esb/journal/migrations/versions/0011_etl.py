"""ETL jobs: checkpoints (with the job's lease), runs and rejected rows (adapters/etl/schema.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_etl_checkpoints",
        sa.Column("route_id", sa.String(200), nullable=False),
        sa.Column("watermark", sa.String(100), nullable=True),
        sa.Column("watermark_type", sa.String(16), nullable=True),
        sa.Column("last_key", sa.String(200), nullable=True),
        sa.Column("key_type", sa.String(16), nullable=True),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("route_id"),
    )
    op.create_table(
        "esb_etl_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("route_id", sa.String(200), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_loaded", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("rows_skipped", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_esb_etl_runs_route", "esb_etl_runs", ["route_id", "started_at"])
    op.create_table(
        "esb_etl_rejects",
        sa.Column("route_id", sa.String(200), nullable=False),
        sa.Column("row_key", sa.String(200), nullable=False),
        sa.Column("watermark", sa.String(100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("row_json", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.DateTime(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("route_id", "row_key"),
    )
    op.create_index("ix_esb_etl_rejects_status", "esb_etl_rejects", ["route_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_esb_etl_rejects_status", table_name="esb_etl_rejects")
    op.drop_table("esb_etl_rejects")
    op.drop_index("ix_esb_etl_runs_route", table_name="esb_etl_runs")
    op.drop_table("esb_etl_runs")
    op.drop_table("esb_etl_checkpoints")
