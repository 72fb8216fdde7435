"""DICOM active collection: jobs and their studies (profiles/dicom/collect_schema.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_dicom_collect_jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("since", sa.String(8), nullable=False),
        sa.Column("until", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("studies_found", sa.Integer(), nullable=False),
        sa.Column("studies_retrieved", sa.Integer(), nullable=False),
        sa.Column("studies_skipped", sa.Integer(), nullable=False),
        sa.Column("studies_failed", sa.Integer(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_esb_dicom_collect_jobs_window", "esb_dicom_collect_jobs", ["source", "since", "until", "method", "status"]
    )
    op.create_table(
        "esb_dicom_collect_items",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("study_date", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("remote_instances", sa.Integer(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["esb_dicom_collect_jobs.id"]),
        sa.PrimaryKeyConstraint("job_id", "study_uid"),
    )
    op.create_index("ix_esb_dicom_collect_items_status", "esb_dicom_collect_items", ["job_id", "status"])


def downgrade() -> None:
    op.drop_table("esb_dicom_collect_items")
    op.drop_table("esb_dicom_collect_jobs")
