"""The platform's gRPC server with mutual TLS, started for real on a free port: only a client
holding a certificate from the same CA gets through, and the server sees who it is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tawasul_devstack.pki import Authority
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.testing import unguarded
from tawasul_platform.tls import TlsConfig, open_channel, peer_name

WHO = "/tawasul.test.Peer/Who"


async def _who(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    name = peer_name(context)
    return b"<none>" if name is None else name.encode()


def _register(server: grpc.aio.Server) -> None:
    # A method that answers with peer_name, as a service-only RPC would check it.
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "tawasul.test.Peer", {"Who": grpc.unary_unary_rpc_method_handler(_who)}
            ),
        )
    )


@dataclass(frozen=True)
class Served:
    target: str
    ca: Authority


async def _serve(tls: TlsConfig | None) -> GrpcServer:
    server = GrpcServer("127.0.0.1:0", unguarded(), _register, tls=tls)
    await server.start()
    await server.serving(True)
    return server


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    ca = Authority.new("test office CA")
    server = await _serve(ca.tls("intake", server=True))
    yield Served(f"127.0.0.1:{server.port}", ca)
    await server.stop(1)


async def _who_is(channel: grpc.aio.Channel) -> str:
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(WHO)
    return (await call(b"", timeout=5)).decode()


async def _refused(channel: grpc.aio.Channel) -> None:
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _who_is(channel)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_with_a_certificate_of_the_ca_gets_through_and_is_named(
    served: Served,
) -> None:
    async with open_channel(served.target, served.ca.tls("notify", server=True)) as channel:
        assert await _who_is(channel) == "notify"
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_client_only_certificate_is_named_too(served: Served) -> None:
    async with open_channel(served.target, served.ca.tls("review-cli", server=False)) as channel:
        assert await _who_is(channel) == "review-cli"


async def test_plaintext_is_refused(served: Served) -> None:
    await _refused(open_channel(served.target, None))


async def test_a_client_without_a_certificate_is_refused(served: Served) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=served.ca.cert_pem)
    await _refused(grpc.aio.secure_channel(served.target, credentials))


async def test_a_certificate_from_another_ca_is_refused(served: Served) -> None:
    stranger = Authority.new("another CA").tls("intake", server=True)
    # It trusts the server, but the server does not trust it.
    await _refused(
        open_channel(served.target, TlsConfig(stranger.cert, stranger.key, served.ca.cert_pem))
    )


async def test_a_server_of_another_ca_is_refused_by_the_client(served: Served) -> None:
    # The client's own certificate is good; the server it reaches is not the office's.
    impostor = Authority.new("impostor CA")
    server = await _serve(impostor.tls("intake", server=True))
    try:
        mine = served.ca.tls("notify", server=True)
        await _refused(open_channel(f"127.0.0.1:{server.port}", mine))
    finally:
        await server.stop(1)


async def test_peer_name_is_none_on_plaintext() -> None:
    server = await _serve(None)
    try:
        async with open_channel(f"127.0.0.1:{server.port}", None) as channel:
            assert await _who_is(channel) == "<none>"
    finally:
        await server.stop(1)
