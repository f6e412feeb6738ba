"""Work items, their history, outbox and inbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB
from tawasul_platform.migrations import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_items",
        sa.Column("request_id", sa.Uuid, primary_key=True),
        sa.Column("request_number", sa.String(20), nullable=False, unique=True),
        sa.Column("department", sa.String(50), nullable=False),
        sa.Column("queue", sa.String(100), nullable=False),
        sa.Column("sub_service_code", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("applicant_id", sa.String(20), nullable=False),
        sa.Column("document_ids", JSONB, nullable=False),
        sa.Column("contact", JSONB, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("assignee", sa.String(50), nullable=False, server_default=""),
        sa.Column("decision", sa.String(20)),
        sa.Column("decision_message", sa.Text, nullable=False, server_default=""),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "work_items_open",
        "work_items",
        ["department", "queued_at"],
        postgresql_where=sa.text("state <> 'decided'"),
    )
    op.create_table(
        "history",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Uuid, sa.ForeignKey("work_items.request_id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(50), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_history_request_id", "history", ["request_id"])
    create_messaging_tables()


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_table("outbox")
    op.drop_table("history")
    op.drop_table("work_items")
