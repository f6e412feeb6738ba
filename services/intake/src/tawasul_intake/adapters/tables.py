"""Intake's own tables (database tawasul_intake); no other service reads them."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    MetaData,
    Sequence,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from tawasul_platform.db import inbox_table, outbox_table

metadata = MetaData()

request_number_seq = Sequence("request_number_seq", metadata=metadata)

requests = Table(
    "requests",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("number", String(20), nullable=False, unique=True),
    Column("applicant_id", String(20), nullable=False),
    Column("idempotency_key", String(100), nullable=False),
    Column("sub_service_code", String(100), nullable=False),
    Column("description", Text, nullable=False),
    Column("document_ids", JSONB, nullable=False),
    Column("contact", JSONB, nullable=False),
    Column("status", String(20), nullable=False),
    Column("decision_message", Text, nullable=False, server_default=""),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("applicant_id", "idempotency_key", name="requests_idempotency"),
    Index("requests_applicant", "applicant_id"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
