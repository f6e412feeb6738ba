"""tracing.extract reads what the platform writes itself, and agrees with OpenTelemetry's
propagator on every traceparent, well-formed or not."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from tawasul_platform import tracing

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "carrier",
    [
        {"traceparent": f"00-{TRACE}-{SPAN}-01"},
        {"traceparent": f"00-{TRACE}-{SPAN}-00", "event_type": "tawasul.requests.routed"},
        {"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "vendor=opaque"},
        {"traceparent": f"00-{'0' * 32}-{SPAN}-01"},
        {"traceparent": f"00-{TRACE}-{'0' * 16}-01"},
        {"traceparent": f"00-{TRACE.upper()}-{SPAN}-01"},
        {"traceparent": f"ff-{TRACE}-{SPAN}-01"},
        {"traceparent": f"01-{TRACE}-{SPAN}-01-future"},
        {"traceparent": f"00-{TRACE}-{SPAN}-01-future"},
        {"traceparent": f" 00-{TRACE}-{SPAN}-01\t"},
        {"traceparent": "garbage"},
        {"traceparent": ""},
        {},
    ],
)
def test_the_context_is_the_one_opentelemetry_extracts(carrier: dict[str, str]) -> None:
    ours = trace.get_current_span(tracing.extract(carrier)).get_span_context()
    theirs = trace.get_current_span(
        TraceContextTextMapPropagator().extract(carrier)
    ).get_span_context()
    assert ours == theirs
    assert (ours.trace_state, ours.is_remote) == (theirs.trace_state, theirs.is_remote)


def test_what_the_platform_writes_is_read_back() -> None:
    written = tracing.new_traceparent()
    context = trace.get_current_span(
        tracing.extract({tracing.TRACEPARENT: written})
    ).get_span_context()
    assert tracing.traceparent(context) == written
