"""The gateway's channels to intake and docs with its own certificate, renewed under it as the
services' are: the calls after cert-manager rewrote its files show the new certificate, and
its expiry gauge follows, without a restart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from prometheus_client import REGISTRY
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul_devstack.pki import Authority
from tawasul_gateway import bootstrap
from tawasul_gateway.settings import GatewaySettings
from tawasul_platform import tls as tls_module
from tawasul_platform.tls import TlsConfig, server_credentials

EXPIRY = "tawasul_tls_certificate_expiry_timestamp_seconds"


def _write(path: Path, data: bytes) -> None:
    # Whole, as the kubelet swaps a Secret's files.
    part = path.with_suffix(".part")
    part.write_bytes(data)
    os.replace(part, path)


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


class CallerSerials(intake_pb2_grpc.IntakeServiceServicer):
    """Intake's GetCatalog, noting the serial of the certificate each caller showed."""

    def __init__(self) -> None:
        self.serials: list[int] = []

    async def GetCatalog(
        self, request: intake_pb2.GetCatalogRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> intake_pb2.GetCatalogResponse:
        (pem,) = context.auth_context()["x509_pem_cert"]
        self.serials.append(_cert(pem).serial_number)
        return intake_pb2.GetCatalogResponse(version=1, locale=request.locale)


async def test_the_gateway_shows_a_renewed_certificate_from_its_next_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls_module, "RENEWAL_CHECK_SECONDS", 0.0)
    ca = Authority.new("office CA")
    cert, key, ca_file = tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.crt"
    first, first_key = ca.issue("gateway", server=False, days=300)
    for path, data in ((cert, first), (key, first_key), (ca_file, ca.cert_pem)):
        _write(path, data)
    intake = CallerSerials()  # type: ignore[abstract]  # GetCatalog alone is called
    server = grpc.aio.server()
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(intake, server)
    serving = TlsConfig(*ca.issue("localhost", server=True), ca.cert_pem)
    address = f"localhost:{server.add_secure_port('localhost:0', server_credentials(serving))}"
    await server.start()
    settings = GatewaySettings(
        intake_address=address,
        docs_address=address,
        tls_cert_file=cert,
        tls_key_file=key,
        tls_ca_file=ca_file,
    )
    client = bootstrap.client_factory(settings)()
    try:
        await client.get_catalog("ar", refresh=True)
        renewed, renewed_key = ca.issue("gateway", server=False, days=90)
        _write(cert, renewed)
        _write(key, renewed_key)
        await client.get_catalog("ar", refresh=True)
    finally:
        await client.close()
        await server.stop(None)
    assert intake.serials == [_cert(first).serial_number, _cert(renewed).serial_number]
    expires = _cert(renewed).not_valid_after_utc.timestamp()
    assert REGISTRY.get_sample_value(EXPIRY, {"which": "channel"}) == expires
