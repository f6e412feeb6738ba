"""Composition root: the only place routing's adapters are built and wired.

`servicer` and `subscriptions` take the adapters as arguments, so the service tier builds the
real servicer and event handlers on a real database without Kafka; `build` gives them the
process's plumbing.
"""

from __future__ import annotations

from collections.abc import Callable

from tawasul.routing.v1 import routing_pb2, routing_pb2_grpc
from tawasul_platform.authz import Gate
from tawasul_platform.consumer import Subscriptions
from tawasul_platform.grpc import GrpcServer, ServerLimits
from tawasul_platform.plumbing import build_plumbing
from tawasul_platform.service import Runtime
from tawasul_platform.staff import on_reviewers_recorded
from tawasul_platform.topics import (
    APPLICANT_ACTIONS,
    REQUEST_STATUS_CHANGED,
    REQUEST_SUBMITTED,
    STAFF_REVIEWERS,
)

from tawasul_routing.adapters import tables
from tawasul_routing.adapters.repository import SERVICE, RoutingUnitOfWork
from tawasul_routing.adapters.rules import load_rules
from tawasul_routing.app.ports import UnitOfWork
from tawasul_routing.domain.rules import RoutingRules
from tawasul_routing.entrypoints.events import on_applicant_action, on_status_changed, on_submitted
from tawasul_routing.entrypoints.grpc import ACCESS, RoutingServicer
from tawasul_routing.settings import RoutingSettings

SERVICE_NAME = routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].full_name


def servicer(
    settings: RoutingSettings,
    *,
    uow: Callable[[], UnitOfWork],
    rules: RoutingRules | None = None,
) -> RoutingServicer:
    return RoutingServicer(uow=uow, rules=rules or load_rules())


def subscriptions(uow: Callable[[], UnitOfWork], rules: RoutingRules) -> Subscriptions:
    """Submissions decided a poll's worth at once; transfers and follow-ups one by one; and
    which departments review's records leave each reviewer in."""
    return (
        Subscriptions()
        .batches(REQUEST_SUBMITTED, on_submitted(uow, rules))
        .each(REQUEST_STATUS_CHANGED, on_status_changed(uow, rules), locks_requests=True)
        .each(APPLICANT_ACTIONS, on_applicant_action(uow, rules), locks_requests=True)
        .table(STAFF_REVIEWERS, on_reviewers_recorded(uow))
    )


def grpc_server(settings: RoutingSettings, service: RoutingServicer) -> GrpcServer:
    return GrpcServer(
        settings.grpc_address,
        Gate.from_settings(settings, {SERVICE_NAME: ACCESS}),
        lambda s: routing_pb2_grpc.add_RoutingServiceServicer_to_server(service, s),
        tls=settings.tls,
        limits=ServerLimits.of(settings),
    )


async def build(settings: RoutingSettings) -> Runtime:
    plumbing = build_plumbing(settings, service=SERVICE, outbox=tables.outbox, inbox=tables.inbox)
    rules = load_rules()

    def uow() -> RoutingUnitOfWork:
        return RoutingUnitOfWork(plumbing.database)

    subscriptions(uow, rules).subscribe(plumbing.consumer)
    return plumbing.runtime(grpc_server(settings, servicer(settings, uow=uow, rules=rules)))
