"""Uploads in progress per account, shared by every replica of docs.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_leases",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("upload_leases_owner", "upload_leases", ["owner_id"])


def downgrade() -> None:
    op.drop_table("upload_leases")
