"""Each request keeps its submission's digest: a submission sent again under the same
idempotency key after the request was answered (its fields and documents grown) is still the
same submission. Empty for requests stored before, compared as they are now.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "requests",
        sa.Column("submitted_digest", sa.String(64), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_column("requests", "submitted_digest")
