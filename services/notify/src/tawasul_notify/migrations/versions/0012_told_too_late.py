"""`told_status.too_late_at`: when the cancellation that the latest cancel-too-late a request's
beneficiary was told of answered was made. Review says a cancellation came too late at the time
intake took it, on its own topic: intake's cancellation, read after it, was answered already
and neither stands nor is told. Empty for requests told before: as they were.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("told_status", sa.Column("too_late_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("told_status", "too_late_at")
