"""Whether a rejection was appealed (once).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "requests", sa.Column("appealed", sa.Boolean, nullable=False, server_default="false")
    )


def downgrade() -> None:
    op.drop_column("requests", "appealed")
