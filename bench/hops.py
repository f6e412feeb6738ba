"""P2's path split hop by hop, from what the services record anyway.

Each arrived submission's path is cut at the times its rows carry: intake's outbox row (its
`created_at` is the transaction's start, `sent_at` the publication's acknowledgement), routing's
outbox row for the routed event (likewise), and review's inbox row for that event (`applied_at`,
its transaction's start). The steps add up to the figure itself, call to claimable. A consumer may
begin before the relay that fed it has recorded the acknowledgement; that step then counts as
the histogram's least value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
from tawasul_platform import topics

from bench.load import new_histogram, percentiles_ms, record_seconds

STEPS = (
    "call → intake's transaction begins",
    "→ intake's event published (the transaction, the relay's wake-up, Kafka's ack)",
    "→ routing's transaction begins (the fetch)",
    "→ routed event published",
    "→ review's transaction begins (the fetch)",
    "→ claimable (review's transaction and commit)",
)
# Review's inbox records the events it applied under this consumer name.
REVIEW_CONSUMER = "review"

_OUTBOX = (
    "SELECT key, event_id, extract(epoch FROM created_at)::float8 AS began,"
    " extract(epoch FROM sent_at)::float8 AS sent"
    " FROM outbox WHERE topic = $1 AND key = ANY($2::text[]) AND sent_at IS NOT NULL"
)
_APPLIED = (
    "SELECT event_id, extract(epoch FROM applied_at)::float8 AS began"
    " FROM inbox WHERE consumer = $1 AND event_id = ANY($2::uuid[])"
)


async def _fetch(socket_dir: Path, database: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(host=str(socket_dir), user="postgres", database=database)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


# The relays mark their rows sent a second after Kafka acknowledged them (or per 100 rows):
# the last requests to arrive may not carry their marks yet.
MARKED_WITHIN = 5.0


async def _sent(socket_dir: Path, ids: list[str]) -> tuple[list[asyncpg.Record], ...]:
    """Both relays' rows of the requests, once all are marked sent or MARKED_WITHIN passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MARKED_WITHIN
    while True:
        rows = await asyncio.gather(
            _fetch(socket_dir, "tawasul_intake", _OUTBOX, topics.REQUEST_SUBMITTED, ids),
            _fetch(socket_dir, "tawasul_routing", _OUTBOX, topics.REQUEST_ROUTED, ids),
        )
        if all(len(found) >= len(ids) for found in rows) or loop.time() > deadline:
            return tuple(rows)
        await asyncio.sleep(0.2)


async def split(
    socket_dir: Path, arrived: Mapping[str, tuple[float, float]]
) -> dict[str, dict[str, float]]:
    """p50/p95/p99/max of each step over the requests (id → (sent, seen)) whose every row was
    found; {} when none was."""
    ids = list(arrived)
    submitted, routed = await _sent(socket_dir, ids)
    intake = {row["key"]: row for row in submitted}
    routing = {row["key"]: row for row in routed}
    applied = {
        row["event_id"]: row["began"]
        for row in await _fetch(
            socket_dir,
            "tawasul_review",
            _APPLIED,
            REVIEW_CONSUMER,
            [row["event_id"] for row in routed],
        )
    }
    histograms = [new_histogram() for _ in STEPS]
    for request_id, (sent, seen) in arrived.items():
        first, second = intake.get(request_id), routing.get(request_id)
        if first is None or second is None or second["event_id"] not in applied:
            continue
        cuts = (
            sent,
            first["began"],
            first["sent"],
            second["began"],
            second["sent"],
            applied[second["event_id"]],
            seen,
        )
        for histogram, start, end in zip(histograms, cuts, cuts[1:], strict=False):
            record_seconds(histogram, end - start)
    if not histograms[0].get_total_count():
        return {}
    return {
        step: {"requests": histogram.get_total_count(), **percentiles_ms(histogram)}
        for step, histogram in zip(STEPS, histograms, strict=True)
    }
