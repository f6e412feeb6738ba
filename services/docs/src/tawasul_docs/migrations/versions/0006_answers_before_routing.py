"""An answer may come before routing's event: its request is held without a department, and
a placement grants every document attached to the request (looked up by request).

Documents routed with a request before 0004 are recorded as attached to it: 0004 recorded no
attachment for them, so they would have expired as never attached, and a placement would no
longer find them.

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
    op.execute(
        "INSERT INTO attachments (document_id, request_id, attached_at)"
        " SELECT a.document_id, a.request_id, d.created_at"
        " FROM document_access a JOIN documents d ON d.id = a.document_id"
        " ON CONFLICT DO NOTHING"
    )
    op.execute(
        "UPDATE documents d SET attached_at = d.created_at WHERE d.attached_at IS NULL"
        " AND EXISTS (SELECT FROM attachments a WHERE a.document_id = d.id)"
    )


def downgrade() -> None:
    op.drop_index("attachments_request", table_name="attachments")
    op.execute("DELETE FROM request_departments WHERE department IS NULL")
    op.alter_column(
        "request_departments", "department", existing_type=sa.String(50), nullable=False
    )
