"""Review's latest record of each reviewer (from its compacted topic), so that notify narrows a
reviewer's token as review does: a department their record takes away is closed here too.

Revision ID: 0009
Revises: 0008
"""

from alembic import op
from tawasul_platform.migrations import create_staff_records_table

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_staff_records_table()


def downgrade() -> None:
    op.drop_table("staff_records")
