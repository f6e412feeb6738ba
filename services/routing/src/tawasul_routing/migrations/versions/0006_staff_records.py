"""Review's latest record of each reviewer (from its compacted topic), so that routing narrows a
reviewer's token as review does: a department their record takes away is closed here too.

Revision ID: 0006
Revises: 0005
"""

from alembic import op
from tawasul_platform.migrations import create_staff_records_table

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_staff_records_table()


def downgrade() -> None:
    op.drop_table("staff_records")
