"""Objects still to delete from the bucket, recorded in the transaction that removes their rows,
so that storage down at that moment delays their deletion rather than leaving them for good.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "object_deletions",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )


def downgrade() -> None:
    op.drop_table("object_deletions")
