"""OpenTelemetry traces across HTTP, gRPC, the outbox and Kafka, in W3C trace context.

One `traceparent` travels the channel's HTTP header → gRPC metadata → outbox row → Kafka
headers → the consumer, and each hop is a span: the gateway's SERVER span of an HTTP request,
the server's span of a call, the relay's PRODUCER span per published row (child of the span
that wrote the row), the consumer's CONSUMER span per event (child of the producer's), and a
CLIENT span per call to another service. Spans go to OTLP when
TAWASUL_OTLP_ENDPOINT is set, to stdout when TAWASUL_TRACE_CONSOLE is, and nowhere otherwise.
A process that sends them nowhere records none (it starts its traces unsampled, which its
callees follow), but the ids are still made and propagated: logs and events carry them.

Export runs in the BatchSpanProcessor's thread: a call only records its span in memory.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, NamedTuple

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, ParentBased, Sampler
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"

_PROPAGATOR = TraceContextTextMapPropagator()
# The traceparent this platform writes (`traceparent`): version 00, lower-case hex.
_CANONICAL = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


# A process that sends its spans nowhere records none and starts its traces unsampled, so
# that its callees and consumers record none for them either; a sampled caller is followed.
_UNEXPORTED = ParentBased(ALWAYS_OFF)


def _exporting_nowhere() -> TracerProvider:
    # The SDK's default provider would sample and record every trace.
    return TracerProvider(sampler=_UNEXPORTED, shutdown_on_exit=False)


# Until configure_tracing (or a test's `use`) runs, the process takes no part in tracing. Tools
# such as the benchmark's load generator and the tests' clients call through the platform's
# channels: their calls carry no traceparent, so each callee samples them as calls from
# outside, neither forced on nor off by a tool that exports nothing.
_tracer: Tracer = _exporting_nowhere().get_tracer("tawasul")
# How this process samples the traces it starts (new_traceparent).
_sampler: Sampler = _UNEXPORTED
_taking_part = False


class _BatchSpans(NamedTuple):
    """In a batch handled at once, the span of each of its events, by the event's request and
    by its own id: what the events written for it descend from (tawasul_platform.consumer,
    events.envelope)."""

    by_request: Mapping[str, SpanContext]
    by_event: Mapping[str, SpanContext]


_batch_spans: ContextVar[_BatchSpans | None] = ContextVar("tawasul_batch_spans", default=None)
# The event of that batch its handler is applying by itself (`applying`).
_applying: ContextVar[str | None] = ContextVar("tawasul_applying", default=None)

# Probes (a pod's every few seconds) and tooling: a span each would drown the journeys.
UNTRACED = ("/grpc.health.v1.Health/", "/grpc.reflection.")

# Server answers that are the server's failure, not the caller's (OpenTelemetry's rpc
# semantic conventions); the caller's mistakes leave the span unset.
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def configure_tracing(
    service: str, *, otlp_endpoint: str = "", console: bool = False
) -> TracerProvider:
    """Makes this process's spans; call once at start. The caller flushes at exit (`flush`)."""
    processors: list[SpanProcessor] = []
    if otlp_endpoint:
        # Imported only when used: the exporter pulls in its own protobuf modules.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        processors.append(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, timeout=5)))
    if console:
        # One JSON object a line, like the logs it lands among.
        console_exporter = ConsoleSpanExporter(
            service_name=service,
            out=sys.stdout,  # the one of now: the default is bound at import
            formatter=lambda span: span.to_json(indent=None) + "\n",
        )
        processors.append(BatchSpanProcessor(console_exporter))
    # No atexit shutdown: with the collector gone it would retry past the shutdown budget.
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.namespace": "tawasul"}),
        # Recording a span nobody exports cost every event and call its attributes and events.
        sampler=ParentBased(ALWAYS_ON) if processors else _UNEXPORTED,
        shutdown_on_exit=False,
    )
    for processor in processors:
        provider.add_span_processor(processor)
    use(provider)
    return provider


def use(provider: TracerProvider) -> None:
    """Spans from now on come from `provider` (tests give one with an in-memory exporter)."""
    global _tracer, _sampler, _taking_part
    _tracer = provider.get_tracer("tawasul")
    _sampler = provider.sampler
    _taking_part = True


def reset() -> None:
    """Back to taking no part in tracing, as before configure_tracing (tests)."""
    global _taking_part
    use(_exporting_nowhere())
    _taking_part = False


def flush(provider: TracerProvider, timeout_seconds: float = 2.0) -> None:
    """Exports what is still queued, waiting at most `timeout_seconds` (process exit)."""
    provider.force_flush(int(timeout_seconds * 1000))


def tracer() -> Tracer:
    return _tracer


def extract(carrier: Mapping[str, str]) -> Context:
    """The context a traceparent in `carrier` continues; an empty one when it has none.

    Every event is extracted twice (the relay, the consumer): a version-00 traceparent and no
    tracestate, what this platform writes, is read with one precompiled match; anything else
    goes to OpenTelemetry's propagator, whose checks (and regex cache lookups) cost twice as
    much and give the same context for these."""
    value = carrier.get(TRACEPARENT)
    found = _CANONICAL.fullmatch(value) if value and "tracestate" not in carrier else None
    if found is None:
        return _PROPAGATOR.extract(carrier)
    trace_id, span_id, flags = found.groups()
    context = SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(flags, 16)),
    )
    if not context.is_valid:
        return _PROPAGATOR.extract(carrier)
    return trace.set_span_in_context(NonRecordingSpan(context))


def continued(
    name: str,
    parent: Context,
    kind: SpanKind,
    attributes: Callable[[], Mapping[str, str | int]],
) -> Span:
    """A span continuing `parent`, not made current. A trace its caller chose not to sample
    is recorded by nobody downstream (the samplers here follow a remote parent's choice), so
    it continues in the parent's own ids, without a sampler, new ids or attributes: the
    relay and the consumers start one such span per event."""
    context = trace.get_current_span(parent).get_span_context()
    if context.is_valid and not context.trace_flags.sampled:
        return NonRecordingSpan(context)
    return _tracer.start_span(name, context=parent, kind=kind, attributes=attributes())


def traceparent(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def active_traceparent() -> str | None:
    """The current span's traceparent; None outside any span (what the channel SDK's calls
    carry: tawasul_sdk's `traceparent=`)."""
    context = trace.get_current_span().get_span_context()
    return traceparent(context) if context.is_valid else None


def new_traceparent() -> str:
    """A new trace, sampled only if this process samples the traces it starts: a process
    that exports nowhere must not have every consumer downstream record spans for it."""
    trace_id = int.from_bytes(secrets.token_bytes(16)) or 1
    decision = _sampler.should_sample(None, trace_id, "new trace").decision
    sampled = decision is Decision.RECORD_AND_SAMPLE
    return f"00-{trace_id:032x}-{secrets.token_hex(8)}-{'01' if sampled else '00'}"


def current_traceparent(request_id: str = "") -> str:
    """The traceparent for an event of `request_id` written now: in a batch being applied, the
    span of the event its handler is on (`applying`), else of that request's event; else the
    current span; a new trace's when there is none (a timer's job)."""
    context = _request_span(request_id)
    return traceparent(context) if context.is_valid else new_traceparent()


def request_traceparent(request_id: str) -> str:
    """As `current_traceparent`, but "" when no span is current: what a row keeps to link
    later steps of its request back to (`link`)."""
    context = _request_span(request_id)
    return traceparent(context) if context.is_valid else ""


def link(origin: str) -> None:
    """Links the current span to the span `origin` (a traceparent) names. A later step of a
    journey, such as a reviewer's decision, is a trace of its own (another person's call) that
    points back to the trace that filed the request."""
    context = trace.get_current_span(extract({TRACEPARENT: origin})).get_span_context()
    current = trace.get_current_span()
    if context.is_valid and current.is_recording():
        current.add_link(context)


def _request_span(request_id: str) -> SpanContext:
    batch = _batch_spans.get()
    if batch is not None:
        event = _applying.get()
        context = batch.by_event.get(event) if event is not None else None
        if context is None:
            context = batch.by_request.get(request_id)
        if context is not None:
            return context
    return trace.get_current_span().get_span_context()


@contextmanager
def per_request(
    by_request: Mapping[str, SpanContext], by_event: Mapping[str, SpanContext]
) -> Iterator[None]:
    """While a batch's handler runs: the events it writes for a request descend from that
    request's own consumed event, not from whichever event of the batch came last; from the
    event it is on, when it applies them one at a time and says which (`applying`)."""
    token = _batch_spans.set(_BatchSpans(by_request, by_event))
    try:
        yield
    finally:
        _batch_spans.reset(token)


@contextmanager
def applying(event_id: str) -> Iterator[None]:
    """While a batch's handler applies that one of its events by itself: what it writes
    descends from that event's span. Two events of one request in a batch (a follow-up and a
    cancellation in one poll) each write their own effects, which otherwise all joined the
    trace of the request's last event in the batch."""
    token = _applying.set(event_id)
    try:
        yield
    finally:
        _applying.reset(token)


def enter_server_span(
    full_method: str, metadata: grpc.aio.Metadata | None
) -> tuple[Span, Token[Context]]:
    """A call's SERVER span, continuing the caller's traceparent, made current; attached by
    hand rather than by `with` so that the call's frame keeps one try block for everything."""
    if full_method.startswith(UNTRACED):
        span: Span = trace.INVALID_SPAN
        return span, otel_context.attach(trace.set_span_in_context(span))
    carrier = {k: v for k, v in metadata or () if k == TRACEPARENT and isinstance(v, str)}
    span = _tracer.start_span(
        full_method,
        context=_PROPAGATOR.extract(carrier),
        kind=SpanKind.SERVER,
        attributes=rpc_attributes(full_method),
    )
    return span, otel_context.attach(trace.set_span_in_context(span))


def leave_server_span(span: Span, entered: Token[Context], code: grpc.StatusCode) -> None:
    otel_context.detach(entered)
    set_code(span, code, errors=SERVER_ERRORS)
    span.end()


def enter_http_span(
    method: str, caller_traceparent: str | None, *, probe: bool = False
) -> tuple[Span, Token[Context]]:
    """An HTTP request's SERVER span, continuing the caller's `traceparent` header, made
    current; none for a `probe` (a pod's health checks would drown the journeys). Named by the
    method alone until `leave_http_span` knows the route: the path is never recorded, it may
    hold people's data."""
    if probe:
        span: Span = trace.INVALID_SPAN
        return span, otel_context.attach(trace.set_span_in_context(span))
    carrier = {TRACEPARENT: caller_traceparent} if caller_traceparent else {}
    span = _tracer.start_span(
        method,
        context=_PROPAGATOR.extract(carrier),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method},
    )
    return span, otel_context.attach(trace.set_span_in_context(span))


def leave_http_span(
    span: Span, entered: Token[Context], *, method: str, route: str | None, status: int | None
) -> None:
    """Ends the span as "<method> <route template>" (OpenTelemetry's HTTP conventions), with
    the answer's status; None when there was none (the client went away). 5xx is the server's
    failure; 4xx the caller's, and leaves the span's status unset."""
    otel_context.detach(entered)
    if route is not None:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, str(status)))
    span.end()


def ids() -> tuple[str, str] | None:
    """The current span's trace and span id in hex, for log lines; None outside any span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def fail(span: Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))


def rpc_attributes(full_method: str) -> dict[str, str]:
    """ "/package.Service/Method" as OpenTelemetry's rpc attributes."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}


def set_code(span: Span, code: grpc.StatusCode, *, errors: frozenset[grpc.StatusCode]) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in errors:
        span.set_status(Status(StatusCode.ERROR, code.name))


# A client sees every answer but OK as a failed call.
CLIENT_ERRORS = frozenset(grpc.StatusCode) - {grpc.StatusCode.OK}

_Continuation = Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]]


class ClientTracing(grpc.aio.UnaryUnaryClientInterceptor):
    """A CLIENT span around each unary call to another service, its traceparent in the call's
    metadata: the callee's server span continues this trace. A process that takes no part in
    tracing calls as it is."""

    async def intercept_unary_unary(
        self,
        continuation: _Continuation,
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        details = client_call_details
        if not _taking_part:
            return await continuation(details, request)
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        span = _tracer.start_span(method, kind=SpanKind.CLIENT, attributes=rpc_attributes(method))
        metadata = grpc.aio.Metadata(
            *tuple(details.metadata or ()), (TRACEPARENT, traceparent(span.get_span_context()))
        )
        traced = grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )
        try:
            call = await continuation(traced, request)
            # Waits for the answer without raising: the caller still gets the call to await.
            set_code(span, await call.code(), errors=CLIENT_ERRORS)
            return call
        except BaseException as exc:
            fail(span, exc)
            raise
        finally:
            span.end()
