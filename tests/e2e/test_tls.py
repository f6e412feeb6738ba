"""The real stack serves mutual TLS only: a plaintext channel, or a certificate from another
CA, reaches no service; a certificate from the stack's CA does."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tawasul.intake.v1 import intake_pb2
from tawasul_devstack.pki import Authority
from tawasul_devstack.stack import Stack
from tawasul_platform.tls import TlsConfig, open_channel

INTAKE = intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name


async def _health(channel: grpc.aio.Channel) -> health_pb2.HealthCheckResponse:
    async with channel:
        return await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=INTAKE), timeout=5
        )


async def test_intake_refuses_plaintext_and_answers_mutual_tls(stack: Stack) -> None:
    address = stack.config.grpc_address("intake")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _health(open_channel(address, None))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

    answer = await _health(open_channel(address, stack.config.tls()))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_intake_refuses_a_certificate_from_another_ca(stack: Stack) -> None:
    stranger = Authority.new("not the office's CA").tls("client", server=False)
    tls = TlsConfig(cert=stranger.cert, key=stranger.key, ca=stack.config.tls().ca)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _health(open_channel(stack.config.grpc_address("intake"), tls))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
