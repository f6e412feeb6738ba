"""Claims as leases, information requests, transfers, the SLA clock, reviewers as data.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = (
    ("submitted_at", sa.DateTime(timezone=True), None),
    ("sla", JSONB, '{"amount": 7, "unit": "working_days"}'),
    ("pauses", JSONB, "[]"),
    ("paused_since", sa.DateTime(timezone=True), None),
    ("claimed_until", sa.DateTime(timezone=True), None),
    ("last_holder", sa.String(50), ""),
    ("missing", JSONB, "[]"),
    ("respond_by", sa.DateTime(timezone=True), None),
    ("reason_code", sa.String(50), ""),
    ("public_status", sa.String(32), None),
    ("sla_alerted", sa.Integer, "0"),
    ("sla_next_at", sa.DateTime(timezone=True), None),
    ("due_at", sa.DateTime(timezone=True), None),
)


def upgrade() -> None:
    op.alter_column("work_items", "state", type_=sa.String(32))
    for name, kind, default in COLUMNS:
        nullable = default is None
        op.add_column(
            "work_items", sa.Column(name, kind, nullable=nullable, server_default=default)
        )
    op.execute("UPDATE work_items SET submitted_at = queued_at WHERE submitted_at IS NULL")
    op.alter_column("work_items", "submitted_at", nullable=False)
    op.add_column(
        "history", sa.Column("internal", sa.Boolean, nullable=False, server_default="false")
    )
    op.create_index(
        "work_items_next",
        "work_items",
        ["department", sa.text("priority DESC"), "due_at", "request_number"],
        postgresql_where=sa.text("state = 'queued'"),
    )
    op.create_index(
        "work_items_leases",
        "work_items",
        ["claimed_until"],
        postgresql_where=sa.text("state = 'claimed'"),
    )
    op.create_index(
        "work_items_waiting",
        "work_items",
        ["respond_by"],
        postgresql_where=sa.text("state = 'waiting_on_applicant'"),
    )
    op.create_index(
        "work_items_sla",
        "work_items",
        ["sla_next_at"],
        postgresql_where=sa.text("sla_next_at IS NOT NULL"),
    )
    op.create_table(
        "reviewers",
        sa.Column("reviewer_id", sa.String(50), primary_key=True),
        sa.Column("departments", JSONB, nullable=False),
        sa.Column("languages", JSONB, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("available", sa.Boolean, nullable=False),
        sa.Column("supervises", JSONB, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reviewers")
    for index in ("work_items_sla", "work_items_waiting", "work_items_leases", "work_items_next"):
        op.drop_index(index, "work_items")
    op.drop_column("history", "internal")
    for name, _, _ in reversed(COLUMNS):
        op.drop_column("work_items", name)
    op.alter_column("work_items", "state", type_=sa.String(20))
