"""`object_deletions.taken`: the sweep marks the records it is about to delete the objects of,
in a transaction of their own, before it deletes them. An upload's row no longer keeps a taken
record: it committed while the sweep deleted its object, it would point to nothing. Those
recorded before: not taken, as they were.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "object_deletions",
        sa.Column("taken", sa.Boolean, nullable=False, server_default="false"),
    )


def downgrade() -> None:
    op.drop_column("object_deletions", "taken")
