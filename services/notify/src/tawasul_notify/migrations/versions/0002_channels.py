"""E-mail and in-app next to SMS: a delivery per recipient with its intent, attempts and
receipt; the in-app inbox; who may read a request's deliveries.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("deliveries_cause", "deliveries", type_="unique")
    op.alter_column("deliveries", "recipient", type_=sa.String(320))
    for name, column_type, default in (
        ("kind", sa.String(40), ""),
        ("audience", sa.String(20), "beneficiary"),
        ("subject", sa.Text, ""),
        ("parts", sa.Integer, "0"),
        ("attempts", sa.Integer, "0"),
        ("error", sa.Text, ""),
    ):
        op.add_column(
            "deliveries", sa.Column(name, column_type, nullable=False, server_default=default)
        )
    op.add_column("deliveries", sa.Column("updated_at", sa.DateTime(timezone=True)))
    op.add_column("deliveries", sa.Column("receipt_checked_at", sa.DateTime(timezone=True)))
    op.execute(
        "UPDATE deliveries SET updated_at = created_at,"
        " status = CASE status WHEN 'accepted' THEN 'sent' ELSE status END"
    )
    op.alter_column("deliveries", "updated_at", nullable=False)
    op.create_unique_constraint(
        "deliveries_cause", "deliveries", ["cause_event_id", "channel", "recipient"]
    )
    op.create_index(
        "deliveries_awaiting_receipt",
        "deliveries",
        ["updated_at"],
        postgresql_where=sa.text("status = 'sent' AND channel = 'sms'"),
    )
    op.create_table(
        "inbox_messages",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True)),
    )
    op.create_index("inbox_messages_owner", "inbox_messages", ["owner_id", "created_at"])
    op.create_table(
        "request_access",
        sa.Column("request_id", sa.Uuid, primary_key=True),
        sa.Column("applicant_id", sa.String(64), nullable=False),
        sa.Column("department", sa.String(50), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("request_access")
    op.drop_table("inbox_messages")
    op.drop_index("deliveries_awaiting_receipt", table_name="deliveries")
    op.drop_constraint("deliveries_cause", "deliveries", type_="unique")
    for name in (
        "receipt_checked_at",
        "updated_at",
        "error",
        "attempts",
        "parts",
        "subject",
        "audience",
        "kind",
    ):
        op.drop_column("deliveries", name)
    op.create_unique_constraint("deliveries_cause", "deliveries", ["cause_event_id", "channel"])
