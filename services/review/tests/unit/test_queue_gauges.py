"""Review's queue gauges: what GetBacklog counts, per department and queue, and a queue that
emptied reads 0 rather than its last value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from prometheus_client import REGISTRY
from tawasul_review.adapters.metrics import QueueGauges

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def row(queue: str, size: int, due_soon: int, breached: int, waiting: int) -> Any:
    oldest = NOW - timedelta(hours=2) if size else None
    return SimpleNamespace(
        queue=queue, size=size, oldest=oldest, due_soon=due_soon, breached=breached, waiting=waiting
    )


def items(department: str, queue: str, state: str) -> float | None:
    return REGISTRY.get_sample_value(
        "tawasul_review_queue_items", {"department": department, "queue": queue, "state": state}
    )


async def test_each_queue_reads_its_counts_and_an_emptied_one_reads_zero() -> None:
    backlogs = [
        {"gauge-test": [row("a", 5, 2, 1, 3), row("b", 1, 0, 0, 0)]},
        {"gauge-test": [row("a", 4, 1, 1, 2)]},
    ]

    async def backlog(now: datetime) -> dict[str, list[Any]]:
        assert now == NOW
        return backlogs.pop(0)

    gauges = QueueGauges(backlog, now=lambda: NOW)
    assert await gauges() is False
    states = ("open", "due_soon", "breached", "waiting")
    assert [items("gauge-test", "a", s) for s in states] == [5, 2, 1, 3]
    assert (
        REGISTRY.get_sample_value(
            "tawasul_review_queue_oldest_seconds", {"department": "gauge-test", "queue": "a"}
        )
        == 7200
    )

    await gauges()
    assert [items("gauge-test", "a", s) for s in states] == [4, 1, 1, 2]
    assert [items("gauge-test", "b", s) for s in states] == [0, 0, 0, 0]
