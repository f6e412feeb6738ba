"""Requests, their number sequence, outbox and inbox.

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
    op.execute(sa.schema.CreateSequence(sa.Sequence("request_number_seq")))
    op.create_table(
        "requests",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("number", sa.String(20), nullable=False, unique=True),
        sa.Column("applicant_id", sa.String(20), nullable=False),
        sa.Column("idempotency_key", sa.String(100), nullable=False),
        sa.Column("sub_service_code", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("document_ids", JSONB, nullable=False),
        sa.Column("contact", JSONB, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("decision_message", sa.Text, nullable=False, server_default=""),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("applicant_id", "idempotency_key", name="requests_idempotency"),
    )
    op.create_index("requests_applicant", "requests", ["applicant_id"])
    create_messaging_tables()


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_table("outbox")
    op.drop_table("requests")
    op.execute(sa.schema.DropSequence(sa.Sequence("request_number_seq")))
