"""Each claimed item keeps the idempotency key of the ClaimNext that claimed it, while that
claim lasts: the call sent again under it by its holder (its answer lost) answers the same item
instead of claiming a second one. Empty for the items of before, and for claims made otherwise.

Revision ID: 0024
Revises: 0023
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "work_items",
        sa.Column("claim_key", sa.String(100), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_column("work_items", "claim_key")
