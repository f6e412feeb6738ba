"""What Kafka's ACLs grant, derived from the topics' declarations: each topic published by
its one writer (and replayed by the operator), each subscription read by its group's service
(and the operator), each dead-letter topic written by that service and read by the operator
alone."""

from __future__ import annotations

from tawasul_platform.deadletters import HANDLED_GROUP
from tawasul_platform.kafka_acls import OPERATOR, Grant, grants, principal, service_grants
from tawasul_platform.topics import (
    NOTIFICATION_EVENTS,
    REQUEST_ROUTED,
    REQUEST_STATUS_CHANGED,
    REQUEST_SUBMITTED,
    SUBSCRIPTIONS,
    TOPICS,
    WRITERS,
    dead_letter_topic,
    group_service,
)

SERVICES = {"intake", "routing", "review", "notify", "docs"}


def _who(name: str, operation: str) -> set[str]:
    return {
        g.user
        for g in grants()
        if g.resource == "topic" and g.name == name and g.operation == operation
    }


def test_every_consumer_group_belongs_to_a_service_and_no_prefix_reaches_anothers() -> None:
    assert set(WRITERS.values()) == SERVICES
    assert {group_service(group) for _, group in SUBSCRIPTIONS} <= SERVICES
    for service in SERVICES:
        for _, group in SUBSCRIPTIONS:
            if group.startswith(service):
                assert group_service(group) == service, (service, group)


def test_each_event_topic_is_published_by_its_writer_and_replayed_by_the_operator() -> None:
    subscribed = {topic for topic, _ in SUBSCRIPTIONS}
    for topic, writer in WRITERS.items():
        expected = {writer, OPERATOR} if topic in subscribed else {writer}
        assert _who(topic, "Write") == expected, topic
    assert _who(REQUEST_SUBMITTED, "Write") == {"intake", OPERATOR}
    assert "notify" not in _who(REQUEST_SUBMITTED, "Write")


def test_each_subscription_is_read_by_its_groups_service_and_the_operator() -> None:
    """The operator reads them to move a stopped service's groups back (tawasul-rewind)."""
    for topic in WRITERS:
        readers = {group_service(g) for t, g in SUBSCRIPTIONS if t == topic}
        assert _who(topic, "Read") == (readers | {OPERATOR} if readers else set()), topic
    assert _who(REQUEST_ROUTED, "Read") == {"review", "notify", "docs", OPERATOR}
    assert _who(REQUEST_STATUS_CHANGED, "Read") == {"intake", "notify", "routing", OPERATOR}
    groups = {g.name for g in grants() if g.user == OPERATOR and g.resource == "group"}
    assert groups == {HANDLED_GROUP, *(group for _, group in SUBSCRIPTIONS)}
    assert Grant("notify", "group", "notify", "Read", "prefix") in service_grants("notify")
    assert not any(g.resource == "group" and g.name == "review" for g in service_grants("routing"))


def test_dead_letters_are_written_by_the_parking_service_and_read_by_the_operator() -> None:
    for topic, group in SUBSCRIPTIONS:
        dlt = dead_letter_topic(topic, group)
        assert _who(dlt, "Write") == {group_service(group)}, dlt
        assert _who(dlt, "Read") == {OPERATOR}, dlt
    parked = dead_letter_topic(NOTIFICATION_EVENTS, "review-receipts")
    assert Grant("review", "topic", parked, "Write") in service_grants("review")


def test_every_topic_granted_is_declared_and_principals_are_the_certificates_cn() -> None:
    declared = {spec.name for spec in TOPICS}
    assert {g.name for g in grants() if g.resource == "topic"} <= declared
    assert principal("routing") == "User:CN=routing"
