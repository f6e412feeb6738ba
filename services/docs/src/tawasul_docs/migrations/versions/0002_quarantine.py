"""Documents in quarantine until the malware scanner finds them clean.

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
    # Documents stored before scanning existed were served already: they stay readable.
    op.add_column(
        "documents", sa.Column("state", sa.String(20), nullable=False, server_default="clean")
    )
    op.add_column(
        "documents",
        sa.Column("document_kind", sa.String(50), nullable=False, server_default=""),
    )
    op.add_column(
        "documents",
        sa.Column("sub_service_code", sa.String(100), nullable=False, server_default=""),
    )
    op.add_column("documents", sa.Column("scan_tried_at", sa.DateTime(timezone=True)))
    op.create_index(
        "documents_quarantined",
        "documents",
        ["created_at"],
        postgresql_where=sa.text("state = 'quarantined'"),
    )


def downgrade() -> None:
    op.drop_index("documents_quarantined", "documents")
    for name in ("scan_tried_at", "sub_service_code", "document_kind", "state"):
        op.drop_column("documents", name)
