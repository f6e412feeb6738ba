"""Requests stored before 0011 take the person_key a submission of them takes now.

0011 left them an empty key: a dependent without a number, filed again once it had run, was
not the duplicate of their open request (their new key is not empty), and a second request
was opened for them. Each request a key may be worked out for gets the domain's own
(`_unnumbered`, with the packaged catalog, as SubmitRequest works it out): one filed under the
account holder's number (subject_id is applicant_id, what a subject left empty becomes) for
a sub-service whose form names such a person otherwise, from its fields as stored (an answer
that changed a name is taken with it). One whose subject field holds the holder's number
typed in (rare: a form for a dependent) cannot be told from one left empty and is taken so.

An open request whose key another open request of the same person and sub-service already
has (that dependent filed again since 0011, the duplicate this keeps from recurring) keeps
its empty key rather than fail the migration on the unique index (requests_one_open, one
open request per key): the later one, filed with its key, is the one SubmitRequest finds.
Both stay open; the log names each pair for staff to close one. Closed requests take their
key whatever is open.

The batches run as 0010's, each committed alone; a batch that meets a request a live pod
filed under its key while it ran is set again row by row, those rows kept empty. A Job
killed midway runs it again: what it set is no longer empty, and is not read again.

Revision ID: 0013
Revises: 0012
"""

import contextlib
import logging
import uuid
from collections.abc import Mapping

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Connection
from tawasul_intake.domain.model import _unnumbered
from tawasul_platform.catalog import load_catalog

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

log = logging.getLogger("tawasul_intake.migrations")

# Requests a batch of the backfill reads (by id) and commits at once.
BATCH = 2000
OPEN = "('submitted', 'under_review', 'needs_more_info', 'returned_by_applicant', 'transferred')"
# The next batch after the request `after` of those a key may be worked out for.
CANDIDATES = (
    sa.text(
        "SELECT id, number, sub_service_code, fields FROM requests WHERE id > :after"
        " AND person_key = '' AND subject_id = applicant_id AND sub_service_code = ANY(:codes)"
        " ORDER BY id LIMIT :size"
    )
    .bindparams(
        sa.bindparam("after", type_=sa.Uuid),
        sa.bindparam("codes", type_=ARRAY(sa.String)),
        sa.bindparam("size", type_=sa.Integer),
    )
    .columns(id=sa.Uuid, number=sa.String, sub_service_code=sa.String, fields=JSONB)
)
# Sets each key that no other open request of the same person and sub-service has; returns
# the ids it set.
FILL = sa.text(
    "UPDATE requests AS r SET person_key = v.key FROM unnest(:ids, :keys) AS v(id, key)"
    " WHERE r.id = v.id AND r.person_key = ''"
    f" AND NOT (r.status IN {OPEN} AND EXISTS (SELECT FROM requests AS o"
    " WHERE o.subject_id = r.subject_id AND o.sub_service_code = r.sub_service_code"
    f" AND o.person_key = v.key AND o.status IN {OPEN}))"
    " RETURNING r.id"
).bindparams(
    sa.bindparam("ids", type_=ARRAY(sa.Uuid)), sa.bindparam("keys", type_=ARRAY(sa.String))
)
# The open request of the same person that each request left empty is the duplicate of.
DUPLICATED = sa.text(
    "SELECT r.number, o.number AS open FROM requests AS r, unnest(:ids, :keys) AS v(id, key),"
    " requests AS o WHERE r.id = v.id AND o.subject_id = r.subject_id"
    f" AND o.sub_service_code = r.sub_service_code AND o.person_key = v.key AND o.status IN {OPEN}"
    " ORDER BY r.number"
).bindparams(
    sa.bindparam("ids", type_=ARRAY(sa.Uuid)), sa.bindparam("keys", type_=ARRAY(sa.String))
)


def upgrade() -> None:
    catalog = load_catalog()
    codes = [
        code
        for code, sub_service in catalog.sub_services.items()
        if any(spec.otherwise_named_by for spec in sub_service.fields)
    ]
    bind = op.get_bind()
    kept: list[str] = []
    with op.get_context().autocommit_block():
        after = uuid.UUID(int=0)
        while rows := bind.execute(
            CANDIDATES, {"after": after, "codes": codes, "size": BATCH}
        ).all():
            after = rows[-1].id
            keys = {
                row.id: key
                for row in rows
                if (key := _unnumbered(catalog.sub_services[row.sub_service_code], row.fields))
            }
            kept += _fill(bind, keys)
    if kept:
        log.warning(
            "%d open requests keep an empty person_key, each the duplicate of an open request"
            " for the same dependent filed since 0011 (close one of the two): %s",
            len(kept),
            ", ".join(kept),
        )


def downgrade() -> None:
    """Nothing to undo: 0011's code compares the keys as they are, and 0010's reads none."""


def _fill(bind: Connection, keys: Mapping[uuid.UUID, str]) -> list[str]:
    """Sets the keys; answers each request left empty as "number (duplicate of number)"."""
    try:
        done = set(bind.execute(FILL, _arrays(keys)).scalars())
    except sa.exc.IntegrityError:
        # A live pod filed one of these people under their key since the statement began.
        done = set()
        for request, key in keys.items():
            with contextlib.suppress(sa.exc.IntegrityError):
                done.update(bind.execute(FILL, _arrays({request: key})).scalars())
    left = {request: key for request, key in keys.items() if request not in done}
    if not left:
        return []
    return [f"{r.number} (duplicate of {r.open})" for r in bind.execute(DUPLICATED, _arrays(left))]


def _arrays(keys: Mapping[uuid.UUID, str]) -> dict[str, list[uuid.UUID] | list[str]]:
    return {"ids": list(keys), "keys": list(keys.values())}
