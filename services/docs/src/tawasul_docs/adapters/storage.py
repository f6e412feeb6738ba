"""Documents' bytes in MinIO (S3 API). The minio SDK blocks, so every call runs in a thread.

Bucket layout: `documents/<document id>`, written once as the upload arrives; whether it may
be read (clean) or not yet (quarantined) is its row's state, so the scanner's verdict moves no
bytes. Rows older than 2026-12-03 may point at `quarantine/<document id>`, copied out when
found clean. Nothing else is written to the bucket. The bucket encrypts every object at rest
(SSE-S3) when the server holds a key; see `ensure_bucket`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import zlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import SplitResult, quote, urlunsplit

import urllib3
from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.credentials.credentials import Credentials
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error, ServerError
from minio.signer import sign_v4_s3
from minio.sseconfig import Rule, SSEConfig
from minio.time import to_amz_date, utcnow
from prometheus_client import Counter
from tawasul_platform.errors import Unavailable

from tawasul_docs.app.spool import Spool, SpoolAborted

log = logging.getLogger(__name__)

_BUCKET_RACES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
# Deletions object storage refused object by object: each is tried again later, and one that
# is refused for good (a policy denying it) keeps counting, for an alert.
DELETIONS_REFUSED = Counter(
    "tawasul_docs_object_deletions_refused",
    "Objects object storage refused to delete when asked (each is tried again), by S3 code",
    ["code"],
)
# The code a bucket policy denying s3:DeleteObject gives, the refusal for good the alert is for.
ACCESS_DENIED = "AccessDenied"


# S3's largest single PUT; a bigger declared size goes in parts.
MAX_PUT_BYTES = 5 * 1024**3


class Readable(Protocol):
    """A blocking source of bytes, as a spool's reader or a file is."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class S3Client(Minio):
    """The SDK's client, and a PUT whose body is sent while it is still being read.

    The SDK signs a body it holds whole (over plain HTTP it hashes it first), so it stores a
    stream in 5 MiB parts, each sent once complete. `put_stream` sends the bytes as they come,
    in S3's aws-chunked encoding with a trailing CRC32 (STREAMING-UNSIGNED-PAYLOAD-TRAILER):
    the server checks the bytes it received against it and refuses the object otherwise. It
    signs with the SDK's public signer and sends through the pool the client was given, from
    what the client was built with: none of the SDK's private fields.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        access_key: str,
        secret_key: str,
        secure: bool,
        region: str,
        http_client: urllib3.PoolManager,
    ) -> None:
        super().__init__(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http_client,
        )
        self._stream_to = _StreamTarget(
            scheme="https" if secure else "http",
            host=endpoint,
            region=region,
            # No keys: an anonymous client, whose requests go unsigned (as the SDK's do).
            credentials=Credentials(access_key, secret_key) if access_key else None,
            http=http_client,
        )

    def put_stream(self, bucket: str, key: str, body: Readable, size: int) -> None:
        """Stores exactly `size` bytes read from `body` in one PUT; nothing when it fails."""
        to = self._stream_to
        # Path-style, as MinIO serves it; each segment escaped as S3's canonical URI wants.
        url = SplitResult(to.scheme, to.host, f"/{quote(bucket)}/{quote(key)}", "", "")
        date = utcnow()
        headers: dict[str, Any] = {
            "Host": to.host,
            "User-Agent": _USER_AGENT,
            "Content-Length": str(aws_chunked_length(size)),
            "Content-Encoding": "aws-chunked",
            "Content-Type": "application/octet-stream",
            "x-amz-decoded-content-length": str(size),
            "x-amz-trailer": _CHECKSUM,
            "x-amz-content-sha256": _STREAMING,
            "x-amz-date": to_amz_date(date),
        }
        if to.credentials is not None:
            headers = sign_v4_s3(
                method="PUT",
                url=url,
                region=to.region,
                headers=headers,
                credentials=to.credentials,
                content_sha256=_STREAMING,
                date=date,
            )
        # Not retried: the bytes already sent cannot be read again.
        response = to.http.urlopen(
            "PUT", urlunsplit(url), body=aws_chunked(body, size), headers=headers, retries=False
        )
        if response.status != 200:
            raise ServerError(f"PUT {key}: HTTP {response.status}: {response.data[:300]!r}", 500)


@dataclass(frozen=True)
class _StreamTarget:
    scheme: str
    host: str
    region: str
    credentials: Credentials | None
    http: urllib3.PoolManager


_USER_AGENT = "tawasul-docs (put_stream)"
_STREAMING = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
_CHECKSUM = "x-amz-checksum-crc32"
# The encoding's chunks: the length has to be known before the first byte is sent.
PUT_CHUNK = 256 * 1024
# The last chunk (a zero length), the checksum's trailer line (a CRC32 is 8 base64
# characters) and the blank line that ends the body.
_END = len(b"0\r\n") + len(f"{_CHECKSUM}:".encode()) + 8 + len(b"\r\n\r\n")


def _framed(length: int) -> int:
    return len(b"%x\r\n" % length) + length + len(b"\r\n")


def aws_chunked_length(size: int) -> int:
    """The length of `size` bytes in the encoding `aws_chunked` writes."""
    full, last = divmod(size, PUT_CHUNK)
    return full * _framed(PUT_CHUNK) + (_framed(last) if last else 0) + _END


def aws_chunked(source: Readable, size: int) -> Iterator[bytes | bytearray]:
    """`size` bytes of `source` in chunks of PUT_CHUNK, then their CRC32 as a trailer.

    Its end before `size` bytes is an error, not a short object: the server would wait for
    the bytes the length promised.
    """
    checksum = 0
    left = size
    while left:
        chunk = bytearray(min(PUT_CHUNK, left))
        view = memoryview(chunk)
        filled = 0
        while filled < len(chunk):
            read = source.readinto(view[filled:])
            if not read:
                raise ValueError(f"the upload ended {left - filled} bytes short of its size")
            filled += read
        checksum = zlib.crc32(chunk, checksum)
        yield b"%x\r\n" % len(chunk)
        yield chunk
        yield b"\r\n"
        left -= len(chunk)
    trailer = base64.b64encode(checksum.to_bytes(4, "big"))
    yield b"0\r\n" + f"{_CHECKSUM}:".encode() + trailer + b"\r\n\r\n"


def make_client(
    *, endpoint: str, access_key: str, secret_key: str, secure: bool, timeout_seconds: float
) -> S3Client:
    # The SDK's own client waits minutes and retries five times: far past any caller's
    # deadline. A short timeout and two retries let an outage answer UNAVAILABLE in time.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds),
        retries=urllib3.Retry(total=2, backoff_factor=0.1, status_forcelist=(502, 503, 504)),
        maxsize=16,
    )
    # A fixed region: presigning then needs no network round trip to look the region up.
    return S3Client(
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


class MinioObjectStore:
    def __init__(
        self,
        client: S3Client,
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
        # At 0 from the start: a label set otherwise appears at its first inc(), already at 1,
        # and increase() never sees a pod's first refusals (no earlier sample). Other codes
        # still appear at their first.
        DELETIONS_REFUSED.labels(ACCESS_DENIED)

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

    def stream_to(self, key: str, spool: Spool, size: int | None) -> asyncio.Future[None]:
        """Starts uploading the spool's bytes to `key` as they arrive; the future ends with the
        upload. With `size` known they go in one PUT as they come; without, in 5 MiB parts
        (S3 needs a part's length before its first byte), the last sent after the last byte.
        An aborted spool abandons the PUT or the multipart upload: no object."""

        def upload() -> None:
            try:
                if size is not None and size <= MAX_PUT_BYTES and self._put_whole(key, spool, size):
                    return
                self._client.put_object(
                    self._bucket,
                    key,
                    io.BufferedReader(spool.reader(), buffer_size=64 * 1024),
                    -1,
                    part_size=PART_BYTES,
                    content_type="application/octet-stream",
                    # One part in flight: parallel parts would each hold 5 MiB in memory.
                    num_parallel_uploads=1,
                )
            except SpoolAborted:
                raise
            except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                log.warning("storing %s failed: %s", key, exc)
                raise Unavailable("object storage cannot take the file now") from exc

        return asyncio.get_running_loop().run_in_executor(self._uploads, upload)

    def _put_whole(self, key: str, spool: Spool, size: int) -> bool:
        """One PUT of the spool as it grows; False when it failed and may be tried in parts.

        MinIO drops a PUT whose body pauses past its idle timeout (30 s by default), as a
        client on a poor line may; in parts, nothing is sent until a part is whole. The spool
        still holds every byte, so the upload is not lost: it is stored again, in parts.
        """
        try:
            self._client.put_stream(self._bucket, key, spool.reader(), size)
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            # A warning: a server that refused every such PUT (one without trailing checksums)
            # would have each upload sent twice.
            log.warning("one PUT of %s failed (%s); storing it in parts", key, exc)
            return False
        return True

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
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise Unavailable(f"object storage cannot read the file now: {exc}") from exc
        try:
            while True:
                # A read broken off mid-object (a MinIO restart) is as transient as a refused
                # get: the rescan tries again later rather than taking the process down.
                try:
                    chunk = await asyncio.to_thread(response.read, size)
                except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
                    raise Unavailable(f"object storage stopped sending the file: {exc}") from exc
                if not chunk:
                    break
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._client.remove_object, self._bucket, key)

    async def delete_many(self, keys: list[str]) -> list[str]:
        def remove() -> list[tuple[str, str]]:
            # Lazy: the requests (a thousand keys each) go out as the errors are read.
            errors = self._client.remove_objects(self._bucket, [DeleteObject(k) for k in keys])
            return [(e.name or "", e.code) for e in errors]

        try:
            refused = await asyncio.to_thread(remove)
        except (MinioException, urllib3.exceptions.HTTPError) as exc:
            raise Unavailable(f"object storage cannot delete now: {exc}") from exc
        for key, code in refused:
            DELETIONS_REFUSED.labels(code).inc()
            log.warning("object storage refused to delete %s: %s", key, code)
        return [key for key, _ in refused]

    async def presign_get(
        self, key: str, *, expires: timedelta, download_name: str, content_type: str
    ) -> str:
        url: str = await asyncio.to_thread(
            self._presigner.presigned_get_object,
            self._bucket,
            key,
            expires=expires,
            # The type is the link's, not the object's: objects are stored before they are
            # checked.
            response_headers={
                "response-content-disposition": content_disposition(download_name),
                "response-content-type": content_type,
            },
        )
        return url
