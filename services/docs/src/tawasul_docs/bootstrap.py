"""Composition root: the only place docs' adapters are built and wired.

`servicer` takes the store and the scanner as arguments and `subscriptions` the unit of work,
so the service tier builds the real servicer and event handlers on a real database with the
real MinIO or a stand-in; `build` wires the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul_platform.authz import Gate
from tawasul_platform.catalog import load_catalog
from tawasul_platform.consumer import Subscriptions
from tawasul_platform.grpc import GrpcServer, ServerLimits
from tawasul_platform.periodic import every
from tawasul_platform.plumbing import build_plumbing
from tawasul_platform.service import Runtime
from tawasul_platform.staff import on_reviewers_recorded
from tawasul_platform.topics import (
    APPLICANT_ACTIONS,
    REQUEST_ROUTED,
    REQUEST_SUBMITTED,
    STAFF_REVIEWERS,
)

from tawasul_docs.adapters import tables
from tawasul_docs.adapters.repository import SERVICE, DocsUnitOfWork
from tawasul_docs.adapters.scanner import ClamdScanner
from tawasul_docs.adapters.storage import MinioObjectStore, S3Client, make_client
from tawasul_docs.app import handlers
from tawasul_docs.app.ports import ObjectStore, Scanner, UnitOfWork
from tawasul_docs.domain.model import MAX_CHUNK
from tawasul_docs.entrypoints.events import on_applicant_action, on_routed, on_submitted
from tawasul_docs.entrypoints.grpc import ACCESS, DocsServicer
from tawasul_docs.settings import DocsSettings

SERVICE_NAME = docs_pb2.DESCRIPTOR.services_by_name["DocsService"].full_name


def servicer(
    settings: DocsSettings,
    *,
    uow: Callable[[], UnitOfWork],
    store: ObjectStore,
    scanner: Scanner,
) -> DocsServicer:
    return DocsServicer(
        uow=uow,
        store=store,
        scanner=scanner,
        catalog=load_catalog(),
        max_document_bytes=settings.max_document_bytes,
        download_url_seconds=settings.download_url_seconds,
        max_concurrent_uploads=settings.max_concurrent_uploads,
        spool_dir=settings.spool_dir,
        upload_seconds=settings.upload_seconds,
        max_concurrent_parses=settings.max_concurrent_parses,
        max_unattached=settings.max_unattached_per_account,
    )


def grpc_server(settings: DocsSettings, service: DocsServicer) -> GrpcServer:
    return GrpcServer(
        settings.grpc_address,
        Gate.from_settings(settings, {SERVICE_NAME: ACCESS}),
        lambda s: docs_pb2_grpc.add_DocsServiceServicer_to_server(service, s),
        # A chunk and its framing; a bigger message never reaches the handler.
        max_message_bytes=MAX_CHUNK + 16 * 1024,
        # One chunk ahead of what the handler read (a 512 KiB window gained nothing more),
        # while 200 calls waiting for an upload slot hold 50 MiB at most.
        stream_window_bytes=MAX_CHUNK,
        tls=settings.tls,
        # An upload has its own, longer limit (upload_seconds) and its own answer past it.
        limits=ServerLimits(
            settings.grpc_max_concurrent_rpcs,
            max(settings.grpc_handler_seconds, settings.upload_seconds + 10),
            settings.grpc_connection_seconds,
        ),
    )


def subscriptions(uow: Callable[[], UnitOfWork]) -> Subscriptions:
    """Which request, in which department, holds each document: from intake's submission,
    routing's placements (a poll's worth at once) and the beneficiary's answers; and which
    departments review's records leave each reviewer in."""
    return (
        Subscriptions()
        .each(REQUEST_SUBMITTED, on_submitted(uow))
        .batches(REQUEST_ROUTED, on_routed(uow))
        .each(APPLICANT_ACTIONS, on_applicant_action(uow))
        .table(STAFF_REVIEWERS, on_reviewers_recorded(uow))
    )


def object_store(settings: DocsSettings) -> MinioObjectStore:
    def client(endpoint: str, *, secure: bool) -> S3Client:
        return make_client(
            endpoint=endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=secure,
            timeout_seconds=settings.s3_timeout_seconds,
        )

    public = (
        client(settings.s3_public_endpoint, secure=settings.s3_public_secure)
        if settings.s3_public_endpoint
        else None
    )
    return MinioObjectStore(
        client(settings.s3_endpoint, secure=settings.s3_secure),
        settings.s3_bucket,
        presigner=public,
        max_concurrent_uploads=settings.max_concurrent_uploads,
        encrypt=settings.s3_encryption,
    )


async def build(settings: DocsSettings) -> Runtime:
    plumbing = build_plumbing(settings, service=SERVICE, outbox=tables.outbox, inbox=tables.inbox)

    def uow() -> DocsUnitOfWork:
        return DocsUnitOfWork(plumbing.database)

    subscriptions(uow).subscribe(plumbing.consumer)
    store = object_store(settings)
    scanner = ClamdScanner(settings.clamd_address, timeout_seconds=settings.clamd_timeout_seconds)
    runtime = plumbing.runtime(
        grpc_server(settings, servicer(settings, uow=uow, store=store, scanner=scanner))
    )

    async def rescan() -> bool:
        return await handlers.rescan_quarantined(
            uow=uow(), store=store, scanner=scanner, now=datetime.now(UTC)
        )

    async def expire() -> bool:
        return await handlers.expire_unattached(
            uow=uow(),
            store=store,
            now=datetime.now(UTC),
            keep_for=timedelta(hours=settings.keep_unattached_hours),
        )

    async def ensure_spool() -> None:
        if settings.spool_dir is not None:
            await asyncio.to_thread(settings.spool_dir.mkdir, parents=True, exist_ok=True)

    runtime.startup.append(store.ensure_bucket)
    runtime.startup.append(ensure_spool)
    runtime.loops.append(lambda: every(settings.rescan_seconds, rescan, name="docs rescan"))
    runtime.loops.append(lambda: every(settings.sweep_seconds, expire, name="docs expiry"))
    return runtime
