"""The quality checks still to make, indexed apart from the ones made.

A supervisor's list of pending checks (oldest first) read the department's checks in
sampled_at order through their one index and skipped the checked ones, which are the oldest:
every check the department had ever made, each listing, growing with the years. The old index
keeps the listing with the checked ones included, under a name that says what it orders by.
Built concurrently so that a live office keeps writing while it builds.

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
    op.execute("ALTER INDEX quality_checks_pending RENAME TO quality_checks_sampled")
    with op.get_context().autocommit_block():
        op.create_index(
            "quality_checks_pending",
            "quality_checks",
            ["department", "sampled_at"],
            postgresql_where=sa.text("checked_by = ''"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("quality_checks_pending", "quality_checks", postgresql_concurrently=True)
    op.execute("ALTER INDEX quality_checks_sampled RENAME TO quality_checks_pending")
