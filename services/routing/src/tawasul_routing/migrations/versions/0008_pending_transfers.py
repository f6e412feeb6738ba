"""A transfer read before its request's submission is kept until the submission is routed,
then applied after its decision: it was refused (and dead-lettered) before, and the request
stayed where the catalog put it while review held it in the department transferred to.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_transfers",
        sa.Column("request_id", sa.Uuid, primary_key=True),
        sa.Column("to_department", sa.String(50), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pending_transfers")
