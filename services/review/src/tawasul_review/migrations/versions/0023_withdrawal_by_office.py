"""A cancellation that reaches review before its request keeps whether the office made it (the
person off the filing account's record, another account filing for them), so that the item's
history records it as the system's doing, not the applicant's. False for those of before: only
the beneficiary cancelled then.

Revision ID: 0023
Revises: 0022
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "withdrawals",
        sa.Column("by_office", sa.Boolean, nullable=False, server_default="false"),
    )


def downgrade() -> None:
    op.drop_column("withdrawals", "by_office")
