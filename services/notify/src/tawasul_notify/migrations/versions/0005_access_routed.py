"""A request's department in `request_access` is routing's once routing has decided: `routed`
says so, and a submission's catalog department, applied after it (one poll applies both
topics at once), no longer replaces it. Rows from before are taken as not routed.

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
        "request_access",
        sa.Column("routed", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("request_access", "routed")
