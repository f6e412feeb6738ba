"""A follow-up that reaches review before its request (routing keeps one it reads before the
submission, and the request is routed after it) is kept, as a cancellation is, and goes on
the item's record when the item arrives: it was dead-lettered.

Revision ID: 0025
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "early_follow_ups",
        sa.Column("request_id", sa.Uuid, primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("early_follow_ups")
