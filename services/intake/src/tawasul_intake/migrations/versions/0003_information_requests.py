"""What an information request asks for, and by when.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("missing", JSONB, nullable=False, server_default="[]"))
    op.add_column("requests", sa.Column("respond_by", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("requests", "respond_by")
    op.drop_column("requests", "missing")
