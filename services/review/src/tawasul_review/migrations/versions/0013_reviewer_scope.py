"""Each reviewer record says which departments it decides; in the others the reviewer follows
their token. A reviewer who only marked themselves away had their token's departments of
that day written down for good, and a supervisor of one department who wrote a record took
the reviewer out of every other. Records made before decide every department (NULL), as
they did.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reviewers", sa.Column("scope", JSONB))


def downgrade() -> None:
    op.drop_column("reviewers", "scope")
