"""Notify's own tables (database tawasul_notify); no other service reads them."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from tawasul_platform.db import inbox_table, outbox_table, staff_records_table

metadata = MetaData()

# One row per (event, channel, recipient), written pending before the message leaves.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("request_id", Uuid, nullable=False),
    Column("cause_event_id", Uuid, nullable=False),
    Column("cause_event_type", String(100), nullable=False),
    Column("kind", String(40), nullable=False, server_default=""),
    Column("channel", String(20), nullable=False),
    Column("audience", String(20), nullable=False, server_default="beneficiary"),
    Column("recipient", String(320), nullable=False),
    Column("subject", Text, nullable=False, server_default=""),
    Column("text", Text, nullable=False),
    Column("parts", Integer, nullable=False, server_default="0"),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("provider_message_id", String(200), nullable=False, server_default=""),
    Column("error", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # When the SMS gateway was last asked for this message's receipt.
    Column("receipt_checked_at", DateTime(timezone=True)),
    # A pending message that met its channel unavailable waits until then.
    Column("retry_at", DateTime(timezone=True)),
    UniqueConstraint("cause_event_id", "channel", "recipient", name="deliveries_cause"),
    Index("deliveries_request", "request_id", "created_at"),
    Index(
        "deliveries_awaiting_receipt",
        "updated_at",
        postgresql_where=text("status = 'sent' AND channel = 'sms'"),
    ),
    # Each channel's sender's: the pending messages, oldest first (one-time codes are sent by
    # their call alone).
    Index(
        "deliveries_due",
        "channel",
        "created_at",
        postgresql_where=text("status = 'pending' AND kind <> 'one_time_code'"),
    ),
    # The results gauge's (adapters/metrics.py): the last hour's, from the index alone.
    Index("deliveries_created", "created_at", postgresql_include=["channel", "status"]),
)

# In-app messages, read by their owner over gRPC.
inbox_messages = Table(
    "inbox_messages",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", String(64), nullable=False),
    # Audience: a beneficiary's inbox and an employee's are apart even where the ids match.
    # The default is for the previous release's INSERTs during a rollout (migration 0010).
    Column("audience", String(16), nullable=False, server_default="beneficiary"),
    Column("request_id", Uuid, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("read_at", DateTime(timezone=True)),
    Index("inbox_messages_owner", "owner_id", "created_at"),
)

# Who may read a request's deliveries: from submitted and routed events. `routed`: the
# department is routing's decision, which a submission's catalog department never replaces.
# `applicant_kind`: who filed it (citizen, resident, establishment; NULL: not said), whose
# portal's words its messages use (migration 0011).
request_access = Table(
    "request_access",
    metadata,
    Column("request_id", Uuid, primary_key=True),
    Column("applicant_id", String(64), nullable=False),
    Column("department", String(50), nullable=False),
    Column("routed", Boolean, nullable=False, server_default=false()),
    # The sequence of the latest of routing's decisions applied: one no later is older than
    # the department recorded (migration 0006).
    Column("routed_sequence", Integer, nullable=False, server_default="0"),
    Column("applicant_kind", String(16)),
    # The transfer that decision answered, which orders routing's decisions first (migration
    # 0013): routing's count is numbered again when a restore of its database is replayed.
    Column("routed_transfer", Integer, nullable=False, server_default="0"),
)

# The latest status change of each request its beneficiary was told of (review's sequence):
# one no later is stale (migration 0007); and the latest cancellation told, when it was made,
# while it stands (a cancel-too-late told clears it):
# review's restatement of it is not told again, nor a closure it was made in time for (0008);
# and the cancellation the latest cancel-too-late told answered, when it was made: intake's,
# read after it, neither stands nor is told (0012); and the last day the latest rejection told
# may be appealed, which a cancel-too-late restating it tells again (0015).
told_status = Table(
    "told_status",
    metadata,
    Column("request_id", Uuid, primary_key=True),
    Column("sequence", Integer, nullable=False),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("too_late_at", DateTime(timezone=True)),
    Column("appeal_until", Date),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
staff_records = staff_records_table(metadata)
