from __future__ import annotations

from pathlib import Path

from pydantic import Field
from tawasul_platform.settings import ServiceSettings


class DocsSettings(ServiceSettings):
    identity_audience: str = "tawasul-docs"
    s3_endpoint: str = "127.0.0.1:19000"
    # The host that presigned links name, when clients reach object storage by another one.
    s3_public_endpoint: str = ""
    # Whether those links say https: the public host is answered over TLS (an ingress) even
    # where docs' own hop to object storage is plain.
    s3_public_secure: bool = True
    s3_access_key: str
    s3_secret_key: str
    s3_bucket: str
    s3_secure: bool = False
    s3_timeout_seconds: float = Field(default=2.0, gt=0)
    # Documents are encrypted at rest by the server (SSE-S3); off only for a server without a key.
    s3_encryption: bool = True
    # Which request and department hold each document may be learnt a tenth of a second late
    # (a reviewer opens a document well after the item reaches the queue): docs' group takes a
    # steady stream a poll's worth at a time, at a third of the CPU a record.
    consumer_gather_ms: int = Field(default=100, ge=0, le=5000)
    # The limit when the channel names no sub-service's document kind.
    max_document_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # Presigned links are short-lived; ten minutes at most.
    download_url_seconds: int = Field(default=300, ge=10, le=600)
    max_concurrent_uploads: int = Field(default=8, ge=1)
    # Final checks at once, each a whole PDF parsed by pypdf: one can hold some 30 times what
    # the file holds in numbers (316 MB for 10 MiB of them, 12 s of CPU), so two would already
    # pass the pod's 512 MiB. The others wait; a normal 10 MiB PDF takes 15 ms.
    max_concurrent_parses: int = Field(default=1, ge=1)
    # However slowly a client sends, an upload ends by then: no slot is held for ever.
    upload_seconds: float = Field(default=120.0, gt=0)
    # Where uploads are spooled for the checks while they stream to object storage.
    spool_dir: Path | None = None
    # The ClamAV daemon (INSTREAM over TCP); when it is down uploads stay in quarantine.
    clamd_address: str
    # clamd's own time for each step (connect, each piece, the verdict), not the upload's.
    clamd_timeout_seconds: float = Field(default=10.0, gt=0)
    # How often quarantined uploads are scanned again (clamd down at their upload).
    rescan_seconds: float = Field(default=5.0, gt=0)
    # A document that joins no request within this long is removed, object and row.
    keep_unattached_hours: float = Field(default=72.0, gt=0)
    # Documents one account may keep that joined no request yet (each kept that long).
    max_unattached_per_account: int = Field(default=50, ge=1)
    # How often the removal of unattached documents runs.
    sweep_seconds: float = Field(default=60.0, gt=0)
