"""Requests about a person, with fields, SLA clock, history and links; tracking codes and
rate limits; numbers are random, so the sequence goes.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OPEN = "('submitted', 'under_review', 'needs_more_info', 'returned_by_applicant', 'transferred')"


def upgrade() -> None:
    op.alter_column("requests", "status", type_=sa.String(32))
    columns = [
        sa.Column("subject_id", sa.String(20), nullable=False, server_default=""),
        sa.Column("fields", JSONB, nullable=False, server_default="{}"),
        sa.Column("catalog_version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("department_code", sa.String(40), nullable=False, server_default=""),
        sa.Column(
            "sla", JSONB, nullable=False, server_default='{"amount": 7, "unit": "working_days"}'
        ),
        sa.Column("pauses", JSONB, nullable=False, server_default="[]"),
        sa.Column("paused_since", sa.DateTime(timezone=True)),
        sa.Column("history", JSONB, nullable=False, server_default="[]"),
        sa.Column("cites_number", sa.String(20)),
        sa.Column("cited_by", JSONB, nullable=False, server_default="[]"),
        sa.Column("follow_up_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_follow_up_at", sa.DateTime(timezone=True)),
    ]
    for column in columns:
        op.add_column("requests", column)
    op.execute("UPDATE requests SET subject_id = applicant_id WHERE subject_id = ''")
    op.create_index(
        "requests_one_open",
        "requests",
        ["subject_id", "sub_service_code"],
        unique=True,
        postgresql_where=sa.text(f"status IN {OPEN}"),
    )
    op.drop_index("requests_applicant", "requests")
    op.create_index(
        "requests_applicant_recent",
        "requests",
        ["applicant_id", sa.text("submitted_at DESC"), sa.text("id DESC")],
    )
    op.execute(sa.schema.DropSequence(sa.Sequence("request_number_seq")))
    op.create_table(
        "tracking_codes",
        sa.Column("request_id", sa.Uuid, primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "rate_limits",
        sa.Column("bucket", sa.String(200), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
    op.drop_table("tracking_codes")
    op.execute(sa.schema.CreateSequence(sa.Sequence("request_number_seq")))
    op.drop_index("requests_applicant_recent", "requests")
    op.create_index("requests_applicant", "requests", ["applicant_id"])
    op.drop_index("requests_one_open", "requests")
    for name in (
        "last_follow_up_at",
        "follow_up_count",
        "cited_by",
        "cites_number",
        "history",
        "paused_since",
        "pauses",
        "sla",
        "department_code",
        "catalog_version",
        "fields",
        "subject_id",
    ):
        op.drop_column("requests", name)
    op.alter_column("requests", "status", type_=sa.String(20))
