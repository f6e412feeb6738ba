"""Docs' own tables (database tawasul_docs); no other service reads them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    func,
    text,
)
from tawasul_platform.db import inbox_table, outbox_table, staff_records_table

metadata = MetaData()

documents = Table(
    "documents",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", String(64), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("object_key", String(200), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("state", String(20), nullable=False, server_default="clean"),
    Column("document_kind", String(50), nullable=False, server_default=""),
    Column("sub_service_code", String(100), nullable=False, server_default=""),
    Column("scan_tried_at", DateTime(timezone=True)),
    # When it first joined a request; until then it expires.
    Column("attached_at", DateTime(timezone=True)),
    # When a request's check last held it (GetDocument's hold): unattached, it expires a full
    # lifetime after this, not after its upload.
    Column("held_at", DateTime(timezone=True)),
    Index("documents_owner", "owner_id"),
    Index("documents_quarantined", "created_at", postgresql_where=text("state = 'quarantined'")),
    Index("documents_unattached", "created_at", postgresql_where=text("attached_at IS NULL")),
)

# Every request each document joined: at submission, with an answer, or as routing saw it.
attachments = Table(
    "attachments",
    metadata,
    Column("document_id", Uuid, primary_key=True),
    Column("request_id", Uuid, primary_key=True),
    Column("attached_at", DateTime(timezone=True), nullable=False),
    Index("attachments_request", "request_id"),
)

# Which request (and so which department's reviewers) holds each document: from routing's
# routed events, a transfer moving a request's rows to its new department.
document_access = Table(
    "document_access",
    metadata,
    Column("document_id", Uuid, primary_key=True),
    Column("request_id", Uuid, primary_key=True),
    Column("department", String(50), nullable=False),
    Index("document_access_request", "request_id"),
)

# Each routed request's current department, documents or not (answers bring some later); none
# while an answer waits for routing's event.
request_departments = Table(
    "request_departments",
    metadata,
    Column("request_id", Uuid, primary_key=True),
    Column("department", String(50)),
    # Routing's decision applied (its sequence): one no later moves nothing (migration 0008).
    Column("sequence", Integer, nullable=False, server_default="0"),
)

# Uploads in progress per account, so that the per-account limit holds across replicas; a
# lease outlives a crashed process only until its upload's deadline.
upload_leases = Table(
    "upload_leases",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("upload_leases_owner", "owner_id"),
)

# Objects whose rows are gone (or never committed), still to delete from the bucket: recorded
# with the change that leaves them, or before an upload stores one, and forgotten only once
# deleted (migration 0010).
object_deletions = Table(
    "object_deletions",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Not deleted before this: an upload's row may still commit, or storage refused it lately
    # (migration 0011).
    Column("not_before", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Times storage refused to delete it; each doubles the wait before the next try.
    Column("refusals", Integer, nullable=False, server_default="0"),
    # The sweep is deleting its object: an upload's row can no longer keep it (migration 0012).
    Column("taken", Boolean, nullable=False, server_default="false"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
staff_records = staff_records_table(metadata)
