"""Each work item keeps the highest sequence of routing's decisions applied to it, so that a
decision replayed from the dead letters, or late, after a later one is skipped rather than
moving the item back to a department it left. 0 for items of before: every decision stamped
since applies.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "work_items",
        sa.Column("routed_sequence", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("work_items", "routed_sequence")
