"""Search (issue 15): the subject, names, mobile key and normalised text of each work item.

The columns live on work_items itself, written in the same statement as the change they
index, so a search never sees a row whose text and state disagree. A GIN index of the
department and the normalised text's trigrams (pg_trgm, and btree_gin for the department)
serves substring matches of names, description and public messages within a department;
b-trees serve IDs and mobiles; (department, submitted_at DESC, request_number DESC), with the
columns the filters read included, gives a page's keys in order from the index alone. Rows
stored before this revision are filled from what they hold (description, the public messages
of their history, the contact's mobile) with the same normalisation that writes new rows.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB
from tawasul_review.domain.search import PUBLIC_ACTIONS, mobile_key, searchable

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.add_column(
        "work_items", sa.Column("subject_id", sa.String(20), nullable=False, server_default="")
    )
    op.add_column(
        "work_items",
        sa.Column("names", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    )
    op.add_column(
        "work_items", sa.Column("mobile_key", sa.String(12), nullable=False, server_default="")
    )
    op.add_column(
        "work_items", sa.Column("search_text", sa.Text, nullable=False, server_default="")
    )
    _backfill()
    op.create_index("work_items_applicant", "work_items", ["applicant_id"])
    op.create_index("work_items_subject", "work_items", ["subject_id"])
    op.create_index("work_items_mobile", "work_items", ["mobile_key"])
    op.create_index(
        "work_items_search_text",
        "work_items",
        ["department", "search_text"],
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
    )
    op.create_index(
        "work_items_submitted",
        "work_items",
        ["department", sa.text("submitted_at DESC"), sa.text("request_number DESC")],
        postgresql_include=["request_id", "state", "due_at", "sub_service_code"],
    )


def _backfill() -> None:
    bind = op.get_bind()
    last = None
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT w.request_id, w.applicant_id, w.description,"
                " w.contact->>'mobile' AS mobile,"
                " coalesce(array_agg(h.note ORDER BY h.at, h.id)"
                "   FILTER (WHERE h.action = ANY(:actions) AND NOT h.internal), '{}') AS notes"
                " FROM work_items w LEFT JOIN history h ON h.request_id = w.request_id"
                " WHERE (CAST(:last AS uuid) IS NULL OR w.request_id > CAST(:last AS uuid))"
                " GROUP BY w.request_id ORDER BY w.request_id LIMIT :batch"
            ),
            {"actions": sorted(PUBLIC_ACTIONS), "last": last, "batch": BATCH},
        ).all()
        if not rows:
            return
        bind.execute(
            sa.text(
                "UPDATE work_items SET subject_id = :subject, mobile_key = :mobile,"
                " search_text = :text WHERE request_id = :id"
            ),
            [
                {
                    "id": r.request_id,
                    "subject": r.applicant_id,
                    "mobile": mobile_key(r.mobile or ""),
                    "text": searchable(r.description, *r.notes),
                }
                for r in rows
            ],
        )
        last = str(rows[-1].request_id)


def downgrade() -> None:
    for index in (
        "work_items_submitted",
        "work_items_search_text",
        "work_items_mobile",
        "work_items_subject",
        "work_items_applicant",
    ):
        op.drop_index(index, "work_items")
    for column in ("search_text", "mobile_key", "names", "subject_id"):
        op.drop_column("work_items", column)
