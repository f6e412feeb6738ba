"""Each request's placement keeps the sequence of routing's decision applied, so that one
replayed from the dead letters, or late, after a later one (a transfer) is skipped rather than
giving the request's documents back to the department it left. 0 for rows of before: every
decision stamped since applies.

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
    op.add_column(
        "request_departments",
        sa.Column("sequence", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("request_departments", "sequence")
