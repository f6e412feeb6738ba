"""Composition root: the only place docs' adapters are built and wired."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul_platform.db import make_engine
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.service import Runtime

from tawasul_docs.adapters.repository import DocsUnitOfWork
from tawasul_docs.adapters.storage import MinioObjectStore, make_client
from tawasul_docs.entrypoints.grpc import DocsServicer
from tawasul_docs.settings import DocsSettings


async def build(settings: DocsSettings) -> Runtime:
    """Docs consumes and publishes no events yet: no Kafka consumer, no outbox relay."""
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    def uow() -> DocsUnitOfWork:
        return DocsUnitOfWork(sessions)

    store = MinioObjectStore(
        make_client(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=settings.s3_secure,
            timeout_seconds=settings.s3_timeout_seconds,
        ),
        settings.s3_bucket,
    )
    servicer = DocsServicer(
        uow=uow,
        store=store,
        secret=settings.identity_secret,
        max_document_bytes=settings.max_document_bytes,
        download_url_seconds=settings.download_url_seconds,
    )
    server = GrpcServer(
        settings.grpc_address,
        [docs_pb2.DESCRIPTOR.services_by_name["DocsService"].full_name],
        lambda s: docs_pb2_grpc.add_DocsServiceServicer_to_server(servicer, s),
    )
    return Runtime(grpc=server, startup=[store.ensure_bucket], shutdown=[engine.dispose])
