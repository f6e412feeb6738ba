"""Each work item keeps the number of the rejected request it corrects (SPEC §2: a rejected
request is not reopened, the beneficiary files a new one linked to it), for its reviewer to
read. Empty for items queued before, and for requests that cite none.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "work_items",
        sa.Column("cites_number", sa.String(20), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_column("work_items", "cites_number")
