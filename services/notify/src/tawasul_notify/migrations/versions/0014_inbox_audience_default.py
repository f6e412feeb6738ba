"""`inbox_messages.audience` has its default back where 0010 dropped it (0010 now keeps it).

Without it the previous release's pods, serving through a rollout after the Job has migrated,
inserted in-app messages without the column, met NOT NULL and dead-lettered the events. A
catalog change only: no row is rewritten.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("inbox_messages", "audience", server_default="beneficiary")


def downgrade() -> None:
    """Nothing to undo: 0010 keeps the default now, so 0013's schema has it too."""
