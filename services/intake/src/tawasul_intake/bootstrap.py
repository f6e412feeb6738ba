"""Composition root: the only place intake's adapters are built and wired.

`servicer` and `subscriptions` take the adapters as arguments, so the service tier builds the
real servicer and event handlers on a real database with stand-ins for docs, notify and the
registry; `build` gives them the real ones and the process's plumbing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul_platform.authz import Gate
from tawasul_platform.catalog import load_catalog
from tawasul_platform.consumer import Subscriptions
from tawasul_platform.grpc import GrpcServer, ServerLimits
from tawasul_platform.periodic import every
from tawasul_platform.plumbing import build_plumbing
from tawasul_platform.request_numbers import new_request_number
from tawasul_platform.service import Runtime
from tawasul_platform.tls import open_channel
from tawasul_platform.topics import REQUEST_STATUS_CHANGED
from tawasul_platform.workdays import load_working_calendar

from tawasul_intake.adapters import tables
from tawasul_intake.adapters.docs import GrpcDocuments
from tawasul_intake.adapters.notify import GrpcCodeSender
from tawasul_intake.adapters.registry import FileRegistry
from tawasul_intake.adapters.repository import SERVICE, IntakeUnitOfWork
from tawasul_intake.app.handlers import TrackingPolicy, forget_tracking
from tawasul_intake.app.ports import CodeSender, Documents, Registry, UnitOfWork
from tawasul_intake.entrypoints.events import on_status_changed
from tawasul_intake.entrypoints.grpc import ACCESS, IntakeServicer
from tawasul_intake.settings import IntakeSettings

SERVICE_NAME = intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name


def _utc_now() -> datetime:
    return datetime.now(UTC)


def tracking_policy(settings: IntakeSettings) -> TrackingPolicy:
    return TrackingPolicy(
        secret=settings.tracking_code_secret.encode(),
        per_caller=settings.tracking_per_caller_per_hour,
        per_request=settings.tracking_per_request_per_hour,
    )


def servicer(
    settings: IntakeSettings,
    *,
    uow: Callable[[], UnitOfWork],
    documents: Documents,
    registry: Registry,
    sender: CodeSender,
    now: Callable[[], datetime] = _utc_now,
) -> IntakeServicer:
    return IntakeServicer(
        uow=uow,
        documents=documents,
        registry=registry,
        sender=sender,
        catalog=load_catalog(),
        calendar=load_working_calendar(settings),
        tracking=tracking_policy(settings),
        trusted_forwarders=settings.tracking_trusted_forwarders,
        now=now,
        new_number=lambda: new_request_number(secrets.randbelow),
    )


def subscriptions(uow: Callable[[], UnitOfWork]) -> Subscriptions:
    """Review's status changes, one by one, into the tracking view."""
    return Subscriptions().each(REQUEST_STATUS_CHANGED, on_status_changed(uow))


def grpc_server(settings: IntakeSettings, service: IntakeServicer) -> GrpcServer:
    return GrpcServer(
        settings.grpc_address,
        Gate.from_settings(settings, {SERVICE_NAME: ACCESS}),
        lambda s: intake_pb2_grpc.add_IntakeServiceServicer_to_server(service, s),
        tls=settings.tls,
        limits=ServerLimits.of(settings),
    )


async def build(settings: IntakeSettings) -> Runtime:
    plumbing = build_plumbing(settings, service=SERVICE, outbox=tables.outbox, inbox=tables.inbox)

    def uow() -> IntakeUnitOfWork:
        return IntakeUnitOfWork(plumbing.database)

    subscriptions(uow).subscribe(plumbing.consumer)
    docs_channel = open_channel(settings.docs_address, settings.tls)
    notify_channel = open_channel(settings.notify_address, settings.tls)
    sender = GrpcCodeSender(notify_channel, deadline_seconds=settings.notify_deadline_seconds)
    service = servicer(
        settings,
        uow=uow,
        documents=GrpcDocuments(docs_channel, deadline_seconds=settings.docs_deadline_seconds),
        registry=FileRegistry.from_file(settings.registry_file),
        sender=sender,
    )
    runtime = plumbing.runtime(grpc_server(settings, service))
    runtime.shutdown[:0] = [docs_channel.close, sender.drain, notify_channel.close]
    policy = tracking_policy(settings)

    async def forget() -> bool:
        return await forget_tracking(uow=uow(), policy=policy, now=_utc_now())

    runtime.loops.append(lambda: every(settings.prune_seconds, forget, name="tracking pruning"))
    return runtime
