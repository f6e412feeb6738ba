"""Which requests each document joined, and when it first joined one (unattached ones expire).

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
    op.add_column("documents", sa.Column("attached_at", sa.DateTime(timezone=True)))
    op.create_index(
        "documents_unattached",
        "documents",
        ["created_at"],
        postgresql_where=sa.text("attached_at IS NULL"),
    )
    op.create_table(
        "attachments",
        sa.Column("document_id", sa.Uuid, primary_key=True),
        sa.Column("request_id", sa.Uuid, primary_key=True),
        sa.Column("attached_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("attachments")
    op.drop_index("documents_unattached", table_name="documents")
    op.drop_column("documents", "attached_at")
