"""Each request keeps whether a citizen, a resident or an establishment filed it: the
establishment portal (Muqeem) shows its requests in words of its own ("returned to applicant"
where Absher says "needs additional action").

Requests stored before take it from the applicant's number: intake has only ever taken a
citizen's starting 1 and a resident's starting 2, so any other was an establishment's.

The column keeps its default: the previous release's pods serve until the rollout replaces
them, after this has run, and their INSERTs do not name it.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "requests",
        sa.Column("applicant_role", sa.String(16), nullable=False, server_default="establishment"),
    )
    op.execute(
        "UPDATE requests SET applicant_role = CASE left(applicant_id, 1)"
        " WHEN '1' THEN 'citizen' WHEN '2' THEN 'resident' ELSE 'establishment' END"
    )


def downgrade() -> None:
    op.drop_column("requests", "applicant_role")
