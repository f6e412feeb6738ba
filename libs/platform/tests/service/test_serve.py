"""`serve` with a real gRPC server: it waits NOT_SERVING for its dependencies, then serves."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tawasul_platform import service
from tawasul_platform.errors import Unavailable
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.service import Runtime, serve
from tawasul_platform.testing import SERVICE_ENVIRONMENT, unguarded
from tawasul_platform.tls import open_channel
from tawasul_platform.vitals import Vitals


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "STARTUP_BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(service, "MAX_STARTUP_BACKOFF_SECONDS", 0.05)


async def health(port: int) -> str | None:
    """The health status's name (SERVING, NOT_SERVING), or None when there is no answer."""
    async with open_channel(f"127.0.0.1:{port}", None) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.aio.AioRpcError:
            return None
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"no {what} in {within} s"
        await asyncio.sleep(0.02)


async def test_a_service_waits_not_serving_for_a_dependency_then_serves() -> None:
    server = GrpcServer("127.0.0.1:0", unguarded(), lambda _: None)
    up = asyncio.Event()
    attempts = 0

    async def connect_broker() -> None:
        nonlocal attempts
        attempts += 1
        if not up.is_set():
            raise Unavailable("the broker is down")

    looping = asyncio.Event()

    async def relay() -> None:
        looping.set()
        await asyncio.Event().wait()

    runtime = Runtime(grpc=server, startup=[connect_broker], loops=[relay])
    vitals = Vitals()
    serving = asyncio.create_task(serve(runtime, grace=1, budget=10, vitals=vitals))

    async def retried() -> bool:
        return attempts >= 3

    await until(retried, "retries")
    # Alive and answering health, but not taking traffic; its loops wait for the startup.
    assert await health(server.port) == "NOT_SERVING"
    assert (vitals.alive(), vitals.ready()) == ((True, "alive"), (False, "not serving"))
    assert not serving.done()
    assert not looping.is_set()
    up.set()

    async def is_serving() -> bool:
        return await health(server.port) == "SERVING"

    await until(is_serving, "SERVING")
    assert vitals.ready() == (True, "serving")
    assert looping.is_set()
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(serving, 10) == 0


async def test_a_sigterm_while_waiting_for_a_dependency_stops_the_service() -> None:
    server = GrpcServer("127.0.0.1:0", unguarded(), lambda _: None)
    closed = asyncio.Event()

    async def connect_broker() -> None:
        raise Unavailable("the broker is down")

    async def close() -> None:
        closed.set()

    runtime = Runtime(grpc=server, startup=[connect_broker], shutdown=[close])
    serving = asyncio.create_task(serve(runtime, grace=1, budget=10))

    async def answering() -> bool:
        return await health(server.port) is not None

    await until(answering, "health")
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(serving, 10) == 0
    assert closed.is_set()


async def test_a_startup_error_that_is_no_outage_stops_the_service() -> None:
    server = GrpcServer("127.0.0.1:0", unguarded(), lambda _: None)

    async def misconfigured() -> None:
        raise ValueError("no such bucket policy")

    runtime = Runtime(grpc=server, startup=[misconfigured])
    assert await asyncio.wait_for(serve(runtime, grace=1, budget=10), 10) == 1


async def test_sigterm_lets_an_rpc_in_flight_finish() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        started.set()
        await release.wait()
        return b"finished"

    handler = grpc.method_handlers_generic_handler(
        "test.Slow", {"Call": grpc.unary_unary_rpc_method_handler(slow)}
    )
    server = GrpcServer(
        "127.0.0.1:0", unguarded(), lambda s: s.add_generic_rpc_handlers((handler,))
    )
    vitals = Vitals()
    serving = asyncio.create_task(serve(Runtime(grpc=server), grace=5, budget=10, vitals=vitals))

    async def is_serving() -> bool:
        return await health(server.port) == "SERVING"

    await until(is_serving, "SERVING")
    async with open_channel(f"127.0.0.1:{server.port}", None) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            "/test.Slow/Call"
        )
        answer = asyncio.ensure_future(call(b"", timeout=10))
        await asyncio.wait_for(started.wait(), 10)
        os.kill(os.getpid(), signal.SIGTERM)

        async def draining() -> bool:
            return await health(server.port) != "SERVING"

        # The call is still held when the shutdown is seen, so it really was in flight.
        await until(draining, "shutdown")
        assert not answer.done()
        # Out of the Service's endpoints for the kubelet's probe too, while it drains.
        assert vitals.ready() == (False, "not serving")
        release.set()
        assert await answer == b"finished"
    assert await asyncio.wait_for(serving, 10) == 0


# A service whose shutdown hook hangs, blocking its event loop: the budget still ends it.
HANGS_ON_SHUTDOWN = """
import asyncio, sys, time
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.testing import unguarded
from tawasul_platform.service import Runtime, serve

async def hang() -> None:
    time.sleep(600)

async def main() -> int:
    server = GrpcServer("127.0.0.1:0", unguarded(), lambda _: None)
    print(server.port, flush=True)
    return await serve(Runtime(grpc=server, shutdown=[hang]), grace=0.5, budget=1.0)

sys.exit(asyncio.run(main()))
"""


async def test_a_shutdown_that_hangs_still_ends_within_the_budget() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HANGS_ON_SHUTDOWN, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        port = int(await asyncio.wait_for(process.stdout.readline(), 30))

        async def is_serving() -> bool:
            return await health(port) == "SERVING"

        await until(is_serving, "SERVING", within=30)
        process.send_signal(signal.SIGTERM)
        # 1 s of budget; the rest is slack for a loaded machine, far below the hook's 600 s.
        assert await asyncio.wait_for(process.wait(), 20) == 1
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# `tawasul-x serve` whose gRPC or metrics address another process already listens on.
ADDRESS_TAKEN = """
import sys
from pathlib import Path
from tawasul_platform import service
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.settings import ServiceSettings
from tawasul_platform.testing import unguarded

async def build(settings: ServiceSettings) -> service.Runtime:
    return service.Runtime(grpc=GrpcServer(settings.grpc_address, unguarded(), lambda _: None))

sys.argv = ["tawasul-x", "serve"]
service.run(name="x", settings=ServiceSettings, build=build, migrations=Path())
"""


@pytest.mark.parametrize("setting", ["TAWASUL_GRPC_ADDRESS", "TAWASUL_METRICS_ADDRESS"])
async def test_an_address_in_use_stops_the_process_with_one_line_naming_it(setting: str) -> None:
    taken = GrpcServer("127.0.0.1:0", unguarded(), lambda _: None)
    await taken.start()
    address = f"127.0.0.1:{taken.port}"
    environment = {**os.environ, **SERVICE_ENVIRONMENT, setting: address}
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            ADDRESS_TAKEN,
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await taken.stop(0)
    assert process.returncode == 1
    said = [line for line in err.decode().splitlines() if line.startswith("tawasul-x")]
    assert said == [
        f"tawasul-x: cannot start: {setting}: cannot listen on {address}"
        + (
            " (in use, or not an address of this host)"
            if setting == "TAWASUL_GRPC_ADDRESS"
            else ": Address already in use"
        )
    ]
    assert "Traceback" not in err.decode()
