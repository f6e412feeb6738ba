"""Decisions carry the priority the routing rules gave.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "decisions", sa.Column("priority", sa.Integer, nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.drop_column("decisions", "priority")
