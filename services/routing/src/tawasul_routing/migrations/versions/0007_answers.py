"""The fields the beneficiary's answers to information requests replaced, kept per request
apart from the decisions (as follow-up counts are): a later decision routes, and republishes,
the request with them, whether or not the answer raised its priority.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "answers",
        sa.Column("request_id", sa.Uuid, primary_key=True),
        sa.Column("fields", JSONB, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("answers")
