"""Each request's follow-up count is kept whether or not it raised the priority, so that a
transfer routes with every follow-up the request had.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "follow_ups",
        sa.Column("request_id", sa.Uuid, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )
    # Until now a count was kept only in the decision a follow-up raised.
    op.execute(
        "INSERT INTO follow_ups (request_id, count)"
        " SELECT request_id, max((request->>'follow_up_count')::int) FROM decisions"
        " WHERE (request->>'follow_up_count')::int > 0 GROUP BY request_id"
    )


def downgrade() -> None:
    op.drop_table("follow_ups")
