"""One trace follows a request from the channel's HTTP call across the services, through
the outbox and Kafka.

The test is the OTLP collector: a gRPC TraceService on loopback in this process, whose
address intake, routing, review, notify and the channels' gateway are restarted with
(TAWASUL_OTLP_ENDPOINT), and restarted without at the end. A request is filed, routed and
decided; the spans each process exported must join up: every hop across Kafka is a CONSUMER
span whose parent is the PRODUCER span of the relay that published the event, itself the child
of the span that wrote the outbox row. Filed through the gateway, the trace's root is the
gateway's span of the HTTP request.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from tawasul.review.v1 import review_pb2
from tawasul_devstack.journey import Clients, eventually, new_resident
from tawasul_devstack.stack import Stack
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role
from tawasul_platform.topics import REQUEST_ROUTED, REQUEST_STATUS_CHANGED, REQUEST_SUBMITTED

TIMEOUT = DEFAULT_DEADLINE_SECONDS
# The gateway last: a client of intake and docs.
TRACED = ("intake", "routing", "review", "notify", "gateway")
DEPARTMENT = "visas"
SUBMIT_RPC = "/tawasul.intake.v1.IntakeService/SubmitRequest"
VISA_FIELDS = {"visa_type": "exit_reentry", "visa_number": "6012345678"}
SERVER, PRODUCER, CONSUMER = (
    trace_pb2.Span.SPAN_KIND_SERVER,
    trace_pb2.Span.SPAN_KIND_PRODUCER,
    trace_pb2.Span.SPAN_KIND_CONSUMER,
)


@dataclass(frozen=True)
class Exported:
    service: str
    span: trace_pb2.Span

    def attribute(self, key: str) -> str:
        for found in self.span.attributes:
            if found.key == key:
                return str(found.value.string_value)
        return ""


class Collector:
    """The OTLP/gRPC TraceService, keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Exported] = []

    async def export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, _: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            names = [a.value.string_value for a in resource.resource.attributes]
            keys = [a.key for a in resource.resource.attributes]
            service = dict(zip(keys, names, strict=True)).get("service.name", "")
            for scope in resource.scope_spans:
                self.spans.extend(Exported(service, span) for span in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def register(self, server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            self.export,
            trace_service_pb2.ExportTraceServiceRequest.FromString,
            trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": handler}
                ),
            )
        )

    def consumers(self, service: str, topic: str, request_id: str) -> list[Exported]:
        """`service`'s CONSUMER spans of `request_id`'s events on `topic` (one per group)."""
        return [
            e
            for e in self.spans
            if e.service == service
            and e.span.kind == CONSUMER
            and e.attribute("messaging.destination.name") == topic
            and e.attribute("tawasul.request_id") == request_id
        ]

    def parent(self, child: Exported) -> Exported | None:
        """`child`'s parent span, once exported."""
        trace_id, span_id = child.span.trace_id, child.span.parent_span_id
        found = [e for e in self.spans if (e.span.trace_id, e.span.span_id) == (trace_id, span_id)]
        return found[0] if found else None

    def lineage(self, span: Exported) -> list[Exported] | None:
        """`span`, its parent, and so on up to its trace's root; None until all are exported."""
        chain = [span]
        while chain[-1].span.parent_span_id:
            parent = self.parent(chain[-1])
            if parent is None:
                return None
            chain.append(parent)
        return chain


@pytest.fixture(scope="module")
async def collector(stack: Stack) -> AsyncIterator[Collector]:
    """One collector for the module's tests: the processes are restarted once for them."""
    collector = Collector()
    server = grpc.aio.server()
    collector.register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()

    def restart() -> None:
        for name in TRACED:
            stack.stop_service(name)
            stack.start_service(name)

    # Services and the gateway inherit the test's environment (StackConfig.service_env,
    # gateway_env); a short batch delay makes spans arrive within the test's polling rather
    # than after 5 s.
    environment = pytest.MonkeyPatch()
    environment.setenv("TAWASUL_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    environment.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    try:
        await asyncio.to_thread(restart)
        yield collector
    finally:
        environment.undo()
        # Stopping flushes their last spans here: the collector serves until they are down.
        await asyncio.to_thread(restart)
        await server.stop(1)


def consumed(
    collector: Collector, service: str, topic: str, request_id: str, *, writer: str = ""
) -> Callable[[], Awaitable[Exported | None]]:
    """A probe for a CONSUMER span of `service` for `request_id`'s event on `topic`, one whose
    event the span named `writer` wrote when given."""

    async def probe() -> Exported | None:
        for span in collector.consumers(service, topic, request_id):
            wrote = writer_of(collector, span)
            if wrote is not None and (not writer or wrote.span.name == writer):
                return span
        return None

    return probe


def writer_of(collector: Collector, consumer: Exported) -> Exported | None:
    """The span that wrote the outbox row `consumer`'s event came from, through the relay's
    PRODUCER span of the same service, in the same trace; None until both are exported."""
    published = collector.parent(consumer)
    if published is None:
        return None
    assert published.span.kind == PRODUCER
    assert published.span.name == f"{consumer.attribute('messaging.destination.name')} publish"
    writer = collector.parent(published)
    assert writer is None or writer.service == published.service
    return writer


def hop(collector: Collector, consumer: Exported) -> Exported:
    writer = writer_of(collector, consumer)
    assert writer is not None
    return writer


async def test_one_trace_spans_a_request_from_intake_through_routing_review_and_notify(
    clients: Clients, collector: Collector
) -> None:
    # A resident cancels their own visa: the iqama number names the account holder.
    resident_id = new_resident()
    request = await clients.submit(
        clients.token(resident_id, Role.RESIDENT),
        key=str(uuid.uuid4()),
        sub_service="visas.cancel-visa",
        description="Please cancel my exit re-entry visa, I am not travelling any more",
        documents=[],
        mobile="0551234567",
        fields={**VISA_FIELDS, "iqama_number": resident_id},
    )
    rid = request.request_id

    # Filed: intake's call → routing → review, and notify's confirmation: one trace.
    routed = await eventually(consumed(collector, "routing", REQUEST_SUBMITTED, rid))
    submit = hop(collector, routed)
    assert (submit.service, submit.span.kind, submit.span.name) == ("intake", SERVER, SUBMIT_RPC)
    queued = await eventually(consumed(collector, "review", REQUEST_ROUTED, rid))
    assert hop(collector, queued).span.span_id == routed.span.span_id
    confirmed = await eventually(consumed(collector, "notify", REQUEST_SUBMITTED, rid))
    assert hop(collector, confirmed).span.span_id == submit.span.span_id
    for span in (routed, queued, confirmed):
        assert span.span.trace_id == submit.span.trace_id, span.service

    # Decided: the reviewer's call is a trace of its own, through to notify and intake,
    # linked to the filing's.
    reviewer = clients.token("E6101", Role.REVIEWER, frozenset({DEPARTMENT}))
    await clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=rid), timeout=TIMEOUT, metadata=bearer(reviewer)
    )
    await clients.review.DecideRequest(
        review_pb2.DecideRequestRequest(
            request_id=rid,
            decision=review_pb2.DECISION_REJECT,
            message="The visa number does not match our records",
            reason_code="data-mismatch",
        ),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    decide_rpc = "/tawasul.review.v1.ReviewService/DecideRequest"
    told = await eventually(
        consumed(collector, "notify", REQUEST_STATUS_CHANGED, rid, writer=decide_rpc)
    )
    tracked = await eventually(
        consumed(collector, "intake", REQUEST_STATUS_CHANGED, rid, writer=decide_rpc)
    )
    decide = hop(collector, told)
    assert (decide.service, decide.span.kind) == ("review", SERVER)
    assert hop(collector, tracked).span.span_id == decide.span.span_id
    assert decide.span.trace_id != submit.span.trace_id
    # It links back to the span that queued the request, in the filing's trace.
    assert [(k.trace_id, k.span_id) for k in decide.span.links] == [
        (queued.span.trace_id, queued.span.span_id)
    ]


async def test_a_filing_through_the_gateway_is_one_trace_from_its_http_request(
    clients: Clients, stack: Stack, collector: Collector
) -> None:
    resident_id = new_resident()
    resident = clients.token(resident_id, Role.RESIDENT)
    async with httpx.AsyncClient(base_url=stack.config.gateway_url, timeout=TIMEOUT) as http:
        created = await http.post(
            "/api/v1/requests",
            json={
                "idempotency_key": str(uuid.uuid4()),
                "sub_service_code": "visas.cancel-visa",
                "description": "Please cancel my exit re-entry visa, I am staying in the Kingdom",
                "contact": {"mobile": "0551234567", "locale": "en"},
                "fields": {**VISA_FIELDS, "iqama_number": resident_id},
            },
            headers={"Authorization": f"Bearer {resident}"},
        )
    assert created.status_code == 201, created.text
    rid = created.json()["request"]["request_id"]

    # Intake's call, routing, review and notify as for a call over gRPC ...
    routed = await eventually(consumed(collector, "routing", REQUEST_SUBMITTED, rid))
    submit = hop(collector, routed)
    assert (submit.service, submit.span.kind, submit.span.name) == ("intake", SERVER, SUBMIT_RPC)
    queued = await eventually(consumed(collector, "review", REQUEST_ROUTED, rid))
    assert hop(collector, queued).span.span_id == routed.span.span_id
    confirmed = await eventually(consumed(collector, "notify", REQUEST_SUBMITTED, rid))
    assert hop(collector, confirmed).span.span_id == submit.span.span_id

    # ... under the gateway's span of the HTTP request: the trace's root.
    async def lineage() -> list[Exported] | None:
        return collector.lineage(submit)

    chain = await eventually(lineage, what="intake's span's ancestors exported")
    root = chain[-1]
    assert (root.service, root.span.kind, root.span.name) == (
        "gateway",
        SERVER,
        "POST /api/v1/requests",
    )
    # The route's template, the method and the answer: nothing of the person or the request.
    attributes = {a.key: a.value for a in root.span.attributes}
    assert attributes.keys() == {"http.request.method", "http.route", "http.response.status_code"}
    assert attributes["http.route"].string_value == "/api/v1/requests"
    assert attributes["http.response.status_code"].int_value == 201
    assert {e.span.trace_id for e in (*chain, routed, queued, confirmed)} == {root.span.trace_id}
