"""Deliveries, outbox and inbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from tawasul_platform.migrations import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("request_id", sa.Uuid, nullable=False),
        sa.Column("cause_event_id", sa.Uuid, nullable=False),
        sa.Column("cause_event_type", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("recipient", sa.String(100), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("provider_message_id", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("cause_event_id", "channel", name="deliveries_cause"),
    )
    op.create_index("deliveries_request", "deliveries", ["request_id", "created_at"])
    create_messaging_tables()


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_table("outbox")
    op.drop_table("deliveries")
