"""The platform's gRPC server limits: concurrent calls and a server-side deadline per call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY
from tawasul_platform import errors
from tawasul_platform.grpc import CONCURRENT_RPC_LIMIT, GrpcServer, ServerLimits
from tawasul_platform.testing import unguarded
from tawasul_platform.tls import open_channel

Behaviour = Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[bytes]]
Call = grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]


@asynccontextmanager
async def serving(behaviour: Behaviour, limits: ServerLimits) -> AsyncIterator[Call]:
    handler = grpc.method_handlers_generic_handler(
        "test.Slow", {"Call": grpc.unary_unary_rpc_method_handler(behaviour)}
    )
    server = GrpcServer(
        "127.0.0.1:0",
        unguarded(),
        lambda s: s.add_generic_rpc_handlers((handler,)),
        limits=limits,
    )
    await server.start()
    try:
        async with open_channel(f"127.0.0.1:{server.port}", None) as channel:
            yield channel.unary_unary("/test.Slow/Call")
    finally:
        await server.stop(1)


async def test_calls_past_the_concurrency_limit_are_resource_exhausted() -> None:
    release = asyncio.Event()
    running = 0

    async def busy(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        nonlocal running
        running += 1
        await release.wait()
        return b"done"

    async with serving(busy, ServerLimits(max_concurrent_rpcs=2)) as call:
        held = [asyncio.ensure_future(call(b"", timeout=10)) for _ in range(2)]
        deadline = asyncio.get_running_loop().time() + 10
        while running < 2:
            assert asyncio.get_running_loop().time() < deadline, "the calls never started"
            await asyncio.sleep(0.01)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"", timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # gRPC's own words and no rich status, unlike a service's ResourceExhausted: the SDK
        # tells the two apart by that (tawasul_sdk.errors.too_busy_to_start).
        assert caught.value.details() == CONCURRENT_RPC_LIMIT
        trailers = dict(caught.value.trailing_metadata() or ())
        assert "grpc-status-details-bin" not in trailers
        release.set()
        assert await asyncio.gather(*held) == [b"done", b"done"]
        # Under the limit again: answered.
        assert await call(b"", timeout=10) == b"done"


def overloaded() -> float:
    return (
        REGISTRY.get_sample_value(
            "tawasul_grpc_server_overloaded_total",
            {"grpc_service": "test.Slow", "grpc_method": "Call"},
        )
        or 0.0
    )


def handled(code: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "tawasul_grpc_server_handled_seconds_count",
            {"grpc_service": "test.Slow", "grpc_method": "Call", "grpc_code": code},
        )
        or 0.0
    )


async def test_a_call_refused_at_the_limit_is_counted_and_never_reaches_the_handler() -> None:
    """An overloaded server's refusals are in its metrics (gRPC's own limit answered before
    any interceptor, and the server looked idle), and cost it no handler work."""
    release = asyncio.Event()
    requests: list[bytes] = []

    async def busy(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        requests.append(request)
        await release.wait()
        return b"done"

    refused_before, answered_before = handled("RESOURCE_EXHAUSTED"), handled("OK")
    overloaded_before = overloaded()
    async with serving(busy, ServerLimits(max_concurrent_rpcs=1)) as call:
        held = asyncio.ensure_future(call(b"held", timeout=10))
        deadline = asyncio.get_running_loop().time() + 10
        while not requests:
            assert asyncio.get_running_loop().time() < deadline, "the call never started"
            await asyncio.sleep(0.01)
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(b"refused", timeout=10)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        release.set()
        assert await held == b"done"
    assert requests == [b"held"]
    assert handled("RESOURCE_EXHAUSTED") - refused_before == 3
    assert handled("OK") - answered_before == 1
    # Told apart from a service's own quotas, which answer RESOURCE_EXHAUSTED too.
    assert overloaded() - overloaded_before == 3


async def test_a_call_its_caller_gave_up_on_frees_its_place() -> None:
    """A call counts until it ends, however it ends: one its caller cancelled must not hold
    its place for good."""
    release = asyncio.Event()

    async def busy(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await release.wait()
        return b"done"

    async with serving(busy, ServerLimits(max_concurrent_rpcs=1)) as call:
        for _ in range(3):
            waiting = asyncio.ensure_future(call(b"", timeout=10))
            await asyncio.sleep(0.1)
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
        release.set()
        assert await call(b"", timeout=10) == b"done"


async def test_a_handler_past_the_server_deadline_is_cancelled_and_deadline_exceeded() -> None:
    cancelled = asyncio.Event()

    async def stuck(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b""

    async with serving(stuck, ServerLimits(handler_seconds=0.2)) as call:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            # The caller would wait far longer: the server's own limit ends the call.
            await call(b"", timeout=30)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert cancelled.is_set()


async def test_a_timeout_of_the_handlers_own_is_still_an_outage() -> None:
    async def waits_on_a_dependency(
        request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        async with asyncio.timeout(0.01):
            await asyncio.Event().wait()
        return b""

    async with serving(waits_on_a_dependency, ServerLimits(handler_seconds=30)) as call:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_services_own_resource_exhausted_carries_its_status() -> None:
    """A handler's ResourceExhausted (a quota of the caller's) comes with the rich status,
    which tells it apart from gRPC's own refusal above."""

    async def refuse(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        raise errors.ResourceExhausted("too many tracking attempts; try again later")

    async with serving(refuse, ServerLimits()) as call:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "grpc-status-details-bin" in dict(caught.value.trailing_metadata() or ())
