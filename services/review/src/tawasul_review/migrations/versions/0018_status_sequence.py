"""Each work item counts the status changes published for its request, and each change carries
its count (the wire's `sequence`): its consumers skip one no later than one they applied (a
dead letter replayed, a late one) rather than putting the request back in an earlier status.
0 for items of before: their next change is 1, as their consumers' 0 is "none yet".

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "work_items",
        sa.Column("status_sequence", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("work_items", "status_sequence")
