"""An index for the notification results gauge: deliveries of the last hour by channel and
status, read every TAWASUL_METRICS_SECONDS, come from the index alone (channel and status
are included) instead of a scan of every delivery ever made. Built concurrently so that a
live office keeps writing while it builds.

Revision ID: 0003
Revises: 0002
"""

from alembic import op
from tawasul_platform.migrations import create_index_concurrently

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_concurrently(
            "deliveries_created",
            "deliveries",
            ["created_at"],
            postgresql_include=["channel", "status"],
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("deliveries_created", "deliveries", postgresql_concurrently=True)
