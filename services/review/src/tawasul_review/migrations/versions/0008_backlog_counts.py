"""An index from which the queue backlog is counted alone: GetBacklog and the queue gauges
(every TAWASUL_METRICS_SECONDS) count each department's open and waiting items by queue, SLA
state and age. Without it they read every such row from the table: at 1M stored requests a
quarter million wide rows every 15 s, which stalled the searches running beside them (issue
15, P8). Built concurrently so that a live office keeps writing while it builds.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from tawasul_platform.migrations import create_index_concurrently

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_concurrently(
            "work_items_backlog",
            "work_items",
            ["department", "queue", "state", "due_at"],
            postgresql_include=["queued_at"],
            postgresql_where=sa.text("state IN ('queued', 'claimed', 'waiting_on_applicant')"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("work_items_backlog", "work_items", postgresql_concurrently=True)
