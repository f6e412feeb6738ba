"""Pruning the outbox and the inbox on a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import MetaData, func, insert, select
from tawasul_platform.db import inbox_table, outbox_table
from tawasul_platform.retention import INBOX_KEEP, Pruner
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine
from tawasul_platform.topics import REQUEST_SUBMITTED, TOPICS, WEEK_MS, dead_letter_topic


def _retention(topic: str) -> timedelta:
    return timedelta(milliseconds=next(t.retention_ms for t in TOPICS if t.name == topic))


def test_inbox_entries_outlive_every_topic_s_retention() -> None:
    assert max(t.retention_ms for t in TOPICS) == 4 * WEEK_MS
    assert timedelta(weeks=4) < INBOX_KEEP


def test_inbox_entries_outlive_a_dead_letter_replayed_on_the_last_day_it_is_kept() -> None:
    """Notify applies an event at once; routing, lagging, parks it on the last day the topic
    holds it, and the operator replays it on the last day the dead-letter topic holds it:
    notify must still know the event then, or it applies it twice."""
    parked = _retention(REQUEST_SUBMITTED)
    replayed = parked + _retention(dead_letter_topic(REQUEST_SUBMITTED, "routing"))
    assert replayed == timedelta(weeks=8)
    assert replayed + timedelta(days=1) <= INBOX_KEEP


async def test_published_rows_and_old_inbox_entries_go_unsent_rows_and_recent_ones_stay(
    database_url: str,
) -> None:
    engine = async_engine(database_url, pool_size=1)
    metadata = MetaData()
    outbox, inbox = outbox_table(metadata), inbox_table(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)

        now = datetime.now(UTC)

        def ago(hours: float) -> datetime:
            return now - timedelta(hours=hours)

        def row(name: str, sent_hours_ago: float | None) -> dict[str, object]:
            return {
                "event_id": uuid.uuid4(),
                "topic": "t",
                "key": name,
                "payload": b"",
                "headers": {},
                "created_at": ago(1000),
                "sent_at": None if sent_hours_ago is None else ago(sent_hours_ago),
            }

        old = [row(f"old-{n}", sent_hours_ago=100) for n in range(5)]
        await conn.execute(
            insert(outbox), [*old, row("recent", sent_hours_ago=1), row("unsent", None)]
        )
        stale = INBOX_KEEP.total_seconds() / 3600 + 1
        await conn.execute(
            insert(inbox),
            [
                *(
                    {"consumer": "c", "event_id": uuid.uuid4(), "applied_at": ago(stale)}
                    for _ in range(3)
                ),
                # Past its topic's 4 weeks, but a dead letter of it may still be replayed.
                {"consumer": "c", "event_id": uuid.uuid4(), "applied_at": ago(24 * 30)},
            ],
        )
    prune = Pruner(
        Database(engine.sync_engine),
        outbox=outbox,
        inbox=inbox,
        outbox_keep=timedelta(hours=72),
        batch_size=2,
    )
    rounds = 1
    while await prune():
        rounds += 1
    # Five old rows two at a time: it asked to run again until a round found fewer.
    assert rounds == 3
    async with engine.connect() as conn:
        kept = set((await conn.scalars(select(outbox.c.key))).all())
        remembered = await conn.scalar(select(func.count()).select_from(inbox))
    await engine.dispose()
    assert kept == {"recent", "unsent"}
    assert remembered == 1
