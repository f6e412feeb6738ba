"""Docs' own tables (database tawasul_docs); no other service reads them."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, MetaData, String, Table, Uuid, text
from tawasul_platform.db import inbox_table, outbox_table

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
    Index("documents_owner", "owner_id"),
    Index("documents_quarantined", "created_at", postgresql_where=text("state = 'quarantined'")),
)

# Docs publishes and consumes nothing yet; the tables exist so every service has the same shape.
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
