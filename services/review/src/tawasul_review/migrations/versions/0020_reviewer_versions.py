"""Each reviewer's record has a version that grows with every change, so that docs, notify
and routing, which narrow a reviewer's token with the record review publishes
(tawasul_platform.staff), keep the latest. 0 for records of before: review announces those
once at start, and each change after that publishes a later version.

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reviewers", sa.Column("version", sa.BigInteger, nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.drop_column("reviewers", "version")
