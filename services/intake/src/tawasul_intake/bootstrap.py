"""Composition root: the only place intake's adapters are built and wired."""

from __future__ import annotations

import grpc
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul_platform.catalog import load_catalog
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.plumbing import build_plumbing
from tawasul_platform.service import Runtime
from tawasul_platform.topics import REQUEST_STATUS_CHANGED

from tawasul_intake.adapters import tables
from tawasul_intake.adapters.docs import GrpcDocuments
from tawasul_intake.adapters.repository import SERVICE, IntakeUnitOfWork
from tawasul_intake.entrypoints.events import on_status_changed
from tawasul_intake.entrypoints.grpc import IntakeServicer
from tawasul_intake.settings import IntakeSettings


async def build(settings: IntakeSettings) -> Runtime:
    plumbing = build_plumbing(settings, service=SERVICE, outbox=tables.outbox)

    def uow() -> IntakeUnitOfWork:
        return IntakeUnitOfWork(plumbing.sessions)

    plumbing.consumer.subscribe(REQUEST_STATUS_CHANGED, on_status_changed(uow))
    docs_channel = grpc.aio.insecure_channel(settings.docs_address)
    servicer = IntakeServicer(
        uow=uow,
        documents=GrpcDocuments(docs_channel, deadline_seconds=settings.docs_deadline_seconds),
        catalog=load_catalog(),
        secret=settings.identity_secret,
    )
    server = GrpcServer(
        settings.grpc_address,
        [intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name],
        lambda s: intake_pb2_grpc.add_IntakeServiceServicer_to_server(servicer, s),
    )
    runtime = plumbing.runtime(server)
    runtime.shutdown.insert(0, docs_channel.close)
    return runtime
