"""`tawasul-health`, the probe of containers and pods, against a real mutual-TLS server: it
answers 0 only when the server says SERVING (with --alive, when it answers at all), and gets
through only with the pod's certificate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from tawasul_devstack.pki import Authority
from tawasul_platform.grpc import GrpcServer, ServerLimits
from tawasul_platform.healthcheck import check, probe_target
from tawasul_platform.testing import unguarded
from tawasul_platform.tls import ENV_CA, ENV_CERT, ENV_KEY, TlsConfig, open_channel


def _nothing(server: grpc.aio.Server) -> None:
    return None


@dataclass(frozen=True)
class Served:
    server: GrpcServer
    target: str
    env: dict[str, str]


def _files(tls: TlsConfig, directory: Path) -> dict[str, str]:
    directory.mkdir()
    paths = {ENV_CERT: "tls.crt", ENV_KEY: "tls.key", ENV_CA: "ca.crt"}
    for env, name in paths.items():
        data = {ENV_CERT: tls.cert, ENV_KEY: tls.key, ENV_CA: tls.ca}[env]
        (directory / name).write_bytes(data)
    return {env: str(directory / name) for env, name in paths.items()}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    ca = Authority.new("test office CA")
    server = GrpcServer("127.0.0.1:0", unguarded(), _nothing, tls=ca.tls("intake", server=True))
    await server.start()
    # The pod's own certificate, as the Secret mounts it.
    env = _files(ca.tls("intake", server=True), tmp_path / "tls")
    yield Served(server, f"127.0.0.1:{server.port}", env)
    await server.stop(1)


async def test_serving_only_once_the_server_says_so(served: Served) -> None:
    assert await asyncio.to_thread(check, served.target, env=served.env) == 1
    await served.server.serving(True)
    assert await asyncio.to_thread(check, served.target, env=served.env) == 0
    await served.server.serving(False)
    assert await asyncio.to_thread(check, served.target, env=served.env) == 1


async def test_alive_passes_on_not_serving_but_not_on_no_answer(served: Served) -> None:
    # Started, waiting for its dependencies: alive (no restart), not ready.
    assert await asyncio.to_thread(check, served.target, env=served.env, alive=True) == 0
    assert await asyncio.to_thread(check, "127.0.0.1:1", env=served.env, alive=True) == 1


async def test_a_server_at_its_call_limit_is_alive_but_not_ready(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """gRPC answers the probe RESOURCE_EXHAUSTED past grpc_max_concurrent_rpcs: the process
    is merely busy, and a liveness restart would drop every call it holds."""
    release, both_held = asyncio.Event(), asyncio.Event()
    running = 0

    async def busy(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        nonlocal running
        running += 1
        if running == 2:
            both_held.set()
        await release.wait()
        return b"done"

    handler = grpc.method_handlers_generic_handler(
        "test.Slow", {"Call": grpc.unary_unary_rpc_method_handler(busy)}
    )
    ca = Authority.new("test office CA")
    server = GrpcServer(
        "127.0.0.1:0",
        unguarded(),
        lambda s: s.add_generic_rpc_handlers((handler,)),
        tls=ca.tls("intake", server=True),
        limits=ServerLimits(max_concurrent_rpcs=2),
    )
    await server.start()
    await server.serving(True)
    target = f"127.0.0.1:{server.port}"
    env = _files(ca.tls("intake", server=True), tmp_path / "tls")
    try:
        async with open_channel(target, ca.tls("client", server=False)) as channel:
            call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]
            call = channel.unary_unary("/test.Slow/Call")
            held = [asyncio.ensure_future(call(b"", timeout=10)) for _ in range(2)]
            await asyncio.wait_for(both_held.wait(), 10)
            assert await asyncio.to_thread(check, target, env=env, alive=True) == 0
            assert await asyncio.to_thread(check, target, env=env) == 1
            assert capsys.readouterr().err.count(f"{target}: RESOURCE_EXHAUSTED") == 2
            release.set()
            assert await asyncio.gather(*held) == [b"done", b"done"]
    finally:
        await server.stop(1)


async def test_alive_passes_on_a_service_health_does_not_know(served: Served) -> None:
    # NOT_FOUND is health's own answer: the server is up.
    unknown = "tawasul.nowhere.v1.Nowhere"
    await served.server.serving(True)
    ready = await asyncio.to_thread(check, served.target, env=served.env, service=unknown)
    alive = await asyncio.to_thread(
        check, served.target, env=served.env, service=unknown, alive=True
    )
    assert (ready, alive) == (1, 0)


async def test_without_a_certificate_the_probe_fails(served: Served) -> None:
    await served.server.serving(True)
    assert await asyncio.to_thread(check, served.target, env={}) == 1


async def test_a_certificate_of_another_ca_fails(served: Served, tmp_path: Path) -> None:
    await served.server.serving(True)
    stranger = _files(Authority.new("another CA").tls("intake", server=True), tmp_path / "x")
    assert await asyncio.to_thread(check, served.target, env=stranger, alive=True) == 1


async def test_the_certificate_must_name_the_server(served: Served) -> None:
    await served.server.serving(True)
    good = await asyncio.to_thread(check, served.target, env=served.env, server_name="intake")
    bad = await asyncio.to_thread(check, served.target, env=served.env, server_name="docs")
    assert (good, bad) == (0, 1)


def test_a_wildcard_address_is_probed_on_loopback() -> None:
    assert probe_target("0.0.0.0:50051") == "127.0.0.1:50051"
    assert probe_target("[::]:50051") == "127.0.0.1:50051"
    assert probe_target("intake:50051") == "intake:50051"
    with pytest.raises(ValueError, match="host:port"):
        probe_target("50051")
