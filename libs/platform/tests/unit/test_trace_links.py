"""A later step of a request (a reviewer's decision) is a trace of its own that links back to
the span that filed it, kept with the request as a traceparent."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tawasul_platform import tracing

FILED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_the_current_span_links_to_the_span_that_filed_the_request(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.tracer().start_as_current_span("DecideRequest"):
        tracing.link(FILED)
    (decided,) = spans.get_finished_spans()
    linked = [(f"{k.context.trace_id:032x}", f"{k.context.span_id:016x}") for k in decided.links]
    assert linked == [("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")]
    assert f"{decided.context.trace_id:032x}" != "0af7651916cd43dd8448eb211c80319c"


def test_nothing_is_linked_for_a_request_filed_outside_any_trace(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.tracer().start_as_current_span("DecideRequest"):
        tracing.link("")
        tracing.link("not a traceparent")
    (decided,) = spans.get_finished_spans()
    assert list(decided.links) == []


def test_a_request_keeps_the_span_it_was_queued_in_and_nothing_outside_one(
    spans: InMemorySpanExporter,
) -> None:
    assert tracing.request_traceparent("r-1") == ""
    with tracing.tracer().start_as_current_span("request.routed process") as span:
        kept = tracing.request_traceparent("r-1")
    assert kept == tracing.traceparent(span.get_span_context())
