"""When a request's check last held an unattached document: it expires a full lifetime after
that, so the sweep cannot remove it between intake's check and the attaching event.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("held_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("documents", "held_at")
