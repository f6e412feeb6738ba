"""`told_status.cancelled_at`: when the cancellation a request's beneficiary was told of was
made. Review restates a cancellation that a closure for want of an answer overtook, at the
same time, and the closure says the deadline it closed at: the beneficiary hears
"cancelled" once, and no "closed" between. Empty for requests told before: their closures and
restatements are told as they were.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("told_status", sa.Column("cancelled_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("told_status", "cancelled_at")
