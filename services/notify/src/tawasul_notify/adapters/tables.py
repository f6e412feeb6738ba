"""Notify's own tables (database tawasul_notify); no other service reads them."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)
from tawasul_platform.db import inbox_table, outbox_table

metadata = MetaData()

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("request_id", Uuid, nullable=False),
    Column("cause_event_id", Uuid, nullable=False),
    Column("cause_event_type", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("recipient", String(100), nullable=False),
    Column("text", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("provider_message_id", String(200), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("cause_event_id", "channel", name="deliveries_cause"),
    Index("deliveries_request", "request_id", "created_at"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
