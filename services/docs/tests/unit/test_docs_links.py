"""The links GetDownloadUrl gives name the public host, over TLS, whatever docs' own hop."""

from __future__ import annotations

from datetime import timedelta

from tawasul_docs import bootstrap
from tawasul_docs.settings import DocsSettings

BASE = DocsSettings(
    database_url="postgresql+asyncpg://docs@127.0.0.1:1/docs",
    kafka_bootstrap="127.0.0.1:1",
    grpc_address="127.0.0.1:0",
    identity_issuers=[],
    s3_endpoint="minio:80",
    s3_access_key="docs-test",
    s3_secret_key="docs-test-secret",
    s3_bucket="tawasul-documents",
    clamd_address="127.0.0.1:1",
)


def settings(**more: object) -> DocsSettings:
    return BASE.model_copy(update=more)


async def link(configured: DocsSettings) -> str:
    store = bootstrap.object_store(configured)
    return await store.presign_get(
        "documents/x",
        expires=timedelta(minutes=5),
        download_name="x.pdf",
        content_type="application/pdf",
    )


async def test_a_public_host_s_links_say_https_though_the_hop_to_minio_is_plain() -> None:
    url = await link(settings(s3_public_endpoint="documents.tawasul.example"))
    assert url.startswith("https://documents.tawasul.example/tawasul-documents/documents/x?")


async def test_without_a_public_host_links_name_minio_as_docs_reaches_it() -> None:
    url = await link(settings())
    assert url.startswith("http://minio/tawasul-documents/documents/x?")
    plain = await link(settings(s3_public_endpoint="127.0.0.1:19000", s3_public_secure=False))
    assert plain.startswith("http://127.0.0.1:19000/tawasul-documents/documents/x?")
