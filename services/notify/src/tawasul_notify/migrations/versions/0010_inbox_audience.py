"""Each in-app message says whose inbox it is in, a beneficiary's or an employee's: owner ids
alone are two spaces (national IDs, employee ids) that a digits-only employee id could join,
and an employee named like a citizen read the citizen's messages. Messages stored before take
their delivery's audience (a message is its in-app delivery, under the same id).

The column keeps its default: the previous release's pods serve until the rollout replaces
them, after this has run, and their INSERTs do not name it (revision 0014 puts it back where
an earlier version of this revision dropped it).

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
        "inbox_messages",
        sa.Column("audience", sa.String(16), nullable=False, server_default="beneficiary"),
    )
    op.execute(
        "UPDATE inbox_messages AS m SET audience = d.audience FROM deliveries AS d"
        " WHERE d.id = m.id AND d.audience <> 'beneficiary'"
    )


def downgrade() -> None:
    op.drop_column("inbox_messages", "audience")
