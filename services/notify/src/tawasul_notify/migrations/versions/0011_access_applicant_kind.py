"""Each request's access row keeps who filed it, a citizen, a resident or an establishment: an
establishment follows its requests in Muqeem, which says "returned to applicant" (معاد لمقدم
الطلب) where Absher says "needs additional action" (بحاجة لإجراءات إضافية), and its messages
say it in Muqeem's words too. NULL: the events did not say (Absher's words).

Rows stored before take it from the applicant's number, as intake's migration 0010 took its own
for the same requests: intake has only ever taken a citizen's starting 1 and a resident's
starting 2, so any other was an establishment's. The portal then shows the words its messages
use, for requests filed before as for those filed since.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("request_access", sa.Column("applicant_kind", sa.String(16)))
    op.execute(
        "UPDATE request_access SET applicant_kind = CASE left(applicant_id, 1)"
        " WHEN '1' THEN 'citizen' WHEN '2' THEN 'resident' ELSE 'establishment' END"
    )


def downgrade() -> None:
    op.drop_column("request_access", "applicant_kind")
