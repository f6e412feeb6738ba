"""`told_status.appeal_until`: the last day the latest rejection a request's beneficiary was told
of may be appealed (its event's). Review's cancel-too-late restating the rejection does not
carry it, and tells the beneficiary again that they may appeal: by that day, as the rejection
said. Empty for requests told before: "within the time allowed", as then.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("told_status", sa.Column("appeal_until", sa.Date()))


def downgrade() -> None:
    op.drop_column("told_status", "appeal_until")
