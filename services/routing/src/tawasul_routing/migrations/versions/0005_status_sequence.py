"""Each decision keeps the highest sequence of review's status changes applied to its request,
so that a transfer replayed from the dead letters, or late, after a later one is skipped
rather than sending the request back. 0 for decisions made before: every transfer stamped
since applies over them.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "decisions",
        sa.Column("status_sequence", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("decisions", "status_sequence")
