"""Composition root: the only place review's adapters are built and wired."""

from __future__ import annotations

import grpc
from tawasul.review.v1 import review_pb2, review_pb2_grpc
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.plumbing import build_plumbing
from tawasul_platform.service import Runtime
from tawasul_platform.topics import APPLICANT_ACTIONS, REQUEST_ROUTED

from tawasul_review.adapters import tables
from tawasul_review.adapters.docs import GrpcDocuments
from tawasul_review.adapters.repository import SERVICE, ReviewUnitOfWork
from tawasul_review.entrypoints.events import on_applicant_action, on_routed
from tawasul_review.entrypoints.grpc import ReviewServicer
from tawasul_review.settings import ReviewSettings


async def build(settings: ReviewSettings) -> Runtime:
    plumbing = build_plumbing(settings, service=SERVICE, outbox=tables.outbox)

    def uow() -> ReviewUnitOfWork:
        return ReviewUnitOfWork(plumbing.sessions)

    plumbing.consumer.subscribe(REQUEST_ROUTED, on_routed(uow))
    plumbing.consumer.subscribe(APPLICANT_ACTIONS, on_applicant_action(uow))
    docs_channel = grpc.aio.insecure_channel(settings.docs_address)
    servicer = ReviewServicer(
        uow=uow,
        documents=GrpcDocuments(docs_channel, deadline_seconds=settings.docs_deadline_seconds),
        secret=settings.identity_secret,
    )
    server = GrpcServer(
        settings.grpc_address,
        [review_pb2.DESCRIPTOR.services_by_name["ReviewService"].full_name],
        lambda s: review_pb2_grpc.add_ReviewServiceServicer_to_server(servicer, s),
    )
    runtime = plumbing.runtime(server)

    async def close_docs_channel() -> None:
        await docs_channel.close()

    runtime.shutdown.insert(0, close_docs_channel)
    return runtime
