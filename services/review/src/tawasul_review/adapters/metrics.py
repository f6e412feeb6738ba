"""Review's gauges for supervisors' dashboards: each department's queues by SLA state, read
from the database on a timer (the platform's `every`) and served with the platform's metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge

QUEUE_ITEMS = Gauge(
    "tawasul_review_queue_items",
    "Work items of a department's queue: open (queued or claimed), due_soon (open and due "
    "within a working day), breached (open and past due) and waiting (on the beneficiary)",
    ["department", "queue", "state"],
)
QUEUE_OLDEST = Gauge(
    "tawasul_review_queue_oldest_seconds",
    "How long the oldest open item of a department's queue has been queued",
    ["department", "queue"],
)
STATES = ("open", "due_soon", "breached", "waiting")

Backlog = Callable[[datetime], Awaitable[dict[str, list[Any]]]]


class QueueGauges:
    """Sets the gauges from each department's backlog rows (queue, size, oldest, due_soon,
    breached, waiting); a queue that emptied since the last look reads 0, not its last value."""

    def __init__(
        self, backlog: Backlog, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._backlog = backlog
        self._now = now
        self._seen: set[tuple[str, str]] = set()

    async def __call__(self) -> bool:
        now = self._now()
        seen: set[tuple[str, str]] = set()
        for department, rows in (await self._backlog(now)).items():
            for row in rows:
                labels = (department, row.queue)
                seen.add(labels)
                counts = (row.size, row.due_soon, row.breached, row.waiting)
                for state, count in zip(STATES, counts, strict=True):
                    QUEUE_ITEMS.labels(*labels, state).set(count)
                oldest = (now - row.oldest).total_seconds() if row.oldest else 0.0
                QUEUE_OLDEST.labels(*labels).set(oldest)
        for labels in self._seen - seen:
            for state in STATES:
                QUEUE_ITEMS.labels(*labels, state).set(0)
            QUEUE_OLDEST.labels(*labels).set(0)
        self._seen = seen
        return False
