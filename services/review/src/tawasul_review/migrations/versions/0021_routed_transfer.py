"""Each work item keeps, with the sequence of routing's latest decision applied, the transfer
that decision answered (its sequence among review's status changes), which orders routing's
decisions first: routing numbers its decisions again when a restore of its database is
replayed, so a transferred item waited for a decision numbered higher than the new ones. 0 for
items of before: routing's count orders their decisions as it did.

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "work_items",
        sa.Column("routed_transfer", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("work_items", "routed_transfer")
