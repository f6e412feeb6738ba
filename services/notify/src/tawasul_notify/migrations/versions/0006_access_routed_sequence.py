"""`request_access` keeps the highest sequence of routing's decisions applied to each request,
so that a routing replayed from the dead letters, or late, after a later one (a transfer) is
skipped rather than giving the request's deliveries back to the department it left. 0 for
rows of before: every decision stamped since applies.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "request_access",
        sa.Column("routed_sequence", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("request_access", "routed_sequence")
