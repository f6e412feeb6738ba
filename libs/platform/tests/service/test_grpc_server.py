"""The platform's gRPC server, started for real on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2
from tawasul_platform.grpc import GrpcServer, field_violations
from tawasul_platform.testing import unguarded
from tawasul_platform.tls import open_channel

CHECK = "/grpc.health.v1.Health/Check"


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = GrpcServer("127.0.0.1:0", unguarded(), lambda _: None)
    await server.start()
    await server.serving(True)
    async with open_channel(f"127.0.0.1:{server.port}", None) as channel:
        yield channel
    await server.stop(1)


async def test_bytes_that_are_not_the_message_are_invalid_argument(
    channel: grpc.aio.Channel,
) -> None:
    # No serializer: the bytes go as they are.
    raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(CHECK)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw(b"\xff\xff\xff not a protobuf message", timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == {
        "request": "the request's bytes are not a valid message of this method"
    }


async def test_a_valid_message_is_still_answered(channel: grpc.aio.Channel) -> None:
    check = channel.unary_unary(
        CHECK,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    answer = await check(health_pb2.HealthCheckRequest(), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
