"""An answer may come before routing's event: its request is held without a department, and
a placement grants every document attached to the request (looked up by request).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("request_departments", "department", existing_type=sa.String(50), nullable=True)
    op.create_index("attachments_request", "attachments", ["request_id"])


def downgrade() -> None:
    op.drop_index("attachments_request", table_name="attachments")
    op.execute("DELETE FROM request_departments WHERE department IS NULL")
    op.alter_column(
        "request_departments", "department", existing_type=sa.String(50), nullable=False
    )
