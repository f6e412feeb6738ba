"""Database plumbing: one engine (its pool) a process; the outbox, inbox and staff records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
    any_,
    bindparam,
    create_engine,
    false,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.sql.dml import Insert


def make_engine(url: str, *, pool_size: int = 10, pool_timeout: float = 2.0) -> Engine:
    """At most 2 × pool_size connections (the pool and as many overflow ones): see
    docs/database-connections.md for how the services' pools share max_connections.

    A request that finds every connection busy for `pool_timeout` seconds fails with
    sqlalchemy's TimeoutError, an outage (UNAVAILABLE), rather than queueing past its caller's
    deadline.

    No ping before each checkout (a round trip per transaction): a session the server ended
    fails its first statement as an outage, and that failure renews the whole pool.

    SQLAlchemy's engine itself, on the asyncpg dialect (its pool awaits asyncpg inside the
    greenlet `sql.Database` enters it through): sqlalchemy.ext.asyncio's AsyncEngine adds nothing
    the services use, and importing it imports the ORM, 7.7 MiB of every service's memory.
    """
    # Statement parameters are ID numbers, mobiles and descriptions: errors never quote them.
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        hide_parameters=True,
    )


def among(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """`column = ANY(:name)`: the values, bound as one array, in place of an IN list. A list
    expanded to a placeholder per value is a new statement for every length, parsed, planned
    and prepared again; this one is the same statement however many values a batch brings."""
    return column == any_(bindparam(name, type_=ARRAY(column.type)))


def any_of(column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN (:v1, …, :vn)` for values known when the statement is built: a placeholder
    each, fixed then, where `in_` of a list expands at every execution (which `sql.Plans`, a
    compilation kept per statement, refuses). Not an array (`among`): to the planner `IN` of
    one value is `column = :v1`, which an index ordered on the column serves in order; `= ANY`
    of an array is not (ClaimNext sorted every queued item of its department that way)."""
    if not values:
        return false()
    return column.in_([bindparam(None, value, type_=column.type) for value in values])


def insert_arrays(table: Table, columns: Sequence[str]) -> Insert:
    """INSERT of as many rows as the arrays hold, in their order: each column's values bound
    as one array (`<column>_values`, see `arrays`). One statement, compiled and prepared once,
    whatever the number of rows, and one parameter set: executemany of a row each costs
    SQLAlchemy and asyncpg their per-row work, and a VALUES row each is a new statement per
    size."""
    bound = [bindparam(f"{c}_values", type_=ARRAY(table.c[c].type)) for c in columns]
    rows = func.unnest(*bound).table_valued(*columns, with_ordinality="n").render_derived()
    ordered = select(*(rows.c[c] for c in columns)).order_by(rows.c.n)
    return insert(table).from_select(list(columns), ordered)


def arrays(**columns: list[Any]) -> dict[str, list[Any]]:
    """The parameters of an `insert_arrays` statement: each column's values, in row order."""
    return {f"{name}_values": values for name, values in columns.items()}


def outbox_table(metadata: MetaData) -> Table:
    """Events waiting for the relay; a row is written in the same transaction as its change."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("topic", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("sent_at", DateTime(timezone=True)),
        Index("outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),
    )


def staff_records_table(metadata: MetaData) -> Table:
    """Review's latest record of each reviewer, for a service that checks staff access
    itself (tawasul_platform.staff)."""
    return Table(
        "staff_records",
        metadata,
        Column("reviewer_id", String(50), primary_key=True),
        Column("departments", ARRAY(Text), nullable=False),
        # NULL: the record decides every department.
        Column("scope", ARRAY(Text)),
        Column("version", BigInteger, nullable=False),
    )


def inbox_table(metadata: MetaData) -> Table:
    """Events a consumer has applied, recorded in the same transaction as their effect."""
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(100), nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id"),
    )
