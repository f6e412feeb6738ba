"""Routing's own tables (database tawasul_routing)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from tawasul_platform.db import inbox_table, outbox_table, staff_records_table

metadata = MetaData()

# One row per decision: the submission's (sequence 1), then one per transfer or raised
# priority.
decisions = Table(
    "decisions",
    metadata,
    Column("request_id", Uuid, primary_key=True),
    Column("sequence", Integer, primary_key=True),
    Column("department", String(50), nullable=False),
    Column("queue", String(100), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("rule", String(200), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("transfer_reason", Text, nullable=False),
    Column("transferred_from", String(50), nullable=False),
    # The highest sequence of review's status changes applied to the request so far: a
    # transfer with one no higher is older than where the request is (migration 0005).
    Column("status_sequence", Integer, nullable=False, server_default="0"),
    # The submitted request as routing received it, to rebuild the routed event and to route
    # it again on a transfer.
    Column("request", JSONB, nullable=False),
)

# How often the beneficiary has followed each request up, as far as routing has heard.
follow_ups = Table(
    "follow_ups",
    metadata,
    Column("request_id", Uuid, primary_key=True),
    Column("count", Integer, nullable=False),
)

# The fields the beneficiary's answers replaced in each request, the latest answer's value of
# each, as far as routing has heard (migration 0007).
answers = Table(
    "answers",
    metadata,
    Column("request_id", Uuid, primary_key=True),
    Column("fields", JSONB, nullable=False),
)

# A transfer read before the request's submission (a rewind, a backlog: a poll's topics are
# applied at once), the latest review ordered: applied right after the submission's decision
# (migration 0008). Inert once the request is routed, as its follow-ups and answers are.
pending_transfers = Table(
    "pending_transfers",
    metadata,
    Column("request_id", Uuid, primary_key=True),
    Column("to_department", String(50), nullable=False),
    Column("reason", Text, nullable=False),
    # The highest status change sequence kept so far (Transfer.sequence).
    Column("sequence", Integer, nullable=False),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
staff_records = staff_records_table(metadata)
