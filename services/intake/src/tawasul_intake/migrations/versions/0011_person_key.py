"""One open request per person and sub-service tells apart people without a number.

A dependent with no ID number yet is filed under the account holder's (subject_id empty):
every such request was the holder's, so adding a newborn while the spouse's request was open
was refused as a duplicate. `person_key` holds a digest of what the form names them by
(OpenKey.person), empty for everyone with a number, and joins the unique index.

Requests stored before keep an empty key (as they were compared). The column is added with a
constant default, which rewrites no row and serves the previous release's INSERTs during the
rollout; the index is built anew beside the old one without blocking writers and takes its
name, which the code tells a duplicate by. A Job killed anywhere in it runs it again.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from tawasul_platform.migrations import create_index_concurrently

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OPEN = sa.text(
    "status IN ('submitted', 'under_review', 'needs_more_info', 'returned_by_applicant',"
    " 'transferred')"
)
BUILT = "requests_one_open_person"


def upgrade() -> None:
    op.add_column(
        "requests",
        sa.Column("person_key", sa.String(64), nullable=False, server_default=""),
        if_not_exists=True,
    )
    with op.get_context().autocommit_block():
        _swap(["subject_id", "sub_service_code", "person_key"])


def downgrade() -> None:
    with op.get_context().autocommit_block():
        _swap(["subject_id", "sub_service_code"])
    op.drop_column("requests", "person_key")


def _swap(columns: list[str]) -> None:
    create_index_concurrently(BUILT, "requests", columns, unique=True, postgresql_where=OPEN)
    op.drop_index("requests_one_open", "requests", postgresql_concurrently=True, if_exists=True)
    op.execute(f"ALTER INDEX {BUILT} RENAME TO requests_one_open")
