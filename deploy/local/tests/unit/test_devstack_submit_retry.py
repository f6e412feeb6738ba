"""Clients.submit, as the end-to-end tests file requests: an intake not listening yet (being
restarted) is waited for within SUBMIT_WITHIN, and every attempt carries the same key."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import grpc
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul_devstack import pki
from tawasul_devstack.journey import SUBMIT_WITHIN, Clients
from tawasul_devstack.procs import free_port
from tawasul_devstack.stack import SERVICES, StackConfig
from tawasul_platform.identity import Role
from tawasul_platform.tls import server_credentials

# Past gRPC's first reconnection attempt (1 s after a refused connection, ±20 %).
COMES_BACK_AFTER = 1.5


class Filing(intake_pb2_grpc.IntakeServiceServicer):
    def __init__(self) -> None:
        self.keys: list[str] = []

    async def SubmitRequest(
        self, request: intake_pb2.SubmitRequestRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> intake_pb2.SubmitRequestResponse:
        self.keys.append(request.idempotency_key)
        return intake_pb2.SubmitRequestResponse(
            request=intake_pb2.Request(request_number="TW100000001")
        )


async def test_a_submission_waits_for_an_intake_coming_back(tmp_path: Path) -> None:
    # The stack's intake port on a port free now: nothing listens there yet.
    port_base = free_port() - 101 - SERVICES.index("intake")
    config = dataclasses.replace(StackConfig.from_env(), state_dir=tmp_path, port_base=port_base)
    filing = Filing()  # type: ignore[abstract]  # SubmitRequest alone is called
    server = grpc.aio.server()
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(filing, server)
    credentials = server_credentials(config.tls("intake"))

    async def comes_back() -> None:
        await asyncio.sleep(COMES_BACK_AFTER)
        # Adding the port listens: connections before it are refused, as while intake is down.
        server.add_secure_port(config.grpc_address("intake"), credentials)
        await server.start()

    async with Clients(config, peer=pki.CLIENT) as clients:
        started = time.monotonic()
        restart = asyncio.create_task(comes_back())
        try:
            filed = await clients.submit(
                clients.token("1900000008", Role.CITIZEN),
                key="key-1",
                sub_service="reports.general-inquiry",
                description="Submitted while intake restarts",
                documents=[],
                mobile="0551234567",
            )
        finally:
            await restart
            await server.stop(None)
    assert filed.request_number == "TW100000001"
    assert filing.keys == ["key-1"]
    assert COMES_BACK_AFTER < time.monotonic() - started < SUBMIT_WITHIN
