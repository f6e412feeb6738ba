"""Review's own tables (database tawasul_review)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from tawasul_platform.db import inbox_table, outbox_table

metadata = MetaData()

work_items = Table(
    "work_items",
    metadata,
    Column("request_id", Uuid, primary_key=True),
    Column("request_number", String(20), nullable=False, unique=True),
    Column("department", String(50), nullable=False),
    Column("queue", String(100), nullable=False),
    Column("sub_service_code", String(100), nullable=False),
    Column("description", Text, nullable=False),
    Column("applicant_id", String(20), nullable=False),
    Column("document_ids", JSONB, nullable=False),
    Column("contact", JSONB, nullable=False),
    Column("state", String(32), nullable=False),
    Column("assignee", String(50), nullable=False, server_default=""),
    Column("decision", String(20)),
    Column("decision_message", Text, nullable=False, server_default=""),
    Column("queued_at", DateTime(timezone=True), nullable=False),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    # The SLA clock: the promise and the intervals it was paused (waiting on the beneficiary).
    Column("sla", JSONB, nullable=False),
    Column("pauses", JSONB, nullable=False),
    Column("paused_since", DateTime(timezone=True)),
    Column("claimed_until", DateTime(timezone=True)),
    Column("last_holder", String(50), nullable=False, server_default=""),
    Column("missing", JSONB, nullable=False),
    Column("respond_by", DateTime(timezone=True)),
    Column("reason_code", String(50), nullable=False, server_default=""),
    Column("public_status", String(32)),
    Column("sla_alerted", Integer, nullable=False, server_default="0"),
    Column("sla_next_at", DateTime(timezone=True)),
    Column("due_at", DateTime(timezone=True)),
    Column("appeal_of", String(50), nullable=False, server_default=""),
    # Search (issue 15), written in the same statement as the change it indexes: the subject,
    # the subject's names, the mobile's nine digits and every searchable text normalised
    # (domain.search.normalise: description, names, public messages).
    Column("subject_id", String(20), nullable=False, server_default=""),
    Column("names", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("mobile_key", String(12), nullable=False, server_default=""),
    Column("search_text", Text, nullable=False, server_default=""),
    # Its words holding a digit and their runs of digits (domain.search.tokens), matched whole.
    Column("search_tokens", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    # The span that queued the item (the filing's trace): later steps' spans link to it.
    Column("origin", String(55), nullable=False, server_default=""),
    # The sub-service's fields, from the request and the answers to information requests.
    Column("fields", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # The rejected request this one corrects, if any (migration 0015).
    Column("cites_number", String(20), nullable=False, server_default=""),
    # How many status changes were published for the request: the last one's sequence, which
    # its consumers compare (migration 0016).
    Column("status_sequence", Integer, nullable=False, server_default="0"),
    # The highest sequence of routing's decisions applied (migration 0017).
    Column("routed_sequence", Integer, nullable=False, server_default="0"),
    # The transfer the latest of them answered, which orders them first (migration 0021).
    Column("routed_transfer", Integer, nullable=False, server_default="0"),
    # The idempotency key of the ClaimNext that claimed the item, while its holder holds it.
    Column("claim_key", String(100), nullable=False, server_default=""),
    Index("work_items_applicant", "applicant_id"),
    Index("work_items_subject", "subject_id"),
    Index("work_items_mobile", "mobile_key"),
    # Words of the text within a department (btree_gin for the department): a branch of a
    # search reads only its own department's candidates. Small pending lists (kB): an insert
    # that merges one waits a few ms, not hundreds (migration 0011).
    Index(
        "work_items_search_text",
        "department",
        "search_text",
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
        postgresql_with={"gin_pending_list_limit": 256},
    ),
    Index(
        "work_items_search_tokens",
        "department",
        "search_tokens",
        postgresql_using="gin",
        postgresql_with={"gin_pending_list_limit": 256},
    ),
    # Search results in their order (newest submission first) within a department, with what
    # the filters read, so that a page's keys come from the index alone.
    Index(
        "work_items_submitted",
        "department",
        text("submitted_at DESC"),
        text("request_number DESC"),
        postgresql_include=["request_id", "state", "due_at", "sub_service_code"],
    ),
    Index(
        "work_items_next",
        "department",
        text("priority DESC"),
        "due_at",
        "request_number",
        postgresql_where=text("state = 'queued'"),
    ),
    Index("work_items_leases", "claimed_until", postgresql_where=text("state = 'claimed'")),
    Index(
        "work_items_waiting", "respond_by", postgresql_where=text("state = 'waiting_on_applicant'")
    ),
    Index("work_items_sla", "sla_next_at", postgresql_where=text("sla_next_at IS NOT NULL")),
    # ListQueue's order, so that a page reads its own rows only.
    Index(
        "work_items_queue",
        "department",
        text("priority DESC"),
        "queued_at",
        "request_number",
        postgresql_where=text("state IN ('queued', 'claimed')"),
    ),
    # What a reviewer holds, counted against their capacity on every claim.
    Index("work_items_held", "assignee", postgresql_where=text("state = 'claimed'")),
    # The backlog (GetBacklog, the queue gauges) counted from the index alone.
    Index(
        "work_items_backlog",
        "department",
        "queue",
        "state",
        "due_at",
        postgresql_include=["queued_at"],
        postgresql_where=text("state IN ('queued', 'claimed', 'waiting_on_applicant')"),
    ),
)

# The version of the working-day calendar the open items' due dates and SLA marks follow
# (one row): a start with another version computes them again (handlers.reschedule).
schedule_calendar = Table(
    "schedule_calendar",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("version", Integer, nullable=False),
)

# Cancellations that arrived before their request was routed here; applied on arrival.
# `by_office`: the office cancelled it (the person off the account's record), not the beneficiary.
withdrawals = Table(
    "withdrawals",
    metadata,
    Column("request_id", Uuid, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Column("by_office", Boolean, nullable=False, server_default="false"),
)

# Follow-ups that arrived before their request was routed here: on its record on arrival.
early_follow_ups = Table(
    "early_follow_ups",
    metadata,
    Column("request_id", Uuid, primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("message", Text, nullable=False),
)

# Each item a ClaimNext under an idempotency key claimed, whether that claim lasts or not: its
# retry once the item is no longer the reviewer's says so (handlers.claim_next).
claim_keys = Table(
    "claim_keys",
    metadata,
    Column("reviewer_id", String(50), primary_key=True),
    Column("key", String(100), primary_key=True),
    Column("request_id", Uuid, nullable=False),
    Column("request_number", String(20), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
)

history = Table(
    "history",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("request_id", Uuid, ForeignKey("work_items.request_id"), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(50), nullable=False),
    Column("action", String(50), nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("internal", Boolean, nullable=False, server_default="false"),
)

reviewers = Table(
    "reviewers",
    metadata,
    Column("reviewer_id", String(50), primary_key=True),
    Column("departments", JSONB, nullable=False),
    Column("languages", JSONB, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("available", Boolean, nullable=False),
    Column("supervises", JSONB, nullable=False),
    # NULL, not JSON null, for a record that decides every department (domain Reviewer.scope).
    Column("scope", JSONB(none_as_null=True)),
    # Grows with every change, as published to the other services; 0: never published.
    Column("version", BigInteger, nullable=False, server_default="0"),
)

# What notify reports of each message sent about a request; kept apart from work items
# because the receipt of the first SMS can arrive before the request is routed here.
receipts = Table(
    "receipts",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("request_id", Uuid, nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("cause", String(100), nullable=False),
)

# How each queue hands out work, and whom it gave work to last (round-robin's pointer).
queue_settings = Table(
    "queue_settings",
    metadata,
    Column("queue", String(100), primary_key=True),
    Column("mode", String(20), nullable=False),
    Column("last_assigned", String(50), nullable=False, server_default=""),
)

# Decisions sampled for a second look by another reviewer.
quality_checks = Table(
    "quality_checks",
    metadata,
    Column("request_id", Uuid, primary_key=True),
    Column("request_number", String(20), nullable=False),
    Column("department", String(50), nullable=False),
    Column("decision", String(20), nullable=False),
    Column("decided_by", String(50), nullable=False),
    Column("sampled_at", DateTime(timezone=True), nullable=False),
    Column("checked_by", String(50), nullable=False, server_default=""),
    Column("verdict", String(20), nullable=False, server_default=""),
    Column("note", Text, nullable=False, server_default=""),
    # A decision made on an appeal: the decision it replaced and whose ("" otherwise).
    Column("replaced_decision", String(20), nullable=False, server_default=""),
    Column("replaced_by", String(50), nullable=False, server_default=""),
    # A supervisor's pages of checks, in their order (made or not, newest first).
    Index("quality_checks_sampled", "department", "sampled_at", "request_id"),
    # The checks still to make, oldest first: through an index of every check it read the
    # department's every check since the first (made ones first, the oldest) to find them.
    Index(
        "quality_checks_pending",
        "department",
        "sampled_at",
        "request_id",
        postgresql_where=text("checked_by = ''"),
    ),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
