"""Intake's own tables (database tawasul_intake); no other service reads them."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from tawasul_platform.db import inbox_table, outbox_table

metadata = MetaData()

requests = Table(
    "requests",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("number", String(20), nullable=False, unique=True),
    Column("applicant_id", String(20), nullable=False),
    # The default is for the previous release's INSERTs during a rollout (migration 0010).
    Column("applicant_role", String(16), nullable=False, server_default="establishment"),
    Column("subject_id", String(20), nullable=False),
    Column("idempotency_key", String(100), nullable=False),
    Column("sub_service_code", String(100), nullable=False),
    Column("catalog_version", Integer, nullable=False),
    Column("department_code", String(40), nullable=False),
    Column("description", Text, nullable=False),
    Column("fields", JSONB, nullable=False),
    Column("document_ids", JSONB, nullable=False),
    Column("contact", JSONB, nullable=False),
    Column("status", String(32), nullable=False),
    Column("decision_message", Text, nullable=False, server_default=""),
    # {"code", "ar", "en"} of the latest decision's reason; null before a decision.
    Column("decision_reason", JSONB, nullable=True),
    # Submission.digest(): a retried idempotency key is compared with what it first filed.
    Column("submitted_digest", String(64), nullable=False, server_default=""),
    # OpenKey.person: who a request filed under the holder's number is about (migration 0011).
    Column("person_key", String(64), nullable=False, server_default=""),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The SLA clock: the promise and the intervals it was paused (waiting on the beneficiary).
    Column("sla", JSONB, nullable=False),
    Column("pauses", JSONB, nullable=False),
    Column("paused_since", DateTime(timezone=True)),
    Column("history", JSONB, nullable=False),
    Column("cites_number", String(20)),
    Column("cited_by", JSONB, nullable=False),
    Column("follow_up_count", Integer, nullable=False),
    Column("last_follow_up_at", DateTime(timezone=True)),
    Column("missing", JSONB, nullable=False, server_default="[]"),
    Column("respond_by", DateTime(timezone=True)),
    # Request.appeal_told (migration 0012).
    Column("appeal_told", DateTime(timezone=True)),
    Column("appealed", Boolean, nullable=False, server_default="false"),
    # The highest sequence of review's status changes applied (migration 0007).
    Column("status_sequence", Integer, nullable=False, server_default="0"),
    UniqueConstraint("applicant_id", "idempotency_key", name="requests_idempotency"),
    # One open request per person and sub-service, whatever races the check before it.
    Index(
        "requests_one_open",
        "subject_id",
        "sub_service_code",
        "person_key",
        unique=True,
        postgresql_where=text(
            "status IN ('submitted', 'under_review', 'needs_more_info',"
            " 'returned_by_applicant', 'transferred')"
        ),
    ),
    Index("requests_applicant_recent", "applicant_id", text("submitted_at DESC"), text("id DESC")),
    # A submission reads the account's open requests (at most MAX_OPEN_PER_ACCOUNT): through
    # requests_applicant_recent it read every request the account ever filed.
    Index(
        "requests_applicant_open",
        "applicant_id",
        postgresql_where=text(
            "status IN ('submitted', 'under_review', 'needs_more_info',"
            " 'returned_by_applicant', 'transferred')"
        ),
    ),
)

# The live one-time code of a request being tracked without login, as a keyed hash only.
tracking_codes = Table(
    "tracking_codes",
    metadata,
    Column("request_id", Uuid, primary_key=True),
    Column("code_hash", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
)

# Fixed-window counters shared by every intake replica.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("bucket", String(200), primary_key=True),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("hits", Integer, nullable=False),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
