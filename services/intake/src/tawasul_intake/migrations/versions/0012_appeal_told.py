"""A rejection keeps the last day to appeal it that the beneficiary was told (review's status
change says it): intake worked it out again at every look with the calendar of the day, so an
Eid announced a day earlier than forecast after the rejection took back a day the SMS had
promised, and an appeal on it was refused as late.

Nullable, no default: adding it rewrites no row, and rejections stored before keep the
window worked out as it was.

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
    op.add_column("requests", sa.Column("appeal_told", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("requests", "appeal_told")
