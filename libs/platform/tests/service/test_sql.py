"""Statements run through the platform's asyncpg session, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from asyncpg.exceptions import UndefinedTableError, UniqueViolationError
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine
from tawasul_devstack.journey import eventually
from tawasul_platform.db import among, any_of, arrays, insert_arrays
from tawasul_platform.faults import is_transient
from tawasul_platform.sql import Database
from tawasul_platform.testing import RecordedStatements, async_engine

metadata = MetaData()
people = Table(
    "people",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("mobile", Text, unique=True),
    Column("age", Integer),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)
_BY_NAME = select(people.c.name, people.c.age).where(people.c.name == bindparam("name"))
_ADD = insert(people).returning(people.c.id, people.c.details)
_ADD_ALL = insert_arrays(people, ("id", "name", "details"))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = async_engine(database_url, pool_size=3)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def add(database: Database, name: str, age: int | None = None, **more: object) -> None:
    session = database.session()
    try:
        await session.execute(_ADD, {"id": uuid.uuid4(), "name": name, "age": age, **more})
        await session.commit()
    finally:
        await session.close()


async def test_rows_read_by_name_position_and_unpacking(engine: AsyncEngine) -> None:
    database = Database(engine.sync_engine)
    await add(database, "Sara", 31)
    session = database.session()
    try:
        row = (await session.execute(_BY_NAME, {"name": "Sara"})).one()
        assert (row.name, row.age, row[0], tuple(row)) == ("Sara", 31, "Sara", ("Sara", 31))
        assert (await session.execute(_BY_NAME, {"name": "nobody"})).first() is None
        assert await session.scalar(_BY_NAME, {"name": "Sara"}) == "Sara"
    finally:
        await session.close()


async def test_statements_built_per_call_get_their_own_values(engine: AsyncEngine) -> None:
    """Built per call, one shape, different values inline: one compilation serves them all,
    and each runs with the values it was built with, not those of the one compiled."""
    database = Database(engine.sync_engine)
    for name, age in (("Sara", 31), ("Noura", 45), ("Fahad", 28)):
        await add(database, name, age)
    session = database.session()
    try:
        older = [
            await session.scalars(select(people.c.name).where(people.c.age > age).order_by("name"))
            for age in (30, 40, 50)
        ]
        named = [
            await session.scalar(select(people.c.age).where(people.c.name == n))
            for n in ("Noura", "Fahad")
        ]
    finally:
        await session.close()
    assert older == [["Noura", "Sara"], ["Noura"], []]
    assert named == [45, 28]


async def test_statements_recorded_through_a_session_run_there(engine: AsyncEngine) -> None:
    """A recorder given a session answers with what each statement returned there, so that a
    repository whose next statement depends on the last runs as it would; each is kept with
    its values inline, as EXPLAIN takes it."""
    database = Database(engine.sync_engine)
    await add(database, "Sara", 31)
    session = database.session()
    recorded = RecordedStatements(through=session)
    try:
        name = await recorded.scalar(_BY_NAME, {"name": "Sara"})
        older = (await recorded.execute(select(people.c.name).where(people.c.age > 30))).all()
    finally:
        await session.close()
    assert (name, [tuple(r) for r in older]) == ("Sara", [("Sara",)])
    assert recorded.sql() == [
        "SELECT people.name, people.age \nFROM people \nWHERE people.name = 'Sara'",
        "SELECT people.name \nFROM people \nWHERE people.age > 30",
    ]
    assert await RecordedStatements().scalar(_BY_NAME, {"name": "Sara"}) is None


async def test_an_insert_takes_the_columns_its_parameters_name(engine: AsyncEngine) -> None:
    database = Database(engine.sync_engine)
    await add(database, "Sara")
    await add(database, "Noura", 45, details={"locale": "ar", "tags": ["وافد"]})
    session = database.session()
    try:
        rows = await session.execute(
            select(people.c.name, people.c.age, people.c.details).order_by(people.c.name)
        )
        assert [tuple(r) for r in rows] == [
            ("Noura", 45, {"locale": "ar", "tags": ["وافد"]}),
            ("Sara", None, {}),
        ]
    finally:
        await session.close()


async def test_arrays_and_many_parameter_sets(engine: AsyncEngine) -> None:
    database = Database(engine.sync_engine)
    ids = [uuid.uuid4() for _ in range(3)]
    session = database.session()
    try:
        await session.execute(
            _ADD_ALL,
            arrays(id=ids, name=["a", "b", "c"], details=[{"n": 1}, {"n": 2}, {"n": 3}]),
        )
        # A parameter set each, one round trip: every RETURNING row comes back.
        changed = await session.execute(
            update(people)
            .where(people.c.id == bindparam("b_id"))
            .values(age=bindparam("b_age"))
            .returning(people.c.name, people.c.age),
            [{"b_id": ids[0], "b_age": 10}, {"b_id": ids[2], "b_age": 30}],
        )
        assert sorted(tuple(r) for r in changed) == [("a", 10), ("c", 30)]
        picked = select(people.c.details).where(among(people.c.id, "ids")).order_by("name")
        assert await session.scalars(picked, {"ids": ids[1:]}) == [{"n": 2}, {"n": 3}]
        names = select(people.c.name).where(any_of(people.c.age, [10, 30])).order_by("name")
        assert await session.scalars(names) == ["a", "c"]
        nobody = select(people.c.name).where(any_of(people.c.age, []))
        assert await session.scalars(nobody) == []
        await session.commit()
    finally:
        await session.close()


async def test_an_expanding_in_is_refused_with_what_to_use(engine: AsyncEngine) -> None:
    session = Database(engine.sync_engine).session()
    try:
        with pytest.raises(ValueError, match=r"expanding IN .* bind an array"):
            await session.execute(select(people.c.name).where(people.c.age.in_([1, 2])))
    finally:
        await session.close()


async def test_rollback_keeps_nothing_and_a_session_begins_again(engine: AsyncEngine) -> None:
    database = Database(engine.sync_engine)
    session = database.session()
    count = select(func.count()).select_from(people)
    try:
        await session.execute(_ADD, {"id": uuid.uuid4(), "name": "gone"})
        await session.close()
        assert await session.scalar(count) == 0
        await session.execute(_ADD, {"id": uuid.uuid4(), "name": "kept"})
        await session.commit()
        assert await session.scalars(select(people.c.name)) == ["kept"]
    finally:
        await session.close()


async def test_a_unique_violation_names_its_constraint(engine: AsyncEngine) -> None:
    database = Database(engine.sync_engine)
    await add(database, "Sara", mobile="0551234567")
    with pytest.raises(UniqueViolationError) as caught:
        await add(database, "Sara again", mobile="0551234567")
    assert caught.value.constraint_name == "people_mobile_key"
    # The failed transaction was rolled back and its connection pooled again, usable.
    await add(database, "Noura", mobile="0559876543")


async def test_a_failed_statement_does_not_quote_its_parameters(engine: AsyncEngine) -> None:
    session = Database(engine.sync_engine).session()
    try:
        with pytest.raises(UndefinedTableError) as caught:
            await session.execute(
                text("SELECT mobile FROM no_such_table WHERE mobile = :mobile"),
                {"mobile": "0551234567"},
            )
    finally:
        await session.close()
    assert "no_such_table" in str(caught.value)
    assert "0551234567" not in str(caught.value)


async def three_pooled(database: Database) -> None:
    """Three connections in the pool, idle: each was held at once."""

    async def hold() -> None:
        session = database.session()
        try:
            await session.execute(text("SELECT pg_sleep(0.2)"))
            await session.commit()
        finally:
            await session.close()

    await asyncio.gather(hold(), hold(), hold())


async def end_sessions(engine: AsyncEngine, admin_url: str) -> int:
    admin = async_engine(admin_url, pool_size=1)
    try:
        async with admin.begin() as conn:
            return int(
                await conn.scalar(
                    text(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                        " FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                    )
                )
                or 0
            )
    finally:
        await admin.dispose()


async def test_after_the_server_ends_every_session_one_statement_at_most_fails(
    engine: AsyncEngine, database_url: str
) -> None:
    """The first statement on an ended session fails as an outage (UNAVAILABLE to a caller)
    and renews the whole pool, as SQLAlchemy does: the statements after it are answered."""
    database = Database(engine.sync_engine)
    await three_pooled(database)
    assert await end_sessions(engine, database_url) == 3
    outcomes = []
    for _ in range(4):
        session = database.session()
        try:
            await session.execute(_BY_NAME, {"name": "x"})
            await session.commit()
            outcomes.append("answered")
        except Exception as exc:
            outcomes.append("outage" if is_transient(exc) else repr(exc))
        finally:
            await session.close()
    assert outcomes in (["answered"] * 4, ["outage"] + ["answered"] * 3)


async def test_a_pooled_connection_handed_out_bare_renews_the_pool_as_a_session_does(
    engine: AsyncEngine, database_url: str
) -> None:
    """`Database.connection` (the relay's, the gauges') on an ended session: one outage at
    most, then answers; a dead connection handed back would fail every look after it."""
    database = Database(engine.sync_engine)
    await three_pooled(database)
    assert await end_sessions(engine, database_url) == 3
    outcomes = []
    for _ in range(4):
        try:
            async with database.connection() as driver:
                await database.fetch(driver, _BY_NAME, {"name": "x"})
            outcomes.append("answered")
        except Exception as exc:
            outcomes.append("outage" if is_transient(exc) else repr(exc))
    assert outcomes in (["answered"] * 4, ["outage"] + ["answered"] * 3)


async def sleeping(engine: AsyncEngine) -> None:
    """Until the server runs the session's pg_sleep."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        # A transaction per look: pg_stat_activity is a snapshot taken once per transaction.
        async with engine.connect() as conn:
            found = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE query = 'SELECT pg_sleep(5)' AND state = 'active'"
                )
            )
        if found:
            return
        assert asyncio.get_running_loop().time() < deadline, "the statement never ran"
        await asyncio.sleep(0.02)


async def test_a_session_cancelled_mid_statement_keeps_nothing(engine: AsyncEngine) -> None:
    """A caller's deadline cancels the statement; closing the session still ends its
    transaction, and the connection serves the next sessions."""
    database = Database(engine.sync_engine)
    session = database.session()
    await session.execute(_ADD, {"id": uuid.uuid4(), "name": "never committed"})
    running = asyncio.create_task(session.execute(text("SELECT pg_sleep(5)")))
    await sleeping(engine)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await session.close()
    for _ in range(3):
        await add(database, "committed")
    check = database.session()
    try:
        assert await check.scalars(select(people.c.name)) == ["committed"] * 3
    finally:
        await check.close()


async def test_a_session_cancelled_mid_begin_does_not_spoil_the_next_commit(
    engine: AsyncEngine,
) -> None:
    """A BEGIN cancelled before its answer leaves asyncpg counting it as the connection's
    transaction: pooled again, the next session's BEGIN would be a SAVEPOINT inside it, its
    commit a RELEASE, and its rows gone when that connection closed."""
    database = Database(engine.sync_engine)
    await add(database, "warm")  # an idle pooled connection: the checkout below does not wait
    cancelled = database.session()
    running = asyncio.create_task(cancelled.execute(select(1)))
    await asyncio.sleep(0)  # BEGIN sent, its answer not yet read
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await cancelled.close()
    await add(database, "committed")
    await engine.dispose()  # every connection closed: only what was committed stays
    check = database.session()
    try:
        assert sorted(await check.scalars(select(people.c.name))) == ["committed", "warm"]
    finally:
        await check.close()


async def _both_waiting(engine: AsyncEngine) -> bool | None:
    async with engine.connect() as conn:
        waits = await conn.scalar(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        )
    return True if waits == 2 else None


async def test_a_key_is_held_until_the_transaction_ends_and_keys_never_deadlock(
    engine: AsyncEngine,
) -> None:
    database = Database(engine.sync_engine)
    holder, first, second = database.session(), database.session(), database.session()
    try:
        await holder.lock("request:x")
        # In opposite orders: taken as given, each would hold one and wait for the other's.
        locking = {
            asyncio.create_task(first.lock("request:x", "request:y")): first,
            asyncio.create_task(second.lock("request:y", "request:x")): second,
        }
        await eventually(lambda: _both_waiting(engine), within=10, what="both to wait")
        assert not any(task.done() for task in locking)
        await holder.commit()
        done, waiting = await asyncio.wait(locking, timeout=10, return_when="FIRST_COMPLETED")
        (took,) = done
        took.result()
        await locking[took].commit()
        (last,) = waiting
        await asyncio.wait_for(last, 10)
        await locking[last].commit()
        await asyncio.wait_for(holder.lock("request:x", "request:y"), 10)  # free again
    finally:
        for session in (holder, first, second):
            await session.close()
