"""Delivery receipts, push assignment per queue, appeals, sampled quality checks.

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
    op.add_column(
        "work_items",
        sa.Column("appeal_of", sa.String(50), nullable=False, server_default=""),
    )
    op.create_table(
        "receipts",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.Uuid, nullable=False, index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("cause", sa.String(100), nullable=False),
    )
    op.create_table(
        "queue_settings",
        sa.Column("queue", sa.String(100), primary_key=True),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("last_assigned", sa.String(50), nullable=False, server_default=""),
    )
    op.create_table(
        "quality_checks",
        sa.Column("request_id", sa.Uuid, primary_key=True),
        sa.Column("request_number", sa.String(20), nullable=False),
        sa.Column("department", sa.String(50), nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("decided_by", sa.String(50), nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_by", sa.String(50), nullable=False, server_default=""),
        sa.Column("verdict", sa.String(20), nullable=False, server_default=""),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("quality_checks_pending", "quality_checks", ["department", "sampled_at"])


def downgrade() -> None:
    op.drop_table("quality_checks")
    op.drop_table("queue_settings")
    op.drop_table("receipts")
    op.drop_column("work_items", "appeal_of")
