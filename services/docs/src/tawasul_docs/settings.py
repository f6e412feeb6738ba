from __future__ import annotations

from tawasul_platform.settings import ServiceSettings


class DocsSettings(ServiceSettings):
    s3_endpoint: str = "127.0.0.1:19000"
    s3_access_key: str
    s3_secret_key: str
    s3_bucket: str
    s3_secure: bool = False
    s3_timeout_seconds: float = 2.0
    max_document_bytes: int = 10 * 1024 * 1024
    download_url_seconds: int = 600
