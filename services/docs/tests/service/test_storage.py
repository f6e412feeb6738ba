"""The MinIO adapter against real MinIO servers, started for this module from the stack's build:
one holding an encryption key, as the dev stack runs it, and one without, as a server that
offers no encryption would be."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
import secrets
import signal
import subprocess
import urllib.error
import urllib.request
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
import urllib3
from minio.error import S3Error, ServerError
from tawasul_devstack import install
from tawasul_devstack.procs import StackError, free_port, wait_until_ready
from tawasul_devstack.stack import StackConfig
from tawasul_docs.adapters.storage import (
    EncryptionUnavailable,
    MinioObjectStore,
    S3Client,
    make_client,
)
from tawasul_docs.app.spool import Spool, SpoolAborted
from tawasul_platform.errors import Unavailable

READY_TIMEOUT = 30.0
# Where the store says that a PUT failed and it stores the upload in parts instead.
storage_log = "tawasul_docs.adapters.storage"
USER, PASSWORD = "tawasul-test", "tawasul-test-password"
BUCKET = "tawasul-test-bucket"


@dataclass
class MinioServer:
    process: subprocess.Popen[bytes]
    endpoint: str
    data: Path

    def client(self) -> S3Client:
        return make_client(
            endpoint=self.endpoint,
            access_key=USER,
            secret_key=PASSWORD,
            secure=False,
            timeout_seconds=5.0,
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def ready(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{endpoint}/minio/health/ready", timeout=1.0) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_minio(home: Path, *, kms_key: bool, idle_timeout: str = "") -> MinioServer:
    binary = install.minio_binary(StackConfig.from_env().cache_dir)
    if not binary.is_file():
        pytest.fail(f"MinIO is not built at {binary}: run `make setup` (tawasul-stack install)")
    endpoint = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "MINIO_ROOT_USER": USER, "MINIO_ROOT_PASSWORD": PASSWORD}
    env["MINIO_UPDATE"] = "off"
    if kms_key:
        env["MINIO_KMS_SECRET_KEY"] = f"test:{base64.b64encode(secrets.token_bytes(32)).decode()}"
    log = (home / "minio.log").open("ab")
    process = subprocess.Popen(
        [
            str(binary),
            "server",
            str(home / "data"),
            "--address",
            endpoint,
            "--console-address",
            f"127.0.0.1:{free_port()}",
            # MinIO's own (hidden) flag: how long it waits for more of a request's body.
            *(["--idle-timeout", idle_timeout] if idle_timeout else []),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    server = MinioServer(process, endpoint, home / "data")
    try:
        wait_until_ready(process, lambda: ready(endpoint), timeout=READY_TIMEOUT, what="ready")
    except StackError as error:
        server.stop()
        pytest.fail(f"MinIO: {error}:\n{(home / 'minio.log').read_text()}")
    return server


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    server = start_minio(tmp_path_factory.mktemp("minio-keyed"), kms_key=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    server = start_minio(
        tmp_path_factory.mktemp("minio-impatient"), kms_key=True, idle_timeout="1s"
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    server = start_minio(tmp_path_factory.mktemp("minio-keyless"), kms_key=False)
    yield server
    server.stop()


async def stream(store: MinioObjectStore, key: str, data: bytes, *, declared: bool) -> None:
    spool = Spool(None)
    storing = store.stream_to(key, spool, len(data) if declared else None)
    for start in range(0, len(data), 64 * 1024):
        await spool.append(data[start : start + 64 * 1024])
    await spool.finish()
    await storing
    spool.close()


async def read(store: MinioObjectStore, key: str) -> bytes:
    parts: AsyncIterator[bytes] = store.chunks(key)
    return b"".join([chunk async for chunk in parts])


# A size declared up front: one PUT sent as the bytes come; none: the SDK's 5 MiB parts.
MODES = pytest.mark.parametrize("declared", [True, False], ids=["one-put", "multipart"])


@MODES
async def test_every_object_is_encrypted_at_rest(
    keyed: MinioServer, declared: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=storage_log)
    store = MinioObjectStore(keyed.client(), BUCKET)
    await store.ensure_bucket()
    await store.ensure_bucket()  # a second replica starting finds it ready
    marker = b"plain-text-marker " * 8
    # Over one 5 MiB part, then a server-side copy out of quarantine.
    data = marker + os.urandom(6 * 1024 * 1024)
    source, target = f"quarantine/{declared}", f"documents/{declared}"
    await stream(store, source, data, declared=declared)
    assert "storing it in parts" not in caplog.text  # a declared size went in one PUT
    await store.copy(source, target, content_type="application/pdf")
    client = keyed.client()
    for key in (source, target):
        stat = await asyncio.to_thread(client.stat_object, BUCKET, key)
        assert (stat.metadata or {}).get("x-amz-server-side-encryption") == "AES256"
        assert await read(store, key) == data
        files = [p for p in (keyed.data / BUCKET / key).rglob("*") if p.is_file()]
        assert files
        assert not [p for p in files if marker in p.read_bytes()]


@MODES
async def test_an_aborted_spool_leaves_no_object(keyed: MinioServer, declared: bool) -> None:
    store = MinioObjectStore(keyed.client(), BUCKET)
    await store.ensure_bucket()
    spool = Spool(None)
    key = f"documents/aborted-{declared}"
    storing = store.stream_to(key, spool, 8 * 1024 * 1024 if declared else None)
    # Past one 5 MiB part, so that a part is stored before the upload is abandoned.
    for _ in range(6 * 16):
        await spool.append(os.urandom(64 * 1024))
    spool.abort()
    with pytest.raises(SpoolAborted):
        await storing
    spool.close()
    await assert_missing(keyed, key)


async def test_a_spool_short_of_its_declared_size_leaves_no_object(keyed: MinioServer) -> None:
    store = MinioObjectStore(keyed.client(), BUCKET)
    await store.ensure_bucket()
    spool = Spool(None)
    storing = store.stream_to("documents/short", spool, 1024 * 1024)
    await spool.append(os.urandom(1024 * 1024 - 1))
    await spool.finish()
    # The server would wait for the byte the length promised; the PUT is cut off instead.
    with pytest.raises(Unavailable, match="cannot take the file"):
        await storing
    spool.close()
    await assert_missing(keyed, "documents/short")


async def test_a_put_dropped_while_the_client_pauses_is_stored_in_parts(
    impatient: MinioServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=storage_log)
    store = MinioObjectStore(impatient.client(), BUCKET)
    await store.ensure_bucket()
    data = os.urandom(7 * 1024 * 1024)
    spool = Spool(None)
    storing = store.stream_to("documents/paused", spool, len(data))
    try:
        await spool.append(data[: 1024 * 1024])
        # The client pauses longer than this server waits for more of a body (1 s here, 30 s
        # by default). The pause is the test's input, not a wait for something to happen:
        # MinIO refuses the PUT only once the body resumes.
        await asyncio.sleep(2.5)
        for start in range(1024 * 1024, len(data), 256 * 1024):
            await spool.append(data[start : start + 256 * 1024])
        await spool.finish()
        await storing
    finally:
        if not storing.done():
            spool.abort()  # a failed test must not leave the upload thread waiting for bytes
        await asyncio.to_thread(spool.close)
    assert "storing it in parts" in caplog.text  # the one PUT was refused, then…
    assert await read(store, "documents/paused") == data  # …the parts hold every byte


async def test_bytes_that_do_not_match_their_checksum_are_refused_by_the_server(
    keyed: MinioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = keyed.client()
    await MinioObjectStore(client, BUCKET).ensure_bucket()
    # As if a byte changed on the way: the trailer's CRC32 is not that of the bytes sent.
    monkeypatch.setattr(zlib, "crc32", lambda data, value=0: value ^ 1)
    with pytest.raises(ServerError, match="XAmzContentChecksumMismatch"):
        await asyncio.to_thread(
            client.put_stream, BUCKET, "documents/corrupt", io.BytesIO(b"x" * 1000), 1000
        )
    await assert_missing(keyed, "documents/corrupt")


async def assert_missing(server: MinioServer, key: str) -> None:
    with pytest.raises(S3Error) as missing:
        await asyncio.to_thread(server.client().stat_object, BUCKET, key)
    assert missing.value.code == "NoSuchKey"


async def test_a_server_without_a_key_stops_docs_from_starting(keyless: MinioServer) -> None:
    with pytest.raises(EncryptionUnavailable, match="KMS is not configured"):
        await MinioObjectStore(keyless.client(), BUCKET).ensure_bucket()


async def test_encryption_turned_off_stores_in_the_clear(keyless: MinioServer) -> None:
    store = MinioObjectStore(keyless.client(), "tawasul-clear", encrypt=False)
    await store.ensure_bucket()
    await stream(store, "documents/b", b"in the clear", declared=True)
    client = keyless.client()
    stat = await asyncio.to_thread(client.stat_object, "tawasul-clear", "documents/b")
    assert "x-amz-server-side-encryption" not in (stat.metadata or {})
    files = (keyless.data / "tawasul-clear" / "documents/b").rglob("*")
    assert [p for p in files if p.is_file() and b"in the clear" in p.read_bytes()]


async def test_a_read_broken_off_mid_object_is_transient() -> None:
    """MinIO restarting while the rescan reads a file: the rescan tries again later, as for a
    refused get; anything else would end the loop and take the process down."""

    class Broken:
        def read(self, size: int) -> bytes:
            raise urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead")

        def close(self) -> None: ...

        def release_conn(self) -> None: ...

    class Client:
        def get_object(self, bucket: str, key: str) -> Broken:
            return Broken()

    store = MinioObjectStore(cast(S3Client, Client()), BUCKET)
    with pytest.raises(Unavailable, match="stopped sending"):
        await read(store, "quarantine/x")
