"""Each request keeps whether a citizen, a resident or an establishment filed it: the
establishment portal (Muqeem) shows its requests in words of its own ("returned to applicant"
where Absher says "needs additional action").

Requests stored before take it from the applicant's number: intake has only ever taken a
citizen's starting 1 and a resident's starting 2, so any other was an establishment's.

The column keeps its default: the previous release's pods serve until the rollout replaces
them, after this has run, and their INSERTs do not name it. Adding it with a constant default
rewrites no row; the backfill then runs in batches, each committed alone, outside the ADD
COLUMN's lock: in one statement under it, every read of a request waited for the whole table
to be rewritten. A Job killed midway runs it again from the start.

Revision ID: 0010
Revises: 0009
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Requests a batch of the backfill reads (by id) and commits at once.
BATCH = 5000
# The batch after the request `after`: its citizens' and residents' requests take their role,
# and the statement returns the batch's last id (none: the table is done).
BACKFILL = sa.text(
    "WITH batch AS (SELECT id FROM requests WHERE id > :after ORDER BY id LIMIT :size),"
    " changed AS (UPDATE requests AS r SET applicant_role = CASE left(r.applicant_id, 1)"
    " WHEN '1' THEN 'citizen' ELSE 'resident' END FROM batch WHERE r.id = batch.id"
    " AND left(r.applicant_id, 1) IN ('1', '2') AND r.applicant_role = 'establishment')"
    " SELECT id FROM batch ORDER BY id DESC LIMIT 1"
).bindparams(sa.bindparam("after", type_=sa.Uuid), sa.bindparam("size", type_=sa.Integer))


def upgrade() -> None:
    op.add_column(
        "requests",
        sa.Column("applicant_role", sa.String(16), nullable=False, server_default="establishment"),
        if_not_exists=True,  # a Job killed in the backfill added it already
    )
    with op.get_context().autocommit_block():
        after: uuid.UUID | None = uuid.UUID(int=0)
        while after is not None:
            after = op.get_bind().execute(BACKFILL, {"after": after, "size": BATCH}).scalar()


def downgrade() -> None:
    op.drop_column("requests", "applicant_role")
