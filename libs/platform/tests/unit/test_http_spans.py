"""An HTTP request's SERVER span (the channels' gateway): named by the route's template,
continuing the caller's traceparent, and the trace context its calls carry on."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tawasul_platform import tracing

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


def test_the_span_continues_the_callers_trace_and_is_named_by_the_route(
    spans: InMemorySpanExporter,
) -> None:
    span, entered = tracing.enter_http_span("POST", CALLER)
    inside = tracing.active_traceparent()
    tracing.leave_http_span(
        span, entered, method="POST", route="/api/v1/requests/{request_number}", status=201
    )

    (done,) = spans.get_finished_spans()
    assert done.name == "POST /api/v1/requests/{request_number}"
    assert done.kind == SpanKind.SERVER
    assert done.parent is not None
    assert (f"{done.context.trace_id:032x}", f"{done.parent.span_id:016x}") == (
        CALLER_TRACE,
        CALLER_SPAN,
    )
    assert dict(done.attributes or {}) == {
        "http.request.method": "POST",
        "http.route": "/api/v1/requests/{request_number}",
        "http.response.status_code": 201,
    }
    assert done.status.status_code == StatusCode.UNSET
    # What the request's own calls carry: this span, in the caller's trace.
    assert inside == f"00-{CALLER_TRACE}-{done.context.span_id:016x}-01"
    assert tracing.active_traceparent() is None  # left: no current span


@pytest.mark.parametrize("caller", [None, "", "00-not-a-traceparent-01"])
def test_without_a_valid_traceparent_the_span_starts_a_trace(
    spans: InMemorySpanExporter, caller: str | None
) -> None:
    span, entered = tracing.enter_http_span("GET", caller)
    tracing.leave_http_span(span, entered, method="GET", route=None, status=404)

    (done,) = spans.get_finished_spans()
    assert (done.name, done.parent) == ("GET", None)
    assert "http.route" not in (done.attributes or {})
    assert done.status.status_code == StatusCode.UNSET  # the caller's mistake


def test_a_server_error_fails_the_span_and_a_vanished_client_has_no_status(
    spans: InMemorySpanExporter,
) -> None:
    span, entered = tracing.enter_http_span("GET", None)
    tracing.fail(span, RuntimeError("broken"))
    tracing.leave_http_span(span, entered, method="GET", route="/api/v1/catalog", status=500)
    span, entered = tracing.enter_http_span("GET", None)
    tracing.leave_http_span(span, entered, method="GET", route="/api/v1/catalog", status=None)

    failed, gone = spans.get_finished_spans()
    assert failed.status.status_code == StatusCode.ERROR
    assert (failed.attributes or {})["http.response.status_code"] == 500
    assert [event.name for event in failed.events] == ["exception"]
    assert gone.status.status_code == StatusCode.UNSET
    assert "http.response.status_code" not in (gone.attributes or {})


def test_a_probe_makes_no_span_and_its_calls_carry_no_trace(
    spans: InMemorySpanExporter,
) -> None:
    span, entered = tracing.enter_http_span("GET", CALLER, probe=True)
    assert trace.get_current_span() is span
    assert tracing.active_traceparent() is None
    tracing.leave_http_span(span, entered, method="GET", route="/healthz", status=200)
    assert spans.get_finished_spans() == ()


def test_spans_on_the_console_are_one_json_object_a_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    provider = tracing.configure_tracing("intake", console=True)
    try:
        with tracing.tracer().start_as_current_span("tawasul.intake.v1.IntakeService/Submit"):
            pass
        tracing.flush(provider)
    finally:
        tracing.reset()
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(s["name"], s["resource"]["attributes"]["service.name"]) for s in printed] == [
        ("tawasul.intake.v1.IntakeService/Submit", "intake")
    ]


def test_a_process_that_exports_nowhere_records_no_span_but_still_passes_ids_on() -> None:
    tracing.configure_tracing("intake")
    try:
        with tracing.tracer().start_as_current_span("tawasul.intake.v1.IntakeService/Submit") as s:
            assert not s.is_recording()
            context = s.get_span_context()
            assert not context.trace_flags.sampled  # what its callees follow
            assert tracing.active_traceparent() == (
                f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
            )
            assert context.trace_id != 0
    finally:
        tracing.reset()


def sampled(traceparent: str | None) -> bool:
    assert traceparent is not None
    return bool(int(traceparent.rsplit("-", 1)[1], 16) & 0x01)


def test_a_process_that_exports_nowhere_starts_its_own_traces_unsampled() -> None:
    """A timer's event starts a trace: a process that exports nowhere must not ask every
    consumer downstream to record spans for it."""
    tracing.configure_tracing("notify")
    try:
        assert not sampled(tracing.new_traceparent())
        assert not sampled(tracing.current_traceparent("r1"))  # no span is current
    finally:
        tracing.reset()


def test_a_process_that_exports_starts_its_own_traces_sampled() -> None:
    provider = tracing.configure_tracing("notify", console=True)
    try:
        assert sampled(tracing.new_traceparent())
    finally:
        provider.shutdown()
        tracing.reset()


async def metadata_sent(method: str) -> dict[str, str]:
    """The metadata a unary call through the platform's client interceptor carries."""
    sent: dict[str, str] = {}

    async def continuation(details: grpc.aio.ClientCallDetails, request: object) -> Any:
        sent.update((k, v) for k, v in details.metadata or () if isinstance(v, str))
        return AnsweredOk()

    details = grpc.aio.ClientCallDetails(method, 5.0, grpc.aio.Metadata(), None, None)
    await tracing.ClientTracing().intercept_unary_unary(continuation, details, object())
    return sent


class AnsweredOk:
    async def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.OK


async def test_a_tool_that_never_configured_tracing_leaves_the_sampling_to_its_callee() -> None:
    """The benchmark's load generator and the tests' clients call through the platform's
    channels without configuring tracing: a traceparent of theirs would decide for intake
    whether to record (sampled, every call recorded in a stack that exports nothing;
    unsampled, no call recorded in one that exports)."""
    assert tracing.TRACEPARENT not in await metadata_sent("/t.S/M")
    tracing.configure_tracing("gateway")
    try:
        assert tracing.TRACEPARENT in await metadata_sent("/t.S/M")
    finally:
        tracing.reset()
    assert tracing.TRACEPARENT not in await metadata_sent("/t.S/M")
