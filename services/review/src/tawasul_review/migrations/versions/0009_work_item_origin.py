"""Each work item keeps the span that queued it (the filing's traceparent), so that the spans
of later steps on it, a reviewer's claim or decision, link back to the trace that filed the
request (issue 13). Empty for items queued before, and outside any trace.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "work_items", sa.Column("origin", sa.String(55), nullable=False, server_default="")
    )


def downgrade() -> None:
    op.drop_column("work_items", "origin")
