"""Which request and department hold each document, for reviewers' access.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "document_access",
        sa.Column("document_id", sa.Uuid, primary_key=True),
        sa.Column("request_id", sa.Uuid, primary_key=True),
        sa.Column("department", sa.String(50), nullable=False),
    )
    op.create_index("document_access_request", "document_access", ["request_id"])
    op.create_table(
        "request_departments",
        sa.Column("request_id", sa.Uuid, primary_key=True),
        sa.Column("department", sa.String(50), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("request_departments")
    op.drop_table("document_access")
