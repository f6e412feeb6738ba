"""Documents' bytes in MinIO (S3 API). The minio SDK blocks, so every call runs in a thread.

Bucket layout: `quarantine/<document id>` while a new upload waits for the malware scanner,
`documents/<document id>` once it is clean; nothing else is written to the bucket. The bucket
encrypts every object at rest (SSE-S3) when the server holds a key; see `ensure_bucket`.
"""

from __future__ import annotations

import asyncio
import io
import logging
import queue
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import urllib3
from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error, ServerError
from minio.sseconfig import Rule, SSEConfig
from tawasul_platform.errors import Unavailable

from tawasul_docs.app.ports import Pipe

log = logging.getLogger(__name__)

_BUCKET_RACES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})


def make_client(
    *, endpoint: str, access_key: str, secret_key: str, secure: bool, timeout_seconds: float
) -> Minio:
    # The SDK's own client waits minutes and retries five times: far past any caller's
    # deadline. A short timeout and two retries let an outage answer UNAVAILABLE in time.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds),
        retries=urllib3.Retry(total=2, backoff_factor=0.1, status_forcelist=(502, 503, 504)),
        maxsize=16,
    )
    # A fixed region: presigning then needs no network round trip to look the region up.
    return Minio(
        endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=secure,
        region="us-east-1",
        http_client=http,
    )


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact name per RFC 6266 / 5987."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# S3's smallest multipart part: the SDK holds at most this much of one upload in memory.
PART_BYTES = 5 * 1024 * 1024


class EncryptionUnavailable(RuntimeError):
    """Object storage offers no server-side encryption, and docs was told to require it."""


class UploadAborted(Exception):
    """The sender stopped (bad input, cancellation): the multipart upload is abandoned."""


class ChunkPipe(io.RawIOBase):
    """Chunks handed from the event loop to the SDK's uploading thread, a few at a time.

    `feed` waits while the pipe is full, so a fast client cannot grow the process's memory;
    an `abort` makes the SDK's next read fail, and the SDK then aborts the multipart upload,
    leaving no object behind. When the uploading thread stops (storage down), whoever waits
    on the pipe gets Unavailable instead of waiting for ever.
    """

    def __init__(self, depth: int = 4) -> None:
        super().__init__()
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
        self._pending = b""
        self._done = False
        self.closed_by_reader = threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._done:
            item = self._queue.get()
            if item is None:
                self._done = True
            elif isinstance(item, BaseException):
                raise item
            else:
                self._pending = item
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _put(self, item: bytes | BaseException | None) -> None:
        while not self.closed_by_reader.is_set():
            try:
                self._queue.put(item, timeout=0.2)
            except queue.Full:
                continue
            return
        if not isinstance(item, BaseException):
            raise Unavailable("object storage stopped taking the file")

    async def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.closed_by_reader.is_set():
            raise Unavailable("object storage stopped taking the file")
        try:
            # While the pipe has room nothing blocks: a thread is needed only to wait.
            self._queue.put_nowait(chunk)
        except queue.Full:
            await asyncio.to_thread(self._put, chunk)

    async def finish(self) -> None:
        await asyncio.to_thread(self._put, None)

    async def abort(self) -> None:
        await asyncio.to_thread(self._put, UploadAborted())


class MinioObjectStore:
    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        presigner: Minio | None = None,
        max_concurrent_uploads: int = 32,
        encrypt: bool = True,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._encrypt = encrypt
        # Each streaming upload blocks a thread for its whole length: they get threads of
        # their own, so they never starve the default pool the short hops (and the very
        # chunks they wait for) go through.
        self._uploads = ThreadPoolExecutor(
            max_workers=max_concurrent_uploads, thread_name_prefix="upload"
        )
        # Presigning is local arithmetic: a client named after the public host signs links
        # that work from outside, while the bytes move through the internal one.
        self._presigner = presigner or client

    async def ensure_bucket(self) -> None:
        """Creates the bucket when it is missing (another replica may create it meanwhile) and
        makes the server encrypt every object written to it from now on.

        Encryption is the bucket's default rather than a header on each call, so multipart
        parts and server-side copies are covered alike. A server without a key refuses, and
        docs does not start: documents are never stored in the clear by accident.
        """

        def ensure() -> None:
            if not self._client.bucket_exists(self._bucket):
                try:
                    self._client.make_bucket(self._bucket)
                    log.info("created bucket %s", self._bucket)
                except S3Error as exc:
                    if exc.code not in _BUCKET_RACES:
                        raise
            if not self._encrypt:
                log.warning("bucket %s does not encrypt documents at rest", self._bucket)
                return
            try:
                self._client.set_bucket_encryption(self._bucket, SSEConfig(Rule.new_sse_s3_rule()))
            except S3Error as exc:
                raise EncryptionUnavailable(
                    f"object storage cannot encrypt bucket {self._bucket} ({exc.code}: "
                    f"{exc.message}); give it a key (MinIO: MINIO_KMS_SECRET_KEY or a KMS), or "
                    "set TAWASUL_S3_ENCRYPTION=false to store documents unencrypted"
                ) from exc

        try:
            await asyncio.to_thread(ensure)
        except (ServerError, urllib3.exceptions.HTTPError, OSError) as exc:
            # Unreachable or still starting: an outage, which the service waits out at start.
            raise Unavailable("object storage cannot be reached") from exc

    def open_pipe(self) -> ChunkPipe:
        return ChunkPipe()

    def stream_to(self, key: str, pipe: Pipe) -> asyncio.Future[None]:
        """Starts uploading what the pipe carries to `key`; the future ends with the upload."""
        if not isinstance(pipe, ChunkPipe):
            raise TypeError("a pipe of this store's own making")

        def upload() -> None:
            try:
                self._client.put_object(
                    self._bucket,
                    key,
                    io.BufferedReader(pipe, buffer_size=64 * 1024),
                    -1,
                    part_size=PART_BYTES,
                    content_type="application/octet-stream",
                    # One part in flight: parallel parts would each hold 5 MiB in memory.
                    num_parallel_uploads=1,
                )
            except UploadAborted:
                raise
            except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                log.warning("storing %s failed: %s", key, exc)
                raise Unavailable("object storage cannot take the file now") from exc
            finally:
                pipe.closed_by_reader.set()

        return asyncio.get_running_loop().run_in_executor(self._uploads, upload)

    async def copy(self, source: str, target: str, *, content_type: str) -> None:
        """A server-side copy (out of quarantine); the caller deletes the source after."""
        try:
            await asyncio.to_thread(
                self._client.copy_object,
                self._bucket,
                target,
                CopySource(self._bucket, source),
                metadata={"Content-Type": content_type},
                metadata_directive=REPLACE,
            )
        except (MinioException, urllib3.exceptions.HTTPError) as exc:
            raise Unavailable("object storage cannot copy the file now") from exc

    async def chunks(self, key: str, size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """The object's bytes, a chunk at a time (for a scan after the scanner was down)."""
        try:
            response = await asyncio.to_thread(self._client.get_object, self._bucket, key)
        except (MinioException, urllib3.exceptions.HTTPError) as exc:
            raise Unavailable(f"object storage cannot read the file now: {exc}") from exc
        try:
            while chunk := await asyncio.to_thread(response.read, size):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._client.remove_object, self._bucket, key)

    async def delete_many(self, keys: list[str]) -> None:
        def remove() -> list[str]:
            # Lazy: the requests (a thousand keys each) go out as the errors are read.
            errors = self._client.remove_objects(self._bucket, [DeleteObject(k) for k in keys])
            return [f"{e.name}: {e.code}" for e in errors]

        try:
            failed = await asyncio.to_thread(remove)
        except (MinioException, urllib3.exceptions.HTTPError) as exc:
            raise Unavailable(f"object storage cannot delete now: {exc}") from exc
        if failed:
            raise Unavailable(f"object storage kept {len(failed)} objects: {failed[:3]}")

    async def presign_get(self, key: str, *, expires: timedelta, download_name: str) -> str:
        url: str = await asyncio.to_thread(
            self._presigner.presigned_get_object,
            self._bucket,
            key,
            expires=expires,
            response_headers={"response-content-disposition": content_disposition(download_name)},
        )
        return url
