"""The account's open requests, indexed apart from its history.

Each submission reads the account's open requests (at most ten): through
requests_applicant_recent it read every request the account had ever filed, 11 ms a
submission for an establishment with 20,000 requests behind it, and longer each year, under
the account's lock. Built concurrently so that a live office keeps writing while it builds.

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

OPEN = sa.text(
    "status IN ('submitted', 'under_review', 'needs_more_info', 'returned_by_applicant',"
    " 'transferred')"
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_concurrently(
            "requests_applicant_open",
            "requests",
            ["applicant_id"],
            postgresql_where=OPEN,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("requests_applicant_open", "requests", postgresql_concurrently=True)
