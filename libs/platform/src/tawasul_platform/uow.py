"""A unit of work that carries the outbox and the inbox, on the platform's `sql.Session`.

Services subclass it to add repositories; whatever they `publish` is written to the outbox in
the transaction that `commit` commits, so no state change goes without its event and no event
without its change.

Inside `shared_transaction` (a consumer's batch), every unit of work joins that one transaction:
`commit` hands its events to it instead of committing, and leaving without a commit keeps what
was written, since only the batch as a whole commits or rolls back (a handler that must undo
its writes raises).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Select, Table, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import ReturningInsert

from tawasul_platform.events import OutgoingEvent
from tawasul_platform.outbox import write_outbox
from tawasul_platform.sql import Database, Session


@dataclass(frozen=True)
class Messaging:
    service: str
    outbox: Table
    inbox: Table


# The inbox's statements, built once per table: every event applied runs one, and a statement
# built per call is keyed again by SQLAlchemy every time.
@functools.cache
def _claim(inbox: Table) -> ReturningInsert[Any]:
    return pg_insert(inbox).on_conflict_do_nothing().returning(inbox.c.event_id)


@functools.cache
def _claim_all(inbox: Table) -> ReturningInsert[Any]:
    # The ids as one array: one statement, prepared once, whatever the batch's size (a VALUES
    # row per event would be a new statement for each size, and a parameter set per event).
    ids = (
        func.unnest(bindparam("event_ids", type_=ARRAY(inbox.c.event_id.type)))
        .table_valued("event_id")
        .render_derived()
    )
    rows = select(bindparam("consumer", type_=inbox.c.consumer.type), ids.c.event_id)
    return (
        pg_insert(inbox)
        .from_select(["consumer", "event_id"], rows)
        .on_conflict_do_nothing()
        .returning(inbox.c.event_id)
    )


@functools.cache
def _seen(inbox: Table) -> Select[Any]:
    return select(inbox.c.event_id).where(
        (inbox.c.consumer == bindparam("consumer")) & (inbox.c.event_id == bindparam("event_id"))
    )


@dataclass
class _Shared:
    database: Database
    session: Session
    events: list[OutgoingEvent] = field(default_factory=list)
    committed: list[Callable[[], None]] = field(default_factory=list)


_shared: ContextVar[_Shared | None] = ContextVar("tawasul_shared_transaction", default=None)


@asynccontextmanager
async def shared_transaction(
    database: Database, messaging: Messaging, *, locks: Collection[str] = ()
) -> AsyncIterator[None]:
    """One transaction for every unit of work opened inside; committed, with every event they
    published, when the block ends without an error. It takes `locks` first (Session.lock):
    what its units of work will take one by one, taken in one order."""
    session = database.session()
    try:
        await session.lock(*locks)
        shared = _Shared(database, session)
        token = _shared.set(shared)
        try:
            yield
        finally:
            _shared.reset(token)
        await write_outbox(session, messaging.outbox, messaging.service, shared.events)
        await session.commit()
    finally:
        await session.close()
    for callback in shared.committed:
        callback()


class SqlUnitOfWork:
    session: Session

    def __init__(self, database: Database, messaging: Messaging) -> None:
        self._database = database
        self._messaging = messaging
        self._pending: list[OutgoingEvent] = []
        self._committed: list[Callable[[], None]] = []
        self._joined: _Shared | None = None
        self._entered = False

    async def __aenter__(self) -> Self:
        # Entered again while open, the first block's session would be replaced unclosed and
        # its connection lost to the pool until the garbage collector found it.
        if self._entered:
            raise RuntimeError("this unit of work is already open; leave it before entering again")
        self._entered = True
        shared = _shared.get()
        self._joined = shared if shared is not None and shared.database is self._database else None
        self.session = self._joined.session if self._joined else self._database.session()
        self._pending = []
        self._committed = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._entered = False
        if self._joined is not None:
            return
        await self.session.close()

    async def seen_event(self, consumer: str, event_id: str) -> bool:
        found = await self.session.scalar(
            _seen(self._messaging.inbox), {"consumer": consumer, "event_id": uuid.UUID(event_id)}
        )
        return found is not None

    async def claim_event(self, consumer: str, event_id: str) -> bool:
        """Records the event as applied by `consumer`; False when it already was."""
        result = await self.session.execute(
            _claim(self._messaging.inbox), {"consumer": consumer, "event_id": uuid.UUID(event_id)}
        )
        return result.first() is not None

    async def claim_events(self, consumer: str, event_ids: list[str]) -> set[str]:
        """claim_event for many in one statement; answers in the caller's own spelling."""
        given = {uuid.UUID(e): e for e in event_ids}
        result = await self.session.execute(
            _claim_all(self._messaging.inbox), {"consumer": consumer, "event_ids": list(given)}
        )
        return {given[claimed] for claimed in result.scalars()}

    def publish(self, event: OutgoingEvent) -> None:
        self._pending.append(event)

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Calls `callback` once what this unit of work wrote is committed (with a consumer's
        batch, when the batch is): what it wakes then sees the rows. Not called on rollback."""
        self._committed.append(callback)

    async def commit(self) -> None:
        if self._joined is not None:
            self._joined.events.extend(self._pending)
            self._joined.committed.extend(self._committed)
        else:
            m = self._messaging
            await write_outbox(self.session, m.outbox, m.service, self._pending)
            await self.session.commit()
            for callback in self._committed:
                callback()
        self._pending = []
        self._committed = []
