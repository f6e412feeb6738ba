"""Composition root: the only place routing's adapters are built and wired."""

from __future__ import annotations

from tawasul.routing.v1 import routing_pb2, routing_pb2_grpc
from tawasul_platform.catalog import load_catalog
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.plumbing import build_plumbing
from tawasul_platform.service import Runtime
from tawasul_platform.topics import REQUEST_SUBMITTED

from tawasul_routing.adapters import tables
from tawasul_routing.adapters.repository import SERVICE, RoutingUnitOfWork
from tawasul_routing.entrypoints.events import on_submitted
from tawasul_routing.entrypoints.grpc import RoutingServicer
from tawasul_routing.settings import RoutingSettings


async def build(settings: RoutingSettings) -> Runtime:
    plumbing = build_plumbing(settings, service=SERVICE, outbox=tables.outbox)

    def uow() -> RoutingUnitOfWork:
        return RoutingUnitOfWork(plumbing.sessions)

    plumbing.consumer.subscribe(REQUEST_SUBMITTED, on_submitted(uow, load_catalog()))
    servicer = RoutingServicer(uow=uow, secret=settings.identity_secret)
    server = GrpcServer(
        settings.grpc_address,
        [routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].full_name],
        lambda s: routing_pb2_grpc.add_RoutingServiceServicer_to_server(servicer, s),
    )
    return plumbing.runtime(server)
