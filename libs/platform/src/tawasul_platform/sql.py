"""SQLAlchemy Core statements run on asyncpg, in a transaction of the engine's pool.

Services build their statements with SQLAlchemy Core and a unit of work runs them through a
`Session`. SQLAlchemy compiles each statement once (to PostgreSQL's `$n` placeholders) and
asyncpg prepares it once per connection; an execution then costs asyncpg's own work and a
dictionary look-up. Through SQLAlchemy's AsyncSession the same transaction cost the client about
five times the CPU (its greenlet hop, result and parameter machinery per statement): see
docs/performance.md, "The 13:00 run". Connections still come from the engine's one pool, a
greenlet hop at checkout and one at checkin.

A statement built once (module level, the house style on hot paths) is found by identity; one
built per call by SQLAlchemy's cache key, as SQLAlchemy itself caches its compilations.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from asyncpg import Connection
from asyncpg.exceptions import InternalClientError
from asyncpg.transaction import Transaction
from sqlalchemy import Text, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.util import greenlet_spawn


class Row(Protocol):
    """A result row: its columns by name (`row.id`), by position, or unpacked."""

    def __getattr__(self, name: str) -> Any: ...
    def __getitem__(self, index: int) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


class Rows:
    """What a statement returned, read the ways AsyncSession's results are read here."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[Row]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows)

    def all(self) -> list[Row]:
        return self._rows

    def first(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def one(self) -> Row:
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._rows[0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]


Params = Mapping[str, Any]
# A list of parameter sets runs the statement once for each, in one round trip.
ManyParams = Params | Sequence[Params] | None
_Processor = Callable[[Any], Any]


@dataclass(eq=False, slots=True)
class _Plan:
    sql: str
    compiled: SQLCompiler
    names: tuple[str, ...]
    processors: tuple[_Processor | None, ...]
    row: Callable[[Sequence[Any]], Row] | None = None

    def arguments(self, params: Params | None, extracted: Sequence[Any] | None) -> list[Any]:
        values = self.compiled.construct_params(params, extracted_parameters=extracted)
        return [
            value if process is None else process(value)
            for value, process in zip(
                (values[name] for name in self.names), self.processors, strict=True
            )
        ]

    def rows(self, records: list[Any]) -> list[Row]:
        if not records:
            return []
        make = self.row
        if make is None:
            # Named as the server names its columns: SQLAlchemy's labels, as its rows are.
            make = self.row = namedtuple("Row", records[0].keys(), rename=True)._make  # type: ignore[attr-defined]
        return [make(record) for record in records]


class Plans:
    """Compiled statements of one dialect: one per statement while it lives (by identity, the
    hot path), and the `keyed` most recently used by cache key (statements built per call).

    A statement's entry lives no longer than the statement: its plan is compiled from a copy,
    since a compilation holds what it compiled, and a value holding its weak key keeps it for
    ever (every per-call statement was kept, without bound)."""

    def __init__(self, dialect: Dialect, *, keyed: int = 500) -> None:
        self._dialect = dialect
        self._built: weakref.WeakKeyDictionary[ClauseElement, dict[tuple[str, ...], _Plan]]
        self._built = weakref.WeakKeyDictionary()
        # Least recently used first (a dict keeps insertion order).
        self._keyed: dict[Any, _Plan] = {}
        self._keyed_size = keyed

    def find(
        self, statement: ClauseElement, params: Params | None
    ) -> tuple[_Plan, Sequence[Any] | None]:
        # An INSERT or UPDATE compiles with the columns its parameters name, as in SQLAlchemy.
        columns = tuple(sorted(params)) if params and isinstance(statement, UpdateBase) else ()
        by_columns = self._built.get(statement)
        if by_columns is not None and (plan := by_columns.get(columns)) is not None:
            return plan, None
        key = statement._generate_cache_key()
        if key is None:
            return self._compile(statement, columns, None), None
        keyed = (key.key, columns)
        plan = self._keyed.pop(keyed, None)
        if plan is not None:
            self._keyed[keyed] = plan  # the most recently used now
            # Compiled from another statement of the same shape: the values are this one's.
            return plan, key.bindparams
        # A copy (Generative's, which keeps no link to its original, as a clone would) shares
        # the statement's parts, its values among them.
        generate = getattr(statement, "_generate", None)
        copy = generate() if generate is not None else None
        plan = self._compile(copy if copy is not None else statement, columns, key)
        if len(self._keyed) >= self._keyed_size:
            del self._keyed[next(iter(self._keyed))]
        self._keyed[keyed] = plan
        if copy is not None:
            self._built.setdefault(statement, {})[columns] = plan
        return plan, None

    def _compile(self, statement: ClauseElement, columns: tuple[str, ...], key: Any) -> _Plan:
        dialect = self._dialect
        compiled = statement.compile(
            dialect=dialect, cache_key=key, column_keys=list(columns) if columns else None
        )
        assert isinstance(compiled, SQLCompiler)
        if compiled.post_compile_params or compiled.literal_execute_params:
            # `IN (...)` of a list renders one placeholder per value at each execution.
            raise ValueError(f"an expanding IN in {compiled.string!r}: bind an array (db.among)")
        names = tuple(compiled.positiontup or ())
        processors = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in names
        )
        return _Plan(compiled.string, compiled, names, processors)


class Database:
    """The engine's pool and the compiled statements: what a unit of work opens sessions on."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.plans = Plans(engine.dialect)

    def session(self) -> Session:
        return Session(self)

    async def checkout(self) -> PoolProxiedConnection:
        """A connection of the pool; its asyncpg connection is `driver_connection`. A connection
        the server refuses (full, starting, shutting down) is SQLAlchemy's DBAPIError, as the
        engine's own connect() raises it: the pool hands the driver's error on unwrapped."""
        dialect = self.engine.dialect
        refused = dialect.loaded_dbapi.Error
        try:
            return await greenlet_spawn(self.engine.raw_connection)
        except refused as exc:
            raise DBAPIError.instance(
                None,
                None,
                exc,
                refused,
                hide_parameters=True,
                connection_invalidated=dialect.is_disconnect(exc, None, None),
                dialect=dialect,
            ) from exc

    async def checkin(self, connection: PoolProxiedConnection, *, invalidate: bool = False) -> None:
        """Back to the pool, or closed and replaced there (`invalidate`)."""
        await greenlet_spawn(connection.invalidate if invalidate else connection.close)

    @asynccontextmanager
    async def connection(self, *, pooled: bool = True) -> AsyncIterator[Connection]:
        """An asyncpg connection of the pool, in no transaction (statements commit as they run),
        given back at the end, or closed (not `pooled`)."""
        connection = await self.checkout()
        driver: Connection = connection.driver_connection
        try:
            yield driver
        except BaseException as exc:
            if _lost(driver, exc):
                # As a session's statement does: this connection, then every older one, replaced.
                await greenlet_spawn(self.engine.pool._invalidate, connection)
            else:
                await self.checkin(connection, invalidate=not pooled)
            raise
        await self.checkin(connection, invalidate=not pooled)

    async def dispose(self) -> None:
        """Closes the pool's connections (at shutdown)."""
        await greenlet_spawn(self.engine.dispose)

    async def fetch(
        self, driver: Connection, statement: ClauseElement, params: ManyParams = None
    ) -> Rows:
        """Runs `statement` on a connection of the caller's own (the outbox relay's)."""
        if params is None or isinstance(params, Mapping):
            plan, extracted = self.plans.find(statement, params)
            records = await driver.fetch(plan.sql, *plan.arguments(params, extracted))
        else:
            plan, extracted = self.plans.find(statement, params[0])
            sets = [plan.arguments(p, extracted) for p in params]
            records = await driver.fetchmany(plan.sql, sets)
        return Rows(plan.rows(records))


_keys = (
    func.unnest(bindparam("keys", type_=ARRAY(Text)))
    .table_valued("key", with_ordinality="n")
    .render_derived()
)
# Taken in the array's order, a function scan's.
_LOCK_KEYS = select(func.pg_advisory_xact_lock(func.hashtextextended(_keys.c.key, 0)))


class Session:
    """One transaction at a time on a connection of the pool, begun at the first statement (as
    AsyncSession does) and given back at commit or rollback.

    A connection the server ended fails its statement (an outage for `faults.is_transient`) and
    marks the whole pool stale, as SQLAlchemy does on a disconnect: the server most likely ended
    the others too, and they are replaced at their next checkout rather than each failing a call.
    """

    __slots__ = ("_connection", "_database", "_driver", "_transaction")

    def __init__(self, database: Database) -> None:
        self._database = database
        self._connection: PoolProxiedConnection | None = None
        self._driver: Connection | None = None
        self._transaction: Transaction | None = None

    async def execute(self, statement: ClauseElement, params: ManyParams = None) -> Rows:
        driver = await self._begun()
        try:
            return await self._database.fetch(driver, statement, params)
        except BaseException as exc:
            await self._if_lost(exc)
            raise

    async def scalar(self, statement: ClauseElement, params: Params | None = None) -> Any:
        row = (await self.execute(statement, params)).first()
        return None if row is None else row[0]

    async def scalars(self, statement: ClauseElement, params: Params | None = None) -> list[Any]:
        return (await self.execute(statement, params)).scalars()

    async def lock(self, *keys: str) -> None:
        """Holds each key ("request:<id>", "queue:<name>") until the transaction ends, against
        every transaction of every replica locking it: what a row lock cannot do for a row
        another transaction is still inserting. One statement, the keys in sorted order, so
        that two transactions locking overlapping keys never wait on each other in turn."""
        if keys:
            await self.execute(_LOCK_KEYS, {"keys": sorted(set(keys))})

    async def commit(self) -> None:
        await self._end(commit=True)

    async def close(self) -> None:
        """Rolls back what was not committed; the session may begin again after."""
        await self._end(commit=False)

    async def _begun(self) -> Connection:
        if self._driver is not None:
            return self._driver
        self._connection = await self._database.checkout()
        try:
            driver: Connection = self._connection.driver_connection
            # Known before BEGIN is sent, so that a BEGIN cancelled midway is never pooled.
            self._driver = driver
            transaction = driver.transaction()
            await transaction.start()
        except BaseException as exc:
            await self._if_lost(exc)
            # A BEGIN that failed or was cancelled midway: asyncpg still counts its transaction
            # as the connection's own (the next one would be a SAVEPOINT), so never pooled.
            await self._release(reusable=False)
            raise
        self._transaction = transaction
        return driver

    async def _end(self, *, commit: bool) -> None:
        transaction = self._transaction
        if transaction is None:
            return
        try:
            await (transaction.commit() if commit else transaction.rollback())
        except BaseException as exc:
            await self._if_lost(exc)
            raise
        finally:
            await self._release()

    async def _release(self, *, reusable: bool = True) -> None:
        connection, driver = self._connection, self._driver
        self._connection = self._driver = self._transaction = None
        if connection is None:
            return
        # A transaction that never ended (BEGIN, COMMIT or ROLLBACK cancelled): never pooled.
        ended = driver is None or driver.is_closed() or not driver.is_in_transaction()
        await self._database.checkin(connection, invalidate=not (ended and reusable))

    async def _if_lost(self, error: BaseException) -> None:
        connection = self._connection
        if connection is None:
            return
        driver: Connection | None = connection.driver_connection
        if driver is not None and not _lost(driver, error):
            return
        # What SQLAlchemy does on a disconnect: this connection, then every older one, replaced.
        self._connection = None
        await greenlet_spawn(self._database.engine.pool._invalidate, connection)


def _lost(driver: Connection, error: BaseException) -> bool:
    """The server ended the session: a session it ended while the connection idled in the pool
    can fail its next statement before asyncpg has seen the socket close (the protocol is still
    in the error state)."""
    return driver.is_closed() or isinstance(error, InternalClientError)
