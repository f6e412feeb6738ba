"""Quality checks in pages, the ones still to make indexed apart from the ones made.

A supervisor's list of pending checks (oldest first) read the department's checks in
sampled_at order through their one index and skipped the checked ones, which are the oldest:
every check the department had ever made, each listing, growing with the years. The list of
every check (newest first) and both lists' pages are read in (sampled_at, request_id) order.
Built concurrently so that a live office keeps writing while they build.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op
from tawasul_platform.migrations import create_index_concurrently

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = ["department", "sampled_at", "request_id"]


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_concurrently("quality_checks_sampled", "quality_checks", COLUMNS)
        # The pending index again, on the new columns (the old one is dropped first).
        create_index_concurrently(
            "quality_checks_pending",
            "quality_checks",
            COLUMNS,
            postgresql_where=sa.text("checked_by = ''"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("quality_checks_pending", "quality_checks", postgresql_concurrently=True)
        op.create_index(
            "quality_checks_pending",
            "quality_checks",
            ["department", "sampled_at"],
            postgresql_concurrently=True,
        )
        op.drop_index("quality_checks_sampled", "quality_checks", postgresql_concurrently=True)
