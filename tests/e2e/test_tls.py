"""The real stack serves mutual TLS only: a plaintext channel, or a certificate from another
CA, reaches no service; a certificate from the stack's CA does. The services reach Kafka the
same way, on a listener that admits only certificates of the office."""

from __future__ import annotations

import contextlib
import os
import ssl
from pathlib import Path

import grpc
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tawasul.intake.v1 import intake_pb2
from tawasul_devstack.config import SERVICES
from tawasul_devstack.pki import Authority
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.kafka_tls import client_context, security
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


# -- Kafka: the services' listener is mutual TLS -------------------------------------------


async def _topics(bootstrap: str, context: ssl.SSLContext | None) -> set[str]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, **security(context)
    )
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def _context(tls: TlsConfig, tmp_path: Path) -> ssl.SSLContext:
    files = []
    for name, data in (("cert.pem", tls.cert), ("key.pem", tls.key), ("ca.pem", tls.ca)):
        (tmp_path / name).write_bytes(data)
        files.append(tmp_path / name)
    cert, key, ca = files
    return client_context(cert_file=cert, key_file=key, ca_file=ca)


async def test_kafkas_tls_listener_admits_only_certificates_of_the_office(
    stack: Stack, tmp_path: Path
) -> None:
    cfg = stack.config
    listener = cfg.kafka_services_bootstrap
    assert listener != cfg.kafka_bootstrap
    # A service's certificate: the ACLs show the others none of the topics (test_kafka_acls).
    office = client_context(
        cert_file=cfg.tls_cert_file("routing"),
        key_file=cfg.tls_key_file("routing"),
        ca_file=cfg.tls_ca_file,
    )
    assert topics.REQUEST_SUBMITTED in await _topics(listener, office)

    no_certificate = ssl.create_default_context(cafile=str(cfg.tls_ca_file))
    stranger = Authority.new("not the office's CA").tls("client", server=False)
    another_ca = _context(TlsConfig(stranger.cert, stranger.key, cfg.tls().ca), tmp_path)
    for refused in (None, no_certificate, another_ca):
        with pytest.raises(KafkaError):
            await _topics(listener, refused)


def test_every_service_talks_to_kafka_on_the_tls_listener_alone(stack: Stack) -> None:
    """Each service's connections to the broker, read from the kernel's socket table: on the
    TLS port, none on the plaintext one."""
    cfg = stack.config
    remote_ports = _remote_ports()
    for service in SERVICES:
        pid = stack.pid(service)
        assert pid is not None, service
        ports = [remote_ports[inode] for inode in _socket_inodes(pid) if inode in remote_ports]
        assert cfg.kafka_tls_port in ports, (service, ports)
        assert cfg.kafka_port not in ports, (service, ports)


def _remote_ports() -> dict[str, int]:
    """Established TCP connections on loopback: socket inode → remote port."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "01":  # ESTABLISHED
                    found[fields[9]] = int(fields[2].rsplit(":", 1)[1], 16)
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes
