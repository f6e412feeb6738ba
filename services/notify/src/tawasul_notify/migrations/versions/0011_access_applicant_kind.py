"""Each request's access row keeps who filed it, a citizen, a resident or an establishment: an
establishment follows its requests in Muqeem, which says "returned to applicant" (معاد لمقدم
الطلب) where Absher says "needs additional action" (بحاجة لإجراءات إضافية), and its messages
say it in Muqeem's words too. NULL: the events did not say (Absher's words).

Rows stored before take it from the applicant's number, as intake's migration 0010 took its own
for the same requests: intake has only ever taken a citizen's starting 1 and a resident's
starting 2, so any other was an establishment's. The portal then shows the words its messages
use, for requests filed before as for those filed since. The column comes nullable, which
rewrites no row; the rows are then filled in batches, each committed alone, outside the ADD
COLUMN's lock: in one statement under it, every delivery checking a request's access waited for
the whole table. A Job killed midway fills what is left again.

Revision ID: 0011
Revises: 0010
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Rows a batch of the backfill reads (by request id) and commits at once.
BATCH = 5000
# The batch after the row `after`: its rows not told yet take their kind, and the statement
# returns the batch's last id (none: the table is done).
BACKFILL = sa.text(
    "WITH batch AS (SELECT request_id FROM request_access WHERE request_id > :after"
    " ORDER BY request_id LIMIT :size),"
    " changed AS (UPDATE request_access AS a SET applicant_kind = CASE left(a.applicant_id, 1)"
    " WHEN '1' THEN 'citizen' WHEN '2' THEN 'resident' ELSE 'establishment' END FROM batch"
    " WHERE a.request_id = batch.request_id AND a.applicant_kind IS NULL)"
    " SELECT request_id FROM batch ORDER BY request_id DESC LIMIT 1"
).bindparams(sa.bindparam("after", type_=sa.Uuid), sa.bindparam("size", type_=sa.Integer))


def upgrade() -> None:
    op.add_column(
        "request_access",
        sa.Column("applicant_kind", sa.String(16)),
        if_not_exists=True,  # a Job killed in the backfill added it already
    )
    with op.get_context().autocommit_block():
        after: uuid.UUID | None = uuid.UUID(int=0)
        while after is not None:
            after = op.get_bind().execute(BACKFILL, {"after": after, "size": BATCH}).scalar()


def downgrade() -> None:
    op.drop_column("request_access", "applicant_kind")
