"""`told_status` keeps, per request, the latest status change its beneficiary was told of
(review's sequence), so that one replayed from the dead letters, or late, after a later one is
not told: it would say what is no longer true. Empty at first: every change stamped since is
told once.

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
    op.create_table(
        "told_status",
        sa.Column("request_id", sa.Uuid, primary_key=True),
        sa.Column("sequence", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("told_status")
