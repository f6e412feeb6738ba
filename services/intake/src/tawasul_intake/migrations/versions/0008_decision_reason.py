"""Each decided request keeps its decision's reason (review's reason catalog: code, Arabic,
English), which the beneficiary's tracking view shows beside the reviewer's message; null for
requests undecided, and for those decided before (their SMS said it).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("decision_reason", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("requests", "decision_reason")
