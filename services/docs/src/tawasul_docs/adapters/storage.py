"""Documents' bytes in MinIO (S3 API). The minio SDK blocks, so every call runs in a thread."""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import timedelta
from urllib.parse import quote

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error
from tawasul_platform.errors import Unavailable

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


class MinioObjectStore:
    def __init__(self, client: Minio, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    async def ensure_bucket(self) -> None:
        """Creates the bucket when it is missing (another replica may create it meanwhile)."""

        def ensure() -> None:
            if self._client.bucket_exists(self._bucket):
                return
            try:
                self._client.make_bucket(self._bucket)
                log.info("created bucket %s", self._bucket)
            except S3Error as exc:
                if exc.code not in _BUCKET_RACES:
                    raise

        await asyncio.to_thread(ensure)

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        try:
            await asyncio.to_thread(
                self._client.put_object,
                self._bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type,
            )
        except (MinioException, urllib3.exceptions.HTTPError) as exc:
            raise Unavailable(f"object storage cannot take the file now: {exc}") from exc

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._client.remove_object, self._bucket, key)

    async def presign_get(self, key: str, *, expires: timedelta, download_name: str) -> str:
        url: str = await asyncio.to_thread(
            self._client.presigned_get_object,
            self._bucket,
            key,
            expires=expires,
            response_headers={"response-content-disposition": content_disposition(download_name)},
        )
        return url
