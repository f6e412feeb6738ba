"""Indexes for a queue page and a reviewer's claims that do not grow with the stored requests.

ListQueue's first page read every open item of the department (work_items_open gives them in
queued_at order, the page is by priority first) to sort them for 51 rows; ClaimNext counted
the caller's claims by reading every claimed item (work_items_leases is by lease end). With
1M stored requests both took hundreds of milliseconds (issue 12, P5). Built concurrently so
that a live office keeps writing while they build.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from tawasul_platform.migrations import create_index_concurrently

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OPEN = sa.text("state IN ('queued', 'claimed')")
CLAIMED = sa.text("state = 'claimed'")


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_concurrently(
            "work_items_queue",
            "work_items",
            ["department", sa.text("priority DESC"), "queued_at", "request_number"],
            postgresql_where=OPEN,
        )
        create_index_concurrently(
            "work_items_held",
            "work_items",
            ["assignee"],
            postgresql_where=CLAIMED,
        )
        # The new queue index has the same rows and leads with the department as well.
        op.drop_index("work_items_open", "work_items", postgresql_concurrently=True, if_exists=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "work_items_open",
            "work_items",
            ["department", "queued_at"],
            postgresql_where=OPEN,
            postgresql_concurrently=True,
        )
        op.drop_index("work_items_held", "work_items", postgresql_concurrently=True)
        op.drop_index("work_items_queue", "work_items", postgresql_concurrently=True)
