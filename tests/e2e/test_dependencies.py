"""A service started while a dependency is down waits for it NOT_SERVING, then serves."""

from __future__ import annotations

import asyncio
import signal
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tawasul_devstack.journey import Clients, eventually, new_citizen, sample_pdf
from tawasul_devstack.stack import Stack
from tawasul_platform.identity import Role
from tawasul_platform.tls import open_channel

pytestmark = pytest.mark.chaos

DEPARTMENT = "reports"
# What serve() logs each time a startup hook meets an outage.
RETRYING = b"a dependency is unavailable, retrying"


async def health(stack: Stack, service: str) -> str | None:
    """The health status's name (SERVING, NOT_SERVING), or None when there is no answer."""
    async with open_channel(stack.config.grpc_address(service), stack.config.tls()) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.aio.AioRpcError:
            return None
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def start_without(stack: Stack, service: str, dependency: str) -> None:
    """Stops `dependency`, restarts `service` and sees it alive, retrying, NOT_SERVING."""
    await asyncio.to_thread(stack.stop_service, dependency, signal.SIGKILL)
    await asyncio.to_thread(stack.stop_service, service)
    log = stack.log_path(service)
    start = log.stat().st_size
    await asyncio.to_thread(stack.start_service, service, wait=False)

    async def retrying() -> bool | None:
        with log.open("rb") as f:
            f.seek(start)
            return True if f.read().count(RETRYING) >= 2 else None

    await eventually(retrying, within=60, what=f"{service} retrying its startup")
    assert await health(stack, service) == "NOT_SERVING"
    assert stack.pid(service) is not None, f"{service} exited instead of waiting"


async def serving_again(stack: Stack, service: str, dependency: str) -> None:
    await asyncio.to_thread(stack.start_service, dependency)

    async def serving() -> bool | None:
        return True if await health(stack, service) == "SERVING" else None

    await eventually(serving, within=90, what=f"{service} SERVING once {dependency} is back")


async def restored(stack: Stack, service: str, dependency: str) -> None:
    """Leaves the stack whole for the next tests, whatever happened."""
    await asyncio.to_thread(stack.start_service, dependency)
    await asyncio.to_thread(stack.start_service, service)


async def test_intake_started_while_kafka_is_down_serves_once_it_is_back(
    stack: Stack, clients: Clients
) -> None:
    try:
        await start_without(stack, "intake", "kafka")
        await serving_again(stack, "intake", "kafka")
    finally:
        await restored(stack, "intake", "kafka")
    request = await clients.submit(
        clients.token(new_citizen(), Role.CITIZEN),
        key=str(uuid.uuid4()),
        sub_service="reports.general-inquiry",
        description="Submitted to an intake that started while the broker was down",
        documents=[],
        mobile="0551234567",
    )
    # Its relay and consumers run too: the request travels on to review's queue.
    reviewer = clients.token("E3101", Role.REVIEWER, frozenset({DEPARTMENT}))

    async def queued() -> bool | None:
        items = await clients.queue(reviewer, DEPARTMENT)
        return True if request.request_id in {i.request_id for i in items} else None

    await eventually(queued, within=90, what="the request in review's queue")


async def test_docs_started_while_object_storage_is_down_serves_once_it_is_back(
    stack: Stack, clients: Clients
) -> None:
    try:
        await start_without(stack, "docs", "minio")
        await serving_again(stack, "docs", "minio")
    finally:
        await restored(stack, "docs", "minio")
    pdf = sample_pdf("after the outage")
    stored = await clients.upload(clients.token(new_citizen(), Role.CITIZEN), "scan.pdf", pdf)
    assert stored.size_bytes == len(pdf)
