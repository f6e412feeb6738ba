"""A request has one more decision for every transfer, which keeps the reviewer's reason.

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
    op.add_column(
        "decisions", sa.Column("sequence", sa.Integer, nullable=False, server_default="1")
    )
    op.add_column(
        "decisions", sa.Column("transfer_reason", sa.Text, nullable=False, server_default="")
    )
    op.add_column(
        "decisions",
        sa.Column("transferred_from", sa.String(50), nullable=False, server_default=""),
    )
    op.drop_constraint("decisions_pkey", "decisions", type_="primary")
    op.create_primary_key("decisions_pkey", "decisions", ["request_id", "sequence"])


def downgrade() -> None:
    # One decision per request again: the latest, where each request is now.
    op.execute(
        "DELETE FROM decisions d WHERE EXISTS (SELECT 1 FROM decisions n"
        " WHERE n.request_id = d.request_id AND n.sequence > d.sequence)"
    )
    op.drop_constraint("decisions_pkey", "decisions", type_="primary")
    op.create_primary_key("decisions_pkey", "decisions", ["request_id"])
    for column in ("transferred_from", "transfer_reason", "sequence"):
        op.drop_column("decisions", column)
