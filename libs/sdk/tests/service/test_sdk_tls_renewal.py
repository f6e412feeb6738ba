"""A client certificate renewed under a running channel adapter (cert-manager rewrites the
Secret, the kubelet the mounted files): its client shows the new one from its next call,
without a restart, while a call already under way finishes on the connection it started on;
a renewal half written keeps the certificate in use."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul_devstack.pki import Authority
from tawasul_sdk import RenewingChannel, TawasulClient, Tls
from tawasul_sdk import channel as channel_module
from tawasul_sdk.channel import TlsFiles

Context = grpc.aio.ServicerContext[Any, Any]


def _caller(context: Context) -> str:
    """The common name in the client certificate the caller showed."""
    (name,) = context.auth_context()["x509_common_name"]
    return name.decode()


class Intake(intake_pb2_grpc.IntakeServiceServicer):
    def __init__(self) -> None:
        self.callers: list[str] = []

    async def GetCatalog(
        self, request: intake_pb2.GetCatalogRequest, context: Context
    ) -> intake_pb2.GetCatalogResponse:
        self.callers.append(_caller(context))
        return intake_pb2.GetCatalogResponse(version=1, locale=request.locale)


class Docs(docs_pb2_grpc.DocsServiceServicer):
    def __init__(self) -> None:
        self.callers: list[str] = []
        self.uploading = asyncio.Event()

    async def GetDocument(
        self, request: docs_pb2.GetDocumentRequest, context: Context
    ) -> docs_pb2.GetDocumentResponse:
        self.callers.append(_caller(context))
        return docs_pb2.GetDocumentResponse(
            document=docs_pb2.Document(document_id=request.document_id)
        )

    async def UploadDocument(
        self, request_iterator: AsyncIterator[docs_pb2.UploadDocumentRequest], context: Context
    ) -> docs_pb2.UploadDocumentResponse:
        self.callers.append(_caller(context))
        self.uploading.set()
        size = sum([len(part.chunk) async for part in request_iterator])
        return docs_pb2.UploadDocumentResponse(
            document=docs_pb2.Document(document_id="d1", size_bytes=size)
        )


def _write(path: Path, data: bytes) -> None:
    # Whole, as the kubelet swaps them: no reader sees a file half written.
    part = path.with_suffix(".part")
    part.write_bytes(data)
    os.replace(part, path)


async def test_a_renewed_client_certificate_is_shown_from_the_next_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Every call looks at the files: the test need not wait out the interval.
    monkeypatch.setattr(channel_module, "RENEWAL_CHECK_SECONDS", 0.0)
    office = Authority.new("office CA")
    cert_file, key_file, ca_file = tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.crt"
    _write(ca_file, office.cert_pem)
    first_cert, first_key = office.issue("web", server=False)
    _write(cert_file, first_cert)
    _write(key_file, first_key)
    # Only the methods this test calls are implemented.
    intake, docs = Intake(), Docs()  # type: ignore[abstract]
    server = grpc.aio.server()
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(intake, server)
    docs_pb2_grpc.add_DocsServiceServicer_to_server(docs, server)
    server_cert, server_key = office.issue("intake", server=True)
    credentials = grpc.ssl_server_credentials(
        [(server_key, server_cert)], root_certificates=office.cert_pem, require_client_auth=True
    )
    address = f"127.0.0.1:{server.add_secure_port('127.0.0.1:0', credentials)}"
    await server.start()
    tls = Tls.from_files(cert_file=cert_file, key_file=key_file, ca_file=ca_file)
    client = TawasulClient.connect(intake=address, docs=address, tls=tls, token="t")
    release = asyncio.Event()

    async def held() -> AsyncIterator[bytes]:
        yield b"%PDF-1.7 "
        await release.wait()
        yield b"the rest"

    try:
        await client.get_catalog(refresh=True)
        upload = asyncio.ensure_future(
            client.upload_document(held(), filename="a.pdf", content_type="application/pdf")
        )
        await asyncio.wait_for(docs.uploading.wait(), 5)

        # Half written: the new certificate is there, its key not yet. The old one stays.
        renewed_cert, renewed_key = office.issue("web-renewed", server=False)
        _write(cert_file, renewed_cert)
        with caplog.at_level(logging.ERROR, logger="tawasul_sdk.channel"):
            await client.get_catalog(refresh=True)
        assert f"{key_file} is not the key of the certificate in {cert_file}" in caplog.text

        _write(key_file, renewed_key)
        await client.get_catalog(refresh=True)
        await client.get_document(docs_pb2.GetDocumentRequest(document_id="d1"))
        assert intake.callers == ["web", "web", "web-renewed"]
        # The upload started before the renewal finishes on the connection it started on.
        release.set()
        answer = await asyncio.wait_for(upload, 5)
        assert answer.document.size_bytes == len(b"%PDF-1.7 the rest")
        assert docs.callers == ["web", "web-renewed"]
        await client.get_catalog(refresh=True)
        assert intake.callers[-1] == "web-renewed"
    finally:
        await client.close()
        await server.stop(None)


def _rewrite_in_place(path: Path, data: bytes, mtime_ns: int) -> None:
    """`data` over the file, its inode and time kept: what a coarse clock shows of two writes."""
    with path.open("r+b") as file:
        file.write(data)
        file.truncate()
    os.utime(path, ns=(mtime_ns, mtime_ns))


async def test_files_read_half_written_are_read_again_at_the_next_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(channel_module, "RENEWAL_CHECK_SECONDS", 0.0)
    office = Authority.new("office CA")
    files = TlsFiles(tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.crt")
    _write(files.ca, office.cert_pem)
    for path, data in zip((files.cert, files.key), office.issue("web", server=False), strict=True):
        _write(path, data)
    opened: list[Tls] = []

    def opener(tls: Tls) -> grpc.aio.Channel:
        opened.append(tls)
        return grpc.aio.insecure_channel("127.0.0.1:1")

    first = grpc.aio.insecure_channel("127.0.0.1:1")
    channel = RenewingChannel(first, files, opener)
    renewed_cert, renewed_key = office.issue("web", server=False)
    _write(files.cert, renewed_cert)
    written = files.key.stat().st_mtime_ns
    # The key caught half written, then whole, with nothing `stamp` sees telling them apart.
    _rewrite_in_place(files.key, b"-" * len(renewed_key), written)
    try:
        with caplog.at_level(logging.ERROR, logger="tawasul_sdk.channel"):
            assert channel.current() is first
            assert channel.current() is first
        assert caplog.text.count("hold no PEM certificate and key") == 1  # logged once
        assert opened == []
        _rewrite_in_place(files.key, renewed_key, written)
        renewed = channel.current()
        assert renewed is not first
        assert [(tls.cert, tls.key) for tls in opened] == [(renewed_cert, renewed_key)]
        assert channel.current() is renewed
        assert len(opened) == 1
    finally:
        await channel.close()
