"""`tawasul-health`, the probe of containers and pods, against a real mutual-TLS server: it
answers 0 only when the server says SERVING, and gets through only with the pod's certificate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from tawasul_devstack.pki import Authority
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.healthcheck import check, probe_target
from tawasul_platform.testing import unguarded
from tawasul_platform.tls import ENV_CA, ENV_CERT, ENV_KEY, TlsConfig


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
