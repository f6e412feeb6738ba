"""Every Kafka topic of the system, declared once; stack tooling creates them at start."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

REQUEST_SUBMITTED = "tawasul.requests.submitted.v1"
REQUEST_ROUTED = "tawasul.requests.routed.v1"
REQUEST_STATUS_CHANGED = "tawasul.requests.status-changed.v1"
NOTIFICATION_EVENTS = "tawasul.notifications.events.v1"
# What beneficiaries do to a request after submitting it: follow-ups, cancellations.
APPLICANT_ACTIONS = "tawasul.requests.applicant-actions.v1"
# SLA warnings (50 %, 75 %) and breaches, from review.
SLA_ALERTS = "tawasul.requests.sla.v1"
# Each step of a document's life, from docs: stored, rejected, clean, infected, attached, removed.
DOCUMENT_EVENTS = "tawasul.documents.events.v1"
# Review's record of each reviewer (the departments it keeps them in), compacted: the latest of
# every reviewer stays, for docs, notify and routing to narrow staff tokens as review does.
STAFF_REVIEWERS = "tawasul.staff.reviewers.v1"

WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 6
    retention_ms: int = 4 * WEEK_MS
    # Compacted: the latest record of each key stays however old (retention does not apply).
    compacted: bool = False

    def config(self) -> dict[str, str]:
        if self.compacted:
            return {"retention.ms": "-1", "cleanup.policy": "compact"}
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete"}


def dead_letter_topic(topic: str, group: str) -> str:
    """One dead-letter topic per (topic, consumer group), so a group's poison stays its own."""
    return f"{topic}.dlt.{group}"


# (topic, consumer group) pairs that exist; each gets its dead-letter topic.
SUBSCRIPTIONS: tuple[tuple[str, str], ...] = (
    (REQUEST_SUBMITTED, "routing"),
    (REQUEST_ROUTED, "review"),
    (REQUEST_STATUS_CHANGED, "intake"),
    # Notify reads everything it acts on in one group; its channels send from its table.
    *(
        (topic, "notify-events")
        for topic in (
            REQUEST_SUBMITTED,
            REQUEST_ROUTED,
            REQUEST_STATUS_CHANGED,
            APPLICANT_ACTIONS,
            SLA_ALERTS,
        )
    ),
    (APPLICANT_ACTIONS, "review"),
    (REQUEST_STATUS_CHANGED, "routing"),
    (APPLICANT_ACTIONS, "routing"),
    # Review's receipts gather in a group of their own; its requests do not wait for them.
    (NOTIFICATION_EVENTS, "review-receipts"),
    (REQUEST_ROUTED, "docs"),
    (APPLICANT_ACTIONS, "docs"),
    (REQUEST_SUBMITTED, "docs"),
    (STAFF_REVIEWERS, "docs"),
    (STAFF_REVIEWERS, "notify-events"),
    (STAFF_REVIEWERS, "routing"),
)


def group_service(group: str) -> str:
    """The service a consumer group belongs to: groups are named `<service>` or
    `<service>-<what it reads for>`."""
    return group.split("-", 1)[0]


# The one service that publishes each topic (from its outbox); Kafka's ACLs hold it so.
WRITERS: dict[str, str] = {
    REQUEST_SUBMITTED: "intake",
    APPLICANT_ACTIONS: "intake",
    REQUEST_ROUTED: "routing",
    REQUEST_STATUS_CHANGED: "review",
    SLA_ALERTS: "review",
    STAFF_REVIEWERS: "review",
    NOTIFICATION_EVENTS: "notify",
    DOCUMENT_EVENTS: "docs",
}

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(REQUEST_SUBMITTED),
    TopicSpec(REQUEST_ROUTED),
    TopicSpec(REQUEST_STATUS_CHANGED),
    TopicSpec(NOTIFICATION_EVENTS),
    TopicSpec(APPLICANT_ACTIONS),
    TopicSpec(SLA_ALERTS),
    TopicSpec(DOCUMENT_EVENTS),
    TopicSpec(STAFF_REVIEWERS, compacted=True),
    *(TopicSpec(dead_letter_topic(t, g), partitions=1) for t, g in SUBSCRIPTIONS),
)
# Read whole by their groups at every start (EventConsumer.subscribe_table).
COMPACTED = frozenset(spec.name for spec in TOPICS if spec.compacted)


async def ensure_topics(bootstrap_servers: str, topics: tuple[TopicSpec, ...] = TOPICS) -> None:
    """Create any missing topic; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t.name, t.partitions, 1, topic_configs=t.config())
            for t in topics
            if t.name not in existing
        ]
        if missing:
            # Another starter may have created them in between.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()
