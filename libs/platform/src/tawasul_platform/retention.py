"""Forgetting what nobody needs any more: published outbox rows and old inbox entries.

An inbox entry guards against a redelivery, and an event can be redelivered only while its
topic still holds it: entries older than the longest topic retention (and a day's margin) guard
nothing. Published outbox rows are kept a while for inspection only. See docs/retention.md.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Table, delete, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from tawasul_platform.topics import TOPICS

INBOX_KEEP = timedelta(milliseconds=max(t.retention_ms for t in TOPICS)) + timedelta(days=1)


class Pruner:
    """One round deletes up to `batch_size` rows of each table; short transactions, so it never
    holds locks long. Suits `periodic.every`: it says True while there is more to delete."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        outbox: Table,
        inbox: Table,
        outbox_keep: timedelta,
        inbox_keep: timedelta = INBOX_KEEP,
        batch_size: int = 1000,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._inbox = inbox
        self._outbox_keep = outbox_keep
        self._inbox_keep = inbox_keep
        self._batch = batch_size

    async def __call__(self) -> bool:
        o, i = self._outbox, self._inbox
        published = (
            select(o.c.id).where(o.c.sent_at < func.now() - self._outbox_keep).limit(self._batch)
        )
        applied = (
            select(i.c.consumer, i.c.event_id)
            .where(i.c.applied_at < func.now() - self._inbox_keep)
            .limit(self._batch)
        )
        async with self._engine.begin() as conn:
            outbox = await conn.execute(delete(o).where(o.c.id.in_(published)))
            inbox = await conn.execute(
                delete(i).where(tuple_(i.c.consumer, i.c.event_id).in_(applied))
            )
        return max(outbox.rowcount, inbox.rowcount) >= self._batch
