"""XDS registry: objects, coded classifications, multi-valued query keys.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_xds_objects",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("lid", sa.String(64), nullable=False),
        sa.Column("status", sa.String(80), nullable=False),
        sa.Column("object_type", sa.String(80), nullable=True),
        sa.Column("unique_id", sa.String(128), nullable=True),
        sa.Column("patient_id", sa.String(256), nullable=True),
        sa.Column("home_community_id", sa.String(64), nullable=True),
        sa.Column("registered_at", sa.DateTime(), nullable=False),
        sa.Column("submission", sa.String(64), nullable=True),
        sa.Column("mime_type", sa.String(100), nullable=True),
        sa.Column("hash", sa.String(40), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("repository_unique_id", sa.String(128), nullable=True),
        sa.Column("creation_time", sa.String(14), nullable=True),
        sa.Column("service_start_time", sa.String(14), nullable=True),
        sa.Column("service_stop_time", sa.String(14), nullable=True),
        sa.Column("submission_time", sa.String(14), nullable=True),
        sa.Column("source_id", sa.String(128), nullable=True),
        sa.Column("last_update_time", sa.String(14), nullable=True),
        sa.Column("association_type", sa.String(80), nullable=True),
        sa.Column("source_object", sa.String(64), nullable=True),
        sa.Column("target_object", sa.String(64), nullable=True),
        sa.Column("xml", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_esb_xds_objects_patient", "esb_xds_objects", ["patient_id", "kind", "status"])
    op.create_index("ix_esb_xds_objects_unique", "esb_xds_objects", ["unique_id", "kind"])
    op.create_index("ix_esb_xds_objects_source", "esb_xds_objects", ["source_object", "association_type"])
    op.create_index("ix_esb_xds_objects_target", "esb_xds_objects", ["target_object", "association_type"])
    op.create_index("ix_esb_xds_objects_lid", "esb_xds_objects", ["lid"])

    op.create_table(
        "esb_xds_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("scheme", sa.String(64), nullable=False),
        sa.Column("code", sa.String(256), nullable=False),
        sa.Column("coding_scheme", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_esb_xds_codes_lookup", "esb_xds_codes", ["scheme", "code", "coding_scheme", "object_id"])
    op.create_index("ix_esb_xds_codes_object", "esb_xds_codes", ["object_id"])

    op.create_table(
        "esb_xds_values",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.String(512), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_esb_xds_values_lookup", "esb_xds_values", ["name", "value", "object_id"])
    op.create_index("ix_esb_xds_values_object", "esb_xds_values", ["object_id"])


def downgrade() -> None:
    op.drop_table("esb_xds_values")
    op.drop_table("esb_xds_codes")
    op.drop_table("esb_xds_objects")
