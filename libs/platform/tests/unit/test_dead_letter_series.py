"""A group's dead-letter counter exists at 0 from its start, so that the TawasulDeadLetters
alert's increase() sees a pod's first dead letter (a series born at 1 has no earlier sample)."""

from __future__ import annotations

from typing import cast

from prometheus_client import REGISTRY
from tawasul_platform import metrics, service
from tawasul_platform.consumer import EventConsumer
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.topics import (
    NOTIFICATION_EVENTS,
    REQUEST_ROUTED,
    REQUEST_STATUS_CHANGED,
    SUBSCRIPTIONS,
)


def events(topic: str, group: str, outcome: str) -> float | None:
    return REGISTRY.get_sample_value(
        "tawasul_consumer_events_total", {"topic": topic, "group": group, "outcome": outcome}
    )


def test_each_topic_a_group_reads_is_exported_at_zero_for_each_outcome() -> None:
    metrics.subscribed("review-receipts")

    assert (NOTIFICATION_EVENTS, "review-receipts") in SUBSCRIPTIONS
    assert events(NOTIFICATION_EVENTS, "review-receipts", "dead_lettered") is not None
    assert events(NOTIFICATION_EVENTS, "review-receipts", "applied") is not None
    # Only what the group reads: no series of a topic it never sees.
    assert events(REQUEST_ROUTED, "review-receipts", "dead_lettered") is None


class StartedConsumer:
    def __init__(self, group: str) -> None:
        self.group = group
        self.started = False

    async def start(self) -> None:
        self.started = True


async def test_serve_exports_a_group_s_series_as_it_starts_the_group() -> None:
    consumer = StartedConsumer("intake")
    runtime = service.Runtime(
        grpc=cast(GrpcServer, None), consumers=[cast(EventConsumer, consumer)]
    )

    await service._start(runtime)

    assert consumer.started
    assert events(REQUEST_STATUS_CHANGED, "intake", "dead_lettered") is not None
