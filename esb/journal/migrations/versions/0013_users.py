"""Users, roles, permissions, API tokens (esb/security/users.py) and the WS-Security replay window
(adapters/soap/wssecurity.py).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_users",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("cert_subject", sa.String(500), nullable=True),
        sa.Column("cert_fingerprint", sa.String(64), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_esb_users_fingerprint", "esb_users", ["cert_fingerprint"])
    op.create_index("ix_esb_users_subject", "esb_users", ["cert_subject"])
    op.create_table(
        "esb_roles",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("modalities", sa.String(500), nullable=False),
        sa.Column("departments", sa.String(1000), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "esb_role_permissions",
        sa.Column("role", sa.String(200), nullable=False),
        sa.Column("permission", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(["role"], ["esb_roles.name"]),
        sa.PrimaryKeyConstraint("role", "permission"),
    )
    op.create_table(
        "esb_user_roles",
        sa.Column("user_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(["user_name"], ["esb_users.name"]),
        sa.ForeignKeyConstraint(["role"], ["esb_roles.name"]),
        sa.PrimaryKeyConstraint("user_name", "role"),
    )
    op.create_index("ix_esb_user_roles_role", "esb_user_roles", ["role"])
    op.create_table(
        "esb_api_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_name"], ["esb_users.name"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_esb_api_tokens_user", "esb_api_tokens", ["user_name"])
    op.create_table(
        "esb_wss_seen",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_esb_wss_seen_expires", "esb_wss_seen", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_esb_wss_seen_expires", table_name="esb_wss_seen")
    op.drop_table("esb_wss_seen")
    op.drop_index("ix_esb_api_tokens_user", table_name="esb_api_tokens")
    op.drop_table("esb_api_tokens")
    op.drop_index("ix_esb_user_roles_role", table_name="esb_user_roles")
    op.drop_table("esb_user_roles")
    op.drop_table("esb_role_permissions")
    op.drop_table("esb_roles")
    op.drop_index("ix_esb_users_subject", table_name="esb_users")
    op.drop_index("ix_esb_users_fingerprint", table_name="esb_users")
    op.drop_table("esb_users")
