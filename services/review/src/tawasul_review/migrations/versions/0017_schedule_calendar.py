"""The calendar version the unfinished items' due dates and SLA marks follow: a start with a
newer working-day calendar (a holiday declared after they were set) computes them again.
No row until the first start that records it, which computes them all once.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule_calendar",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("schedule_calendar")
