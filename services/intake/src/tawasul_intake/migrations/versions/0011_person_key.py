"""One open request per person and sub-service tells apart people without a number.

A dependent with no ID number yet is filed under the account holder's (subject_id empty):
every such request was the holder's, so adding a newborn while the spouse's request was open
was refused as a duplicate. `person_key` holds a digest of what the form names them by
(OpenKey.person), empty for everyone with a number, and joins the unique index.

Requests stored before keep an empty key here (0013 gives them theirs). The column is added
with a constant default, which rewrites no row and serves the previous release's INSERTs
during the rollout; the index is built anew beside the old one without blocking writers and
takes its name, which the code tells a duplicate by. A Job killed anywhere in it runs it again.

The downgrade keeps the column: the previous release files every request with an empty key
(its INSERTs leave it to the default), and its index is built over those only. Two open
requests of one holder's dependents without a number, for one sub-service, are what this
release exists to take, and the previous index over every open request could not be built
beside them: the rollback failed. They stay open outside it; the previous release still
refuses a third (it looks for any open request of the subject and sub-service), and the
upgrade again finds their keys where they were.

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
# The previous release's index: over the requests it filed.
UNKEYED = sa.text(f"{OPEN.text} AND person_key = ''")


def upgrade() -> None:
    op.add_column(
        "requests",
        sa.Column("person_key", sa.String(64), nullable=False, server_default=""),
        if_not_exists=True,
    )
    with op.get_context().autocommit_block():
        _swap(["subject_id", "sub_service_code", "person_key"], OPEN)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        _swap(["subject_id", "sub_service_code"], UNKEYED)


def _swap(columns: list[str], where: sa.TextClause) -> None:
    create_index_concurrently(BUILT, "requests", columns, unique=True, postgresql_where=where)
    op.drop_index("requests_one_open", "requests", postgresql_concurrently=True, if_exists=True)
    op.execute(f"ALTER INDEX {BUILT} RENAME TO requests_one_open")
