"""Each request keeps the highest sequence of review's status changes applied to it, so that
one replayed from the dead letters, or late, after a later one is skipped rather than putting
the beneficiary's request back in an earlier status (review's clock and intake's may differ,
so the time cannot tell). 0 for requests of before: every change stamped since applies.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "requests",
        sa.Column("status_sequence", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("requests", "status_sequence")
