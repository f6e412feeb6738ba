"""A consumer's batch on a real PostgreSQL: its units of work share one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import Column, MetaData, Table, Text, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tawasul.events.v1 import events_pb2
from tawasul_platform.consumer import EventConsumer, EventHandler, Subscriptions
from tawasul_platform.db import inbox_table, outbox_table
from tawasul_platform.events import OutgoingEvent
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine
from tawasul_platform.uow import Messaging, SqlUnitOfWork, shared_transaction

metadata = MetaData()
notes = Table("notes", metadata, Column("text", Text, nullable=False))
MESSAGING = Messaging("batchtest", outbox_table(metadata), inbox_table(metadata))


async def apply(database: Database, event_id: str, note: str, *, commit: bool = True) -> bool:
    """What a consumer's handler does: claim the event, write, publish, commit."""
    async with SqlUnitOfWork(database, MESSAGING) as uow:
        if not await uow.claim_event("batchtest", event_id):
            return False
        await uow.session.execute(insert(notes).values(text=note))
        uow.publish(OutgoingEvent(uuid.UUID(event_id), "t", note, note.encode(), {}))
        if commit:
            await uow.commit()
    return True


async def engine_with_tables(database_url: str) -> AsyncEngine:
    engine = async_engine(database_url, pool_size=2)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine


async def stored(engine: AsyncEngine) -> tuple[list[str], list[str], int]:
    async with engine.connect() as conn:
        texts = list(await conn.scalars(select(notes.c.text).order_by(notes.c.text)))
        keys = list(await conn.scalars(select(MESSAGING.outbox.c.key).order_by("id")))
        inbox = int(await conn.scalar(select(func.count()).select_from(MESSAGING.inbox)) or 0)
    return texts, keys, inbox


async def test_a_batch_commits_once_with_every_event_in_publish_order(database_url: str) -> None:
    engine = await engine_with_tables(database_url)
    database = Database(engine.sync_engine)
    first, again = str(uuid.uuid4()), str(uuid.uuid4())
    async with engine.connect() as watcher, shared_transaction(database, MESSAGING):
        assert await apply(database, first, "a")
        assert await apply(database, again, "b")
        # The same event twice in one batch is applied once: the inbox row is visible.
        assert not await apply(database, first, "a again")
        # Nothing is visible outside the batch before it ends.
        assert await watcher.scalar(select(func.count()).select_from(notes)) == 0
    assert await stored(engine) == (["a", "b"], ["a", "b"], 2)
    await engine.dispose()


async def test_a_failing_batch_leaves_nothing(database_url: str) -> None:
    engine = await engine_with_tables(database_url)
    database = Database(engine.sync_engine)

    async def failing_batch() -> None:
        async with shared_transaction(database, MESSAGING):
            await apply(database, str(uuid.uuid4()), "a")
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await failing_batch()
    assert await stored(engine) == ([], [], 0)
    # Outside a batch a unit of work commits on its own again.
    assert await apply(database, str(uuid.uuid4()), "c")
    assert await stored(engine) == (["c"], ["c"], 1)
    await engine.dispose()


async def test_leaving_without_commit_keeps_the_writes_only_inside_a_batch(
    database_url: str,
) -> None:
    engine = await engine_with_tables(database_url)
    database = Database(engine.sync_engine)
    assert await apply(database, str(uuid.uuid4()), "alone", commit=False)
    async with shared_transaction(database, MESSAGING):
        assert await apply(database, str(uuid.uuid4()), "joined", commit=False)
    # Alone it is rolled back; joined it stays (its event, never handed over, does not).
    assert await stored(engine) == (["joined"], [], 1)
    await engine.dispose()


async def test_claiming_many_answers_the_new_ones_as_they_were_spelt(database_url: str) -> None:
    engine = await engine_with_tables(database_url)
    database = Database(engine.sync_engine)
    seen, new = str(uuid.uuid4()), str(uuid.uuid4()).upper()
    assert await apply(database, seen, "a")
    async with SqlUnitOfWork(database, MESSAGING) as uow:
        assert await uow.claim_events("batchtest", [seen, new, new]) == {new}
        await uow.commit()
    async with SqlUnitOfWork(database, MESSAGING) as uow:
        assert await uow.claim_events("batchtest", [new.lower()]) == set()
    await engine.dispose()


async def test_what_waits_for_the_commit_is_called_after_it_and_never_on_rollback(
    database_url: str,
) -> None:
    engine = await engine_with_tables(database_url)
    database = Database(engine.sync_engine)
    calls: list[str] = []

    async def failing_batch() -> None:
        async with shared_transaction(database, MESSAGING):
            async with SqlUnitOfWork(database, MESSAGING) as uow:
                uow.on_commit(lambda: calls.append("failed batch"))
                await uow.commit()
            raise RuntimeError("handler failed")

    async with shared_transaction(database, MESSAGING):
        async with SqlUnitOfWork(database, MESSAGING) as uow:
            await uow.session.execute(insert(notes).values(text="batched"))
            uow.on_commit(lambda: calls.append("batch"))
            await uow.commit()
        assert calls == []  # joined: called when the batch commits, not before
    assert calls == ["batch"]
    assert (await stored(engine))[0] == ["batched"]
    async with SqlUnitOfWork(database, MESSAGING) as uow:
        await uow.session.execute(insert(notes).values(text="alone"))
        uow.on_commit(lambda: calls.append("alone"))
        await uow.commit()
    assert calls == ["batch", "alone"]
    async with SqlUnitOfWork(database, MESSAGING) as uow:
        uow.on_commit(lambda: calls.append("left without a commit"))
    with pytest.raises(RuntimeError, match="handler failed"):
        await failing_batch()
    assert calls == ["batch", "alone"]
    assert (await stored(engine))[0] == ["alone", "batched"]
    await engine.dispose()


class _NoDeadLetters:
    async def send_and_wait(self, topic: str, **_: Any) -> None:
        raise AssertionError(f"nothing is dead-lettered: {topic}")


def _record(topic: str, offset: int, request: str) -> ConsumerRecord[bytes, bytes]:
    value = events_pb2.Envelope(event_id=str(uuid.uuid4()), request_id=request).SerializeToString()
    key = request.encode()
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key), len(value), [])


async def test_two_topics_taking_a_polls_requests_in_other_orders_wait_on_each_other_once(
    database_url: str,
) -> None:
    engine = await engine_with_tables(database_url)
    database = Database(engine.sync_engine)
    group = EventConsumer(
        bootstrap="127.0.0.1:1",
        group="batchtest",
        producer=_NoDeadLetters(),
        transaction=functools.partial(shared_transaction, database, MESSAGING),
    )
    applied: list[str] = []
    took = {"a": asyncio.Event(), "b": asyncio.Event()}

    def taking(topic: str, other: str) -> EventHandler:
        async def handle(event: events_pb2.Envelope) -> None:
            async with SqlUnitOfWork(database, MESSAGING) as uow:
                await uow.session.lock(f"request:{event.request_id}")
                applied.append(f"{topic}:{event.request_id}")
                took[topic].set()
                # Until the other topic's transaction has taken a request too, as it may: had
                # each taken them as they came, each would now wait for the other's.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(took[other].wait(), 0.2)

        return handle

    (
        Subscriptions()
        .each("a", taking("a", "b"), locks_requests=True)
        .each("b", taking("b", "a"), locks_requests=True)
        .subscribe(group)
    )
    try:
        await group.dispatch(
            [
                _record("a", 0, "r1"),
                _record("a", 1, "r2"),
                _record("b", 0, "r2"),
                _record("b", 1, "r1"),
            ]
        )
    finally:
        await engine.dispose()
    # Each once: no transaction undone in a deadlock, its poll applied again one at a time.
    assert sorted(applied) == ["a:r1", "a:r2", "b:r1", "b:r2"]
