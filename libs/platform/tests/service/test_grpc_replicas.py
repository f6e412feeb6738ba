"""Calls spread over a service's replicas: the platform's channels go round every address the
target resolves to, and its servers close a caller's connection after a while, the calls in
flight let finish, so that the caller resolves the name again and finds replicas started since.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import grpc
from tawasul_platform.grpc import GrpcServer, ServerLimits
from tawasul_platform.testing import unguarded
from tawasul_platform.tls import open_channel

WHO = "/tawasul.test.Replica/Who"
Context = grpc.aio.ServicerContext[Any, Any]
Call = grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]
UNLIMITED = ServerLimits()


@asynccontextmanager
async def replica(
    host: str, port: int, answered: Counter[str], limits: ServerLimits = UNLIMITED
) -> AsyncIterator[GrpcServer]:
    """A server on `host`:`port` (0: any) counting the calls it answers, by the caller's
    connection (its address and port), and waiting as long as the request's text says."""

    async def who(request: bytes, context: Context) -> bytes:
        answered[f"{host} {context.peer()}"] += 1
        if request:
            await asyncio.sleep(float(request))
        return host.encode()

    handler = grpc.method_handlers_generic_handler(
        "tawasul.test.Replica", {"Who": grpc.unary_unary_rpc_method_handler(who)}
    )
    server = GrpcServer(
        f"{host}:{port}",
        unguarded(),
        lambda s: s.add_generic_rpc_handlers((handler,)),
        limits=limits,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop(1)


async def test_a_channel_goes_round_every_address_of_its_target() -> None:
    answered: Counter[str] = Counter()
    async with AsyncExitStack() as replicas:
        first = await replicas.enter_async_context(replica("127.0.0.1", 0, answered))
        await replicas.enter_async_context(replica("127.0.0.2", first.port, answered))
        target = f"ipv4:127.0.0.1:{first.port},127.0.0.2:{first.port}"
        async with open_channel(target, None) as channel:
            call: Call = channel.unary_unary(WHO)
            # Round robin starts on the first replica that is ready; the second joins once
            # its own connection is.
            await asyncio.wait_for(_both_answer(call), 10)
            answered.clear()
            hosts = Counter([(await call(b"", timeout=5)).decode() for _ in range(100)])
    # gRPC's default (pick_first) would have sent all 100 to one.
    assert hosts == {"127.0.0.1": 50, "127.0.0.2": 50}


async def _both_answer(call: Call) -> None:
    seen: set[bytes] = set()
    while len(seen) < 2:
        seen.add(await call(b"", timeout=5))


async def test_a_server_closes_a_callers_connection_after_its_age_and_lets_calls_finish() -> None:
    answered: Counter[str] = Counter()
    limits = ServerLimits(handler_seconds=5, connection_seconds=0.3)
    async with (
        replica("127.0.0.1", 0, answered, limits) as server,
        open_channel(f"127.0.0.1:{server.port}", None) as channel,
    ):
        call: Call = channel.unary_unary(WHO)
        # Longer than the connection's age: it runs on through the server's goodbye.
        slow = asyncio.ensure_future(call(b"1.0", timeout=5))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(answered) < 3:
            assert loop.time() < deadline, f"the caller never connected anew: {answered}"
            assert await call(b"", timeout=5) == b"127.0.0.1"
        assert await slow == b"127.0.0.1"
    # Each new connection of the caller comes from a port of its own.
    assert all(peer.startswith("127.0.0.1 ipv4:127.0.0.1:") for peer in answered)
