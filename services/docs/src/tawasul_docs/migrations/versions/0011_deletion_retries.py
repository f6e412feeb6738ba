"""When each object still to delete may be deleted, and how often storage refused it: an
upload's object is recorded before it is stored, not to delete before its row may commit, and
one storage refuses is tried again later, so that it no longer holds up every other one.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "object_deletions",
        sa.Column(
            "not_before",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )
    op.add_column(
        "object_deletions",
        sa.Column("refusals", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("object_deletions", "refusals")
    op.drop_column("object_deletions", "not_before")
