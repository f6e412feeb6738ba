"""A quality check shows the decision that stands: one made on an appeal takes the place of
the decision it replaced, which the check names with its reviewer. Empty for the checks of
decisions not made on an appeal.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "quality_checks",
        sa.Column("replaced_decision", sa.String(20), nullable=False, server_default=""),
    )
    op.add_column(
        "quality_checks",
        sa.Column("replaced_by", sa.String(50), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_column("quality_checks", "replaced_by")
    op.drop_column("quality_checks", "replaced_decision")
