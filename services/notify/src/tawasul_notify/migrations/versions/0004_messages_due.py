"""Messages are sent off the deliveries table: one consumer group records every channel's
messages pending, and a sender per channel takes the ones due. `retry_at` keeps a message that
met its channel unavailable back until its next try; the index finds a channel's due messages
among the pending ones alone (one-time codes are sent by their call, never by a sender).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from tawasul_platform.migrations import create_index_concurrently

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A Job killed after the index was built, before 0004 was stamped, added it already.
    op.add_column(
        "deliveries", sa.Column("retry_at", sa.DateTime(timezone=True)), if_not_exists=True
    )
    with op.get_context().autocommit_block():
        create_index_concurrently(
            "deliveries_due",
            "deliveries",
            ["channel", "created_at"],
            postgresql_where=sa.text("status = 'pending' AND kind <> 'one_time_code'"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("deliveries_due", "deliveries", postgresql_concurrently=True)
    op.drop_column("deliveries", "retry_at")
