"""RoutingService over gRPC: where a request was routed and why, and where one would go."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
from tawasul.routing.v1 import routing_pb2, routing_pb2_grpc
from tawasul_platform.authz import STAFF, Rule
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.events import timestamp
from tawasul_platform.grpc import caller

from tawasul_routing.app import handlers
from tawasul_routing.app.ports import UnitOfWork
from tawasul_routing.domain.rules import Attributes, RoutingRules

Context = grpc.aio.ServicerContext[Any, Any]

# Routing is for the office's staff; a decision only for its department's (the handler).
ACCESS: dict[str, Rule] = {"GetDecision": STAFF, "ExplainRoute": STAFF}


class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    def __init__(self, *, uow: Callable[[], UnitOfWork], rules: RoutingRules) -> None:
        self._uow = uow
        self._rules = rules

    async def GetDecision(
        self, request: routing_pb2.GetDecisionRequest, context: Context
    ) -> routing_pb2.GetDecisionResponse:
        try:
            request_id = uuid.UUID(request.request_id)
        except ValueError as exc:
            raise InvalidArgument({"request_id": "not a request id"}) from exc
        d = await handlers.get_decision(uow=self._uow(), request_id=request_id, reader=caller())
        return routing_pb2.GetDecisionResponse(
            decision=routing_pb2.RoutingDecision(
                request_id=str(d.request.request_id),
                department_code=d.department,
                queue=d.queue,
                rule=d.rule,
                decided_at=timestamp(d.decided_at),
                priority=d.priority,
                transfer_reason=d.transfer_reason,
            )
        )

    async def ExplainRoute(
        self, request: routing_pb2.ExplainRouteRequest, context: Context
    ) -> routing_pb2.ExplainRouteResponse:
        route = handlers.explain_route(
            rules=self._rules,
            request=Attributes(
                sub_service_code=request.sub_service_code,
                applicant_kind=request.applicant_kind,
                subject_nationality=request.subject_nationality,
                channel=request.channel,
                fields=dict(request.fields),
                follow_up_count=request.follow_up_count,
            ),
        )
        return routing_pb2.ExplainRouteResponse(
            department_code=route.department,
            queue=route.queue,
            priority=route.priority,
            rule=route.rule,
            explanation=route.explanation,
        )
