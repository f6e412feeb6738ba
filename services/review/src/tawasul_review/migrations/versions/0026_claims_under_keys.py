"""Each ClaimNext under an idempotency key that claimed an item is remembered, the claim or
not still lasting: the call sent again under it once the item is no longer the reviewer's
(its lease lapsed, released, given to another) says so, instead of claiming another that the
reviewer would take for the first. Forgotten a day after the claim (handlers.forget_leftovers).

Revision ID: 0026
Revises: 0025
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claim_keys",
        sa.Column("reviewer_id", sa.String(50), primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("request_id", sa.Uuid, nullable=False),
        sa.Column("request_number", sa.String(20), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("claim_keys")
