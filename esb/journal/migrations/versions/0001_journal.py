"""The message journal, delivery queue, attempt log and timer ticks.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from alembic import op

from esb.journal.schema import attempts, deliveries, messages, timer_ticks

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = (messages, deliveries, attempts, timer_ticks)


def upgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_TABLES):
        table.drop(bind, checkfirst=True)
