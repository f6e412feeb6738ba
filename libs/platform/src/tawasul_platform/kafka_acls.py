"""What each client of Kafka may do there: a service reads its own subscriptions and writes
what it publishes, nothing more.

On the TLS listener a client is its certificate's subject, `CN=<name>` (Strimzi's principal
for a `tls-external` KafkaUser; the dev stack's broker maps its certificates to the same).
Everything here derives from `topics`: a service reads the topics its consumer groups
subscribe to, in those groups (all named after it, so a prefix holds them, the former groups
whose offsets a new one adopts too), writes those subscriptions' dead-letter topics, and
writes the topics it publishes (WRITERS). The operators' tools run as OPERATOR:
`tawasul-dead-letters` reads every dead-letter topic in its own group and publishes letters
again on their topics, `tawasul-rewind` moves a stopped service's groups back. Anything else
is refused: notify cannot forge a submission, docs cannot read the staff's decisions.
deploy/k8s's KafkaUsers hold the same grants (a test keeps them equal); the dev stack gives
them to its broker at start.

Every client also has a QUOTA, so that one service's burst or runaway loop (or an operator's
replay) is slowed down before it takes the brokers from the others; only prod's KafkaUsers
set it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tawasul_platform.deadletters import HANDLED_GROUP
from tawasul_platform.topics import SUBSCRIPTIONS, WRITERS, dead_letter_topic, group_service

# Who runs the operators' Kafka tools (tawasul-dead-letters, tawasul-rewind), with a
# certificate of its own.
OPERATOR = "operator"

Resource = Literal["topic", "group"]
Pattern = Literal["literal", "prefix"]
Operation = Literal["Read", "Write"]


@dataclass(frozen=True, order=True)
class Grant:
    """`user` (a certificate's common name) may do `operation` on the `resource` named `name`
    (or every one whose name starts so, with `prefix`). Read implies Describe."""

    user: str
    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = "literal"


@dataclass(frozen=True)
class Quota:
    """How much of each broker one client may take before Kafka throttles it: its answers are
    delayed, nothing is refused or lost."""

    produce_bytes_per_second: int
    fetch_bytes_per_second: int
    # Of the time of one of the broker's network and I/O threads (Kafka's default 3 + 8).
    request_percentage: int


# A submission's events are 0.3-0.7 KiB on each topic (measured on the dev stack), so even
# notify, which reads five topics, fetches about 3 KiB a submission: at 1,000 submissions a
# second (four times this machine's best P1, hundreds of times an office's daily average) at
# most a fifth of the limits below, which hold per broker, even were it all on one.
# Two threads of a broker's eleven, so that no one client takes the brokers from the others.
QUOTA = Quota(
    produce_bytes_per_second=8 * 1024 * 1024,
    fetch_bytes_per_second=16 * 1024 * 1024,
    request_percentage=200,
)


def principal(user: str) -> str:
    return f"User:CN={user}"


def service_grants(service: str) -> frozenset[Grant]:
    subscribed = [(t, g) for t, g in SUBSCRIPTIONS if group_service(g) == service]
    return frozenset(
        {Grant(service, "group", service, "Read", "prefix")}
        | {Grant(service, "topic", topic, "Read") for topic, _ in subscribed}
        | {Grant(service, "topic", dead_letter_topic(t, g), "Write") for t, g in subscribed}
        | {Grant(service, "topic", topic, "Write") for topic, s in WRITERS.items() if s == service}
    )


def operator_grants() -> frozenset[Grant]:
    """tawasul-dead-letters: reads the dead letters in its group, publishes them again on their
    topics. tawasul-rewind: moves the services' groups back on the topics they read (a commit
    needs Read on the group and on the topic)."""
    return frozenset(
        {Grant(OPERATOR, "group", HANDLED_GROUP, "Read")}
        | {Grant(OPERATOR, "topic", dead_letter_topic(t, g), "Read") for t, g in SUBSCRIPTIONS}
        | {Grant(OPERATOR, "topic", topic, "Write") for topic, _ in SUBSCRIPTIONS}
        | {Grant(OPERATOR, "group", group, "Read") for _, group in SUBSCRIPTIONS}
        | {Grant(OPERATOR, "topic", topic, "Read") for topic, _ in SUBSCRIPTIONS}
    )


def grants() -> frozenset[Grant]:
    """Every grant of the system: each service's and the operator's."""
    services = sorted(set(WRITERS.values()) | {group_service(g) for _, g in SUBSCRIPTIONS})
    found = operator_grants()
    for service in services:
        found |= service_grants(service)
    return found
