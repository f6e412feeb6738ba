"""Follow-ups raise an item's priority; cancellations withdraw it, even before it arrives.

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
        "work_items", sa.Column("priority", sa.Integer, nullable=False, server_default="0")
    )
    op.drop_index("work_items_open", "work_items")
    op.create_index(
        "work_items_open",
        "work_items",
        ["department", "queued_at"],
        postgresql_where=sa.text("state IN ('queued', 'claimed')"),
    )
    op.create_table(
        "withdrawals",
        sa.Column("request_id", sa.Uuid, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("withdrawals")
    op.drop_index("work_items_open", "work_items")
    op.create_index(
        "work_items_open",
        "work_items",
        ["department", "queued_at"],
        postgresql_where=sa.text("state <> 'decided'"),
    )
    op.drop_column("work_items", "priority")
