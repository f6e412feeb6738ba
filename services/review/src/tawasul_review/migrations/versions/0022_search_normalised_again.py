"""Search: the texts of rows holding what normalise now drops or folds, indexed again.

normalise (domain.search) drops invisible format characters (Unicode category Cf: soft
hyphen, zero-width space, joiner and non-joiner, direction marks), which broke a word in two,
folds the Latin letters with no accent to lose (ı ł ø đ ð æ œ þ, and their capitals), and
the Urdu and Persian heh, ta marbuta and final ya (ھ ۃ ۀ ۂ ے ۓ) as Arabic is typed.
Rows whose description, names or public messages hold one have search_text and search_tokens
written again, as flush writes a new row's: the description, the names and the public
messages in the order they were written, normalised. Only those rows: the others' text is
what normalise makes of it already, and review holds up to a million. PostgreSQL picks them
by a regular expression of the characters; Python, which knows the categories, writes it.

Revision ID: 0022
Revises: 0021
"""

import sys
import unicodedata

import sqlalchemy as sa
from alembic import op
from tawasul_review.domain.search import PUBLIC_ACTIONS, searchable, tokens

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

BATCH = 5000
# Folded once the accents and the case are gone.
LATIN = frozenset("ıłøđðæœþ")
# Folded as NFKC leaves them; with the hamza above, which NFKC composes ۀ, ۂ and ۓ of.
ARABIC = frozenset("ھۃۀۂےۓ\u0654")


def _changed(character: str) -> bool:
    """Whether normalise reads the character otherwise since this revision: it is dropped,
    or what NFKC makes of it holds one folded, as it is ("ﮤ": "ۀ") or once bare and lowercase
    ("Ø", "ǿ")."""
    composed = unicodedata.normalize("NFKC", character)
    bare = unicodedata.normalize("NFKD", composed).casefold()
    return (
        unicodedata.category(character) == "Cf"
        or not LATIN.isdisjoint(bare)
        or not ARABIC.isdisjoint(composed)
    )


def _pattern() -> str:
    """A bracket expression of the changed characters, consecutive ones as ranges."""
    points = [c for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000 and _changed(chr(c))]
    ranges: list[list[int]] = []
    for point in points:
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1][1] = point
        else:
            ranges.append([point, point])
    return "[" + "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges) + "]"


def upgrade() -> None:
    bind = op.get_bind()
    # A new database (every test's) has nothing to index, and the pattern takes half a second.
    if not bind.scalar(sa.text("SELECT EXISTS (SELECT 1 FROM work_items)")):
        return
    actions = sorted(PUBLIC_ACTIONS)
    ids = bind.scalars(
        sa.text(
            "SELECT request_id FROM work_items"
            " WHERE description ~ :pattern OR names::text ~ :pattern"
            " UNION SELECT request_id FROM history"
            " WHERE note ~ :pattern AND action = ANY(:actions) AND NOT internal"
            " ORDER BY request_id"
        ),
        {"pattern": _pattern(), "actions": actions},
    ).all()
    for start in range(0, len(ids), BATCH):
        rows = bind.execute(
            sa.text(
                "SELECT w.request_id, w.description,"
                " ARRAY(SELECT jsonb_array_elements_text(w.names)) AS names,"
                " coalesce(array_agg(h.note ORDER BY h.id)"
                "   FILTER (WHERE h.action = ANY(:actions) AND NOT h.internal), '{}') AS notes"
                " FROM work_items w LEFT JOIN history h ON h.request_id = w.request_id"
                " WHERE w.request_id = ANY(:ids) GROUP BY w.request_id"
            ),
            {"actions": actions, "ids": list(ids[start : start + BATCH])},
        ).all()
        texts = {r.request_id: searchable(r.description, *r.names, *r.notes) for r in rows}
        bind.execute(
            sa.text(
                "UPDATE work_items SET search_text = :text, search_tokens = :tokens"
                " WHERE request_id = :id"
            ),
            [{"id": key, "text": text, "tokens": tokens(text)} for key, text in texts.items()],
        )


def downgrade() -> None:
    """Nothing to undo: the code before finds a word typed whole in the texts as written."""
