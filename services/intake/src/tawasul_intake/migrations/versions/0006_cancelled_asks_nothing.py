"""Requests cancelled while they waited on the beneficiary stop showing what was missing.

A cancellation kept the missing items and the deadline of the information request it ended,
so the tracking view of a cancelled request still asked for them. The model now clears them
on every move but to needs_more_info; this clears those already stored (few rows: only
cancellations of waiting requests; the scan does not block writers).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE requests SET missing = '[]', respond_by = NULL"
        " WHERE status <> 'needs_more_info' AND (missing <> '[]' OR respond_by IS NOT NULL)"
    )


def downgrade() -> None:
    """Nothing to restore: what was cleared asked for something no longer wanted."""
