"""Certificates renewed under a running process (cert-manager rewrites the Secret, the kubelet
the mounted files): its gRPC server and its Kafka context show the new one from their next
handshake, its channels from their next call, without a restart; a renewal half written keeps
the one in use; the expiry gauge follows what the process shows."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import uvloop
from cryptography import x509
from prometheus_client import REGISTRY
from tawasul_devstack.pki import Authority
from tawasul_platform import tls as tls_module
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.kafka_tls import RenewingContext, client_context
from tawasul_platform.testing import unguarded
from tawasul_platform.tls import Renewals, TlsConfig, TlsFiles, open_channel, peer_name

WHO = "/tawasul.test.Peer/Who"
EXPIRY = "tawasul_tls_certificate_expiry_timestamp_seconds"


async def _who(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return (peer_name(context) or "<none>").encode()


def _register(server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "tawasul.test.Peer", {"Who": grpc.unary_unary_rpc_method_handler(_who)}
            ),
        )
    )


@dataclass(frozen=True)
class Mounted:
    """A process's TLS files, as a Secret mounts them, with the CA bundle trusting both CAs
    (a CA rotation: the new CA is trusted before certificates are issued from it)."""

    directory: Path
    old: Authority
    new: Authority

    @property
    def cert(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def key(self) -> Path:
        return self.directory / "tls.key"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    def write(self, path: Path, data: bytes) -> None:
        # Whole, as the kubelet swaps them: no reader sees a file half written.
        part = path.with_suffix(".part")
        part.write_bytes(data)
        os.replace(part, path)

    def issue(self, ca: Authority, *, days: int) -> tuple[bytes, bytes]:
        cert, key = ca.issue("intake", server=True, days=days)
        self.write(self.cert, cert)
        self.write(self.key, key)
        return cert, key

    def load(self) -> TlsConfig:
        return TlsConfig.from_files(cert_file=self.cert, key_file=self.key, ca_file=self.ca)


def _expires(cert: bytes) -> float:
    return x509.load_pem_x509_certificate(cert).not_valid_after_utc.timestamp()


def _serial(cert: bytes) -> int:
    return x509.load_pem_x509_certificate(cert).serial_number


@pytest.fixture
def mounted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Mounted:
    # Every handshake looks at the files: the tests need not wait out the interval.
    monkeypatch.setattr(tls_module, "RENEWAL_CHECK_SECONDS", 0.0)
    files = Mounted(tmp_path, Authority.new("old office CA"), Authority.new("new office CA"))
    files.write(files.ca, files.old.cert_pem + files.new.cert_pem)
    files.issue(files.old, days=300)
    return files


@pytest.fixture
async def target(mounted: Mounted) -> AsyncIterator[str]:
    server = GrpcServer("127.0.0.1:0", unguarded(), _register, tls=mounted.load())
    await server.start()
    await server.serving(True)
    yield f"127.0.0.1:{server.port}"
    await server.stop(1)


async def _who_is(target: str, tls: TlsConfig) -> str:
    # A channel of its own each time: a new connection, so a new handshake.
    async with open_channel(target, tls) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(WHO)
        return (await call(b"", timeout=5)).decode()


async def _refused(target: str, tls: TlsConfig) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _who_is(target, tls)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_server_shows_a_renewed_certificate_without_a_restart(
    mounted: Mounted, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Clients trusting only one CA: each gets through only to a server certificate of it.
    of_old = TlsConfig(*mounted.old.issue("notify", server=True), mounted.old.cert_pem)
    of_new = TlsConfig(*mounted.new.issue("notify", server=True), mounted.new.cert_pem)
    assert await _who_is(target, of_old) == "notify"
    await _refused(target, of_new)

    # Half written: the new certificate is there, its key not yet. The old one stays.
    new_cert, new_key = mounted.new.issue("intake", server=True, days=90)
    mounted.write(mounted.cert, new_cert)
    with caplog.at_level(logging.ERROR, logger="tawasul_platform.tls"):
        assert await _who_is(target, of_old) == "notify"
    assert f"{mounted.key} is not the key of the certificate in {mounted.cert}" in caplog.text
    await _refused(target, of_new)

    mounted.write(mounted.key, new_key)
    assert await _who_is(target, of_new) == "notify"
    await _refused(target, of_old)
    assert REGISTRY.get_sample_value(EXPIRY, {"which": "server"}) == _expires(new_cert)


async def test_the_expiry_gauge_shows_the_certificates_a_process_uses(mounted: Mounted) -> None:
    tls = mounted.load()
    assert REGISTRY.get_sample_value(EXPIRY, {"which": "server"}) == _expires(tls.cert)
    earliest = min(_expires(mounted.old.cert_pem), _expires(mounted.new.cert_pem))
    assert REGISTRY.get_sample_value(EXPIRY, {"which": "ca"}) == earliest
    # A channel shows the certificate it was opened with until a call finds the files renewed.
    async with open_channel("127.0.0.1:1", tls):
        pass
    mounted.issue(mounted.old, days=30)
    mounted.load()
    assert REGISTRY.get_sample_value(EXPIRY, {"which": "channel"}) == _expires(tls.cert)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_kafkas_context_stops_trusting_a_ca_dropped_from_the_bundle(
    mounted: Mounted, tmp_path: Path, loop: str
) -> None:
    broker = Mounted(tmp_path / "broker", mounted.old, mounted.new)
    broker.directory.mkdir()
    broker.issue(mounted.old, days=300)
    context = client_context(cert_file=mounted.cert, key_file=mounted.key, ca_file=mounted.ca)

    async def rotation() -> None:
        assert await _shown_to_a_broker(context, broker) == _serial(mounted.cert.read_bytes())
        # The CA rotation done: this process's certificate from the new CA, the old one dropped.
        renewed, _ = mounted.issue(mounted.new, days=90)
        mounted.write(mounted.ca, mounted.new.cert_pem)
        with pytest.raises(ssl.SSLCertVerificationError):
            await _shown_to_a_broker(context, broker)
        broker.issue(mounted.new, days=90)
        assert await _shown_to_a_broker(context, broker) == _serial(renewed)

    (uvloop.run if loop == "uvloop" else asyncio.run)(rotation())


def test_kafkas_context_keeps_its_certificate_when_the_files_change_while_loaded(
    mounted: Mounted, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = Mounted(tmp_path / "broker", mounted.old, mounted.new)
    broker.directory.mkdir()
    broker.issue(mounted.old, days=300)
    context = client_context(cert_file=mounted.cert, key_file=mounted.key, ca_file=mounted.ca)
    assert isinstance(context, RenewingContext)
    assert context.renewals is not None
    first = _serial(mounted.cert.read_bytes())
    renewed, renewed_key = mounted.new.issue("intake", server=True, days=90)
    read = context.renewals.renewed

    def read_then_rewritten() -> TlsConfig | None:
        # The files Renewals checked, then the key rewritten before the context loads them.
        config = read()
        if config is not None:
            mounted.write(mounted.key, mounted.old.issue("intake", server=True)[1])
        return config

    context.renewals.renewed = read_then_rewritten  # type: ignore[method-assign]

    async def renewals() -> None:
        mounted.write(mounted.cert, renewed)
        mounted.write(mounted.key, renewed_key)
        assert await _shown_to_a_broker(context, broker) == first
        assert await _shown_to_a_broker(context, broker) == first

    with caplog.at_level(logging.ERROR, logger="tawasul_platform.kafka_tls"):
        asyncio.run(renewals())
    assert "renewed TLS files not loaded for Kafka" in caplog.text


def _rewrite_in_place(path: Path, data: bytes, mtime_ns: int) -> None:
    """`data` over the file, its inode and time kept: what a coarse clock shows of two writes."""
    with path.open("r+b") as file:
        file.write(data)
        file.truncate()
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_files_read_half_written_are_read_again_at_the_next_look(
    mounted: Mounted, caplog: pytest.LogCaptureFixture
) -> None:
    renewals = Renewals(TlsFiles(mounted.cert, mounted.key, mounted.ca))
    renewed_cert, renewed_key = mounted.new.issue("intake", server=True, days=90)
    mounted.write(mounted.cert, renewed_cert)
    written = mounted.key.stat().st_mtime_ns
    # The key caught half written, then whole, with nothing `stamp` sees telling them apart.
    _rewrite_in_place(mounted.key, b"-" * len(renewed_key), written)
    with caplog.at_level(logging.ERROR, logger="tawasul_platform.tls"):
        assert renewals.renewed() is None
        assert renewals.renewed() is None
    assert caplog.text.count("holds no PEM private key") == 1  # logged once, looked at again
    _rewrite_in_place(mounted.key, renewed_key, written)
    renewed = renewals.renewed()
    assert renewed is not None
    assert (renewed.cert, renewed.key) == (renewed_cert, renewed_key)
    assert renewals.renewed() is None


class CallerSerial:
    """A server method answering the serial of the certificate its caller showed; a call of
    b"wait" answers only once `release` is set."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def serial(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        if request == b"wait":
            self.waiting.set()
            await self.release.wait()
        (pem,) = context.auth_context()["x509_pem_cert"]
        return str(_serial(pem)).encode()

    def register(self, server: grpc.aio.Server) -> None:
        handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(
            self.serial
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("tawasul.test.Peer", {"Serial": handler}),)
        )


async def test_a_channel_shows_a_renewed_client_certificate_from_its_next_call(
    mounted: Mounted, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = Mounted(tmp_path / "client", mounted.old, mounted.new)
    client.directory.mkdir()
    client.write(client.ca, mounted.ca.read_bytes())
    first, _ = client.issue(mounted.old, days=300)
    peer = CallerSerial()
    server = GrpcServer("127.0.0.1:0", unguarded(), peer.register, tls=mounted.load())
    await server.start()
    channel = open_channel(f"127.0.0.1:{server.port}", client.load())
    try:
        # Taken once, as a stub takes its methods when built.
        serial: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            "/tawasul.test.Peer/Serial"
        )
        assert int(await serial(b"", timeout=5)) == _serial(first)
        in_flight = asyncio.ensure_future(_answer(serial(b"wait", timeout=10)))
        await asyncio.wait_for(peer.waiting.wait(), 5)

        # Half written: the new certificate is there, its key not yet. The old one stays.
        renewed, renewed_key = mounted.new.issue("review", server=True, days=90)
        client.write(client.cert, renewed)
        with caplog.at_level(logging.ERROR, logger="tawasul_platform.tls"):
            assert int(await serial(b"", timeout=5)) == _serial(first)
        assert "is not the key of the certificate" in caplog.text

        client.write(client.key, renewed_key)
        assert int(await serial(b"", timeout=5)) == _serial(renewed)
        assert REGISTRY.get_sample_value(EXPIRY, {"which": "channel"}) == _expires(renewed)
        # The call made before the renewal finishes on the channel it started on.
        peer.release.set()
        assert int(await asyncio.wait_for(in_flight, 5)) == _serial(first)
        assert int(await serial(b"", timeout=5)) == _serial(renewed)
    finally:
        await channel.close()
        await server.stop(1)


async def _answer(call: grpc.aio.UnaryUnaryCall[bytes, bytes]) -> bytes:
    return await call


async def _shown_to_a_broker(context: ssl.SSLContext, broker: Mounted) -> int:
    """The serial of the certificate a connection on `context` shows to a TLS server that
    demands one, as Kafka's TLS listener does."""
    shown: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        shown.set_result(int(peer["serialNumber"], 16))
        writer.close()

    listener = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    listener.load_cert_chain(broker.cert, broker.key)
    listener.load_verify_locations(cadata=(broker.old.cert_pem + broker.new.cert_pem).decode())
    listener.verify_mode = ssl.CERT_REQUIRED
    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=listener)
    try:
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        serial = await asyncio.wait_for(shown, 5)
        writer.close()
        return serial
    finally:
        server.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_kafkas_context_shows_a_renewed_certificate_from_its_next_connection(
    mounted: Mounted, tmp_path: Path, caplog: pytest.LogCaptureFixture, loop: str
) -> None:
    broker = Mounted(tmp_path / "broker", mounted.old, mounted.new)
    broker.directory.mkdir()
    broker.issue(mounted.old, days=300)
    context = client_context(cert_file=mounted.cert, key_file=mounted.key, ca_file=mounted.ca)

    async def renewals() -> None:
        first = _serial(mounted.cert.read_bytes())
        assert await _shown_to_a_broker(context, broker) == first
        renewed_cert, renewed_key = mounted.new.issue("intake", server=True, days=90)
        mounted.write(mounted.cert, renewed_cert)
        # Half written: the key is still the old certificate's. The old one is shown.
        assert await _shown_to_a_broker(context, broker) == first
        mounted.write(mounted.key, renewed_key)
        assert await _shown_to_a_broker(context, broker) == _serial(renewed_cert)

    with caplog.at_level(logging.ERROR, logger="tawasul_platform.tls"):
        # The services run on uvloop, whose TLS transport is its own.
        (uvloop.run if loop == "uvloop" else asyncio.run)(renewals())
    assert "is not the key of the certificate" in caplog.text
