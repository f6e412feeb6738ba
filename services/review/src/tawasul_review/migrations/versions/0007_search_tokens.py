"""Search: numbers in the text matched whole (issue 15, P8).

A string of digits has few distinct trigrams ("333333" has one), so the trigram index gave
every row holding them to be rechecked: a thousand candidates for one match at 1M stored
requests. `search_tokens` holds the words of search_text that hold a digit and their runs of
digits (domain.search.tokens), under a GIN index with the department (btree_gin), and a query
term holding a digit is looked up there. Rows already stored get theirs from search_text,
which is normalised already; only rows with a digit in it have any.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY
from tawasul_review.domain.search import tokens

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    op.add_column(
        "work_items",
        sa.Column("search_tokens", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'")),
    )
    _backfill()
    op.create_index(
        "work_items_search_tokens",
        "work_items",
        ["department", "search_tokens"],
        postgresql_using="gin",
    )


def _backfill() -> None:
    bind = op.get_bind()
    last = None
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT request_id, search_text FROM work_items"
                " WHERE search_text ~ '[0-9]'"
                " AND (CAST(:last AS uuid) IS NULL OR request_id > CAST(:last AS uuid))"
                " ORDER BY request_id LIMIT :batch"
            ),
            {"last": last, "batch": BATCH},
        ).all()
        if not rows:
            return
        bind.execute(
            sa.text("UPDATE work_items SET search_tokens = :tokens WHERE request_id = :id"),
            [{"id": r.request_id, "tokens": tokens(r.search_text)} for r in rows],
        )
        last = str(rows[-1].request_id)


def downgrade() -> None:
    op.drop_index("work_items_search_tokens", "work_items")
    op.drop_column("work_items", "search_tokens")
