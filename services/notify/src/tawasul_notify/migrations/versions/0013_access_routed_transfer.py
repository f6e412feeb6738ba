"""`request_access.routed_transfer`: the transfer (its sequence among review's status changes)
that the latest of routing's decisions applied answered, which orders routing's decisions
before their own sequence: routing numbers them again when a restore of its database is
replayed, and a department recorded by a decision numbered higher than the new ones held
the deliveries of a request transferred since. 0 for requests of before: routing's count
orders their decisions as it did.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "request_access",
        sa.Column("routed_transfer", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("request_access", "routed_transfer")
