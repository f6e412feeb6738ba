"""The SLA clock stops when a request is decided or withdrawn (an appeal starts it again).
Items decided or withdrawn before kept counting to the present: a request answered in two days
showed thousands of per cent used a year later. Their clocks stop at the history's decision or
withdrawal; one paused at the time (withdrawn while waiting on the beneficiary) keeps its pause.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        UPDATE work_items AS w SET paused_since = h.at
        FROM (
            SELECT request_id, max(at) AS at FROM history
            WHERE action IN ('accept', 'reject', 'cancelled')
            GROUP BY request_id
        ) AS h
        WHERE h.request_id = w.request_id
          AND w.state IN ('decided', 'withdrawn')
          AND w.paused_since IS NULL
        """
    )


def downgrade() -> None:
    """Nothing to undo: the code before this revision reads a stopped clock as a pause, and
    shows the same share used."""
