"""Search indexes flush their pending entries a little at a time.

A GIN index takes new entries into a pending list and merges them into the index when the list
passes gin_pending_list_limit (4 MB by default), inside whichever insert passes it. With the
trigram index of search_text that insert took up to 264 ms at 50 submissions a second, and
every routed request of its poll waited for it. At 256 kB each merge is a sixteenth of that
(8,000 single-row inserts: the slowest 25–32 ms against 71–94, the total the same).

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

INDEXES = ("work_items_search_text", "work_items_search_tokens")


def upgrade() -> None:
    for index in INDEXES:
        op.execute(f"ALTER INDEX {index} SET (gin_pending_list_limit = 256)")


def downgrade() -> None:
    for index in INDEXES:
        op.execute(f"ALTER INDEX {index} RESET (gin_pending_list_limit)")
