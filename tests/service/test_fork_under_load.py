"""A test process forks while its gRPC calls are in flight (it starts PostgreSQL again under
load, as the data dir's owner): the child must live to exec, which gRPC's fork handlers kept
about a quarter of them from doing (the root conftest turns them off)."""

from __future__ import annotations

import asyncio
import subprocess

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.testing import unguarded

FORKS = 100


def _forked() -> int:
    # preexec_fn makes subprocess fork() and not vfork(), as `user=` does.
    return subprocess.run(["true"], preexec_fn=lambda: None, check=False).returncode


async def test_children_forked_while_calls_are_in_flight_live_to_exec() -> None:
    server = GrpcServer("127.0.0.1:0", unguarded(), lambda _: None)
    await server.start()
    await server.serving(True)
    stopping = asyncio.Event()
    calls = 0

    async def calling(stub: health_pb2_grpc.HealthStub) -> None:
        nonlocal calls
        while not stopping.is_set():
            await stub.Check(health_pb2.HealthCheckRequest())
            calls += 1

    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            callers = [asyncio.create_task(calling(stub)) for _ in range(16)]
            codes = [await asyncio.to_thread(_forked) for _ in range(FORKS)]
            stopping.set()
            await asyncio.gather(*callers)
    finally:
        await server.stop(0)
    assert calls > FORKS, "the forks were not made while calls were in flight"
    assert codes == [0] * FORKS
