"""Forgetting what nobody needs any more: published outbox rows and old inbox entries.

An inbox entry guards against a redelivery: while its topic holds the event (a group reset to
its start), and while a dead letter of it may be replayed. A group may park the event as late as
its topic still holds it, and its dead-letter topic keeps it as long again from then, so entries
are kept for both retentions (and a day's margin); older ones guard nothing. Published outbox
rows are kept a while for inspection only. See docs/retention.md.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Table, delete, func, select, tuple_

from tawasul_platform.sql import Database
from tawasul_platform.topics import SUBSCRIPTIONS, TOPICS, dead_letter_topic

_DEAD_LETTERS = {dead_letter_topic(topic, group) for topic, group in SUBSCRIPTIONS}


def _longest(*, dead_letters: bool) -> timedelta:
    kept = (t.retention_ms for t in TOPICS if (t.name in _DEAD_LETTERS) == dead_letters)
    return timedelta(milliseconds=max(kept))


# The groups that applied an event at once must still know it when its dead letter, parked by
# a group as late as the topic held it, is replayed on the last day the dead-letter topic holds
# it: 4 + 4 weeks and a day, not 4 weeks and a day (deadletters.py refuses anything older).
INBOX_KEEP = _longest(dead_letters=False) + _longest(dead_letters=True) + timedelta(days=1)


class Pruner:
    """One round deletes up to `batch_size` rows of each table; short transactions, so it never
    holds locks long. Suits `periodic.every`: it says True while there is more to delete."""

    def __init__(
        self,
        database: Database,
        *,
        outbox: Table,
        inbox: Table,
        outbox_keep: timedelta,
        inbox_keep: timedelta = INBOX_KEEP,
        batch_size: int = 1000,
    ) -> None:
        self._database = database
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
        session = self._database.session()
        try:
            outbox = await session.execute(delete(o).where(o.c.id.in_(published)).returning(o.c.id))
            inbox = await session.execute(
                delete(i)
                .where(tuple_(i.c.consumer, i.c.event_id).in_(applied))
                .returning(i.c.event_id)
            )
            await session.commit()
        finally:
            await session.close()
        return max(len(outbox.all()), len(inbox.all())) >= self._batch
