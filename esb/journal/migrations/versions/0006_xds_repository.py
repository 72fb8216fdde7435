"""XDS repository: stored documents and their blob keys.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_xds_documents",
        sa.Column("repository_unique_id", sa.String(128), nullable=False),
        sa.Column("unique_id", sa.String(128), nullable=False),
        sa.Column("storage_key", sa.String(200), nullable=False),
        sa.Column("mime_type", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.Column("registered_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("repository_unique_id", "unique_id"),
    )
    op.create_index("ix_esb_xds_documents_key", "esb_xds_documents", ["storage_key"])
    op.create_index("ix_esb_xds_documents_status", "esb_xds_documents", ["status", "stored_at"])


def downgrade() -> None:
    op.drop_table("esb_xds_documents")
