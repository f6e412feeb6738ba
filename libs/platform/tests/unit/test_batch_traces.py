"""Which trace an event written during a consumed batch continues."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aiokafka.structs import ConsumerRecord
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tawasul.events.v1 import events_pb2
from tawasul_platform import tracing
from tawasul_platform.consumer import EventConsumer
from tawasul_platform.events import envelope


def record(request_id: str, traceparent: str, event_id: str = "") -> ConsumerRecord[bytes, bytes]:
    value = events_pb2.Envelope(event_id=event_id or f"e-{request_id}", request_id=request_id)
    return ConsumerRecord(
        topic="t",
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=request_id.encode(),
        value=value.SerializeToString(),
        checksum=None,
        serialized_key_size=2,
        serialized_value_size=0,
        headers=[(tracing.TRACEPARENT, traceparent.encode())],
    )


def written_for(request_id: str) -> str:
    return envelope(
        topic="t.routed",
        event_type="tawasul.requests.routed",
        producer="test",
        request_id=request_id,
        occurred_at=datetime.now(UTC),
        fill=events_pb2.Envelope(),
    ).headers[tracing.TRACEPARENT]


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


def test_in_a_batch_each_request_s_event_continues_its_own_trace() -> None:
    first, second = tracing.new_traceparent(), tracing.new_traceparent()
    records = [record("r1", first), record("r2", second)]
    events = [events_pb2.Envelope.FromString(r.value or b"") for r in records]
    consumer = EventConsumer(bootstrap="127.0.0.1:1", group="g", producer=cast(Any, None))
    with consumer._spans(records, events):
        written = {r: written_for(r) for r in ("r1", "r2")}
    assert trace_id(written["r1"]) == trace_id(first)
    assert trace_id(written["r2"]) == trace_id(second)


def test_two_events_of_a_request_applied_one_at_a_time_each_continue_their_own_trace() -> None:
    """A batch handler applying a poll's events one by one (review's applicant actions: a
    follow-up, then a cancellation of the same request) says which it is on: what each
    writes continues its own event's trace, not the request's last event's."""
    follow_up, cancel = tracing.new_traceparent(), tracing.new_traceparent()
    records = [record("r1", follow_up, event_id="e1"), record("r1", cancel, event_id="e2")]
    events = [events_pb2.Envelope.FromString(r.value or b"") for r in records]
    consumer = EventConsumer(bootstrap="127.0.0.1:1", group="g", producer=cast(Any, None))
    written = []
    with consumer._spans(records, events):
        for event in events:
            with tracing.applying(event.event_id):
                written.append(written_for("r1"))
        # Written for the batch as a whole: the request's event, as ever (the last of them).
        whole = written_for("r1")
    assert [trace_id(w) for w in written] == [trace_id(follow_up), trace_id(cancel)]
    assert trace_id(whole) == trace_id(cancel)


def test_an_event_written_outside_any_span_starts_a_trace_of_its_own() -> None:
    one, other = written_for("r1"), written_for("r1")
    assert trace_id(one) != trace_id(other)
    assert len(one.split("-")) == 4


def test_a_trace_nobody_samples_continues_in_its_callers_ids_and_records_nothing(
    spans: InMemorySpanExporter,
) -> None:
    unsampled = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-00"
    span = tracing.continued(
        "t publish",
        tracing.extract({tracing.TRACEPARENT: unsampled}),
        SpanKind.PRODUCER,
        lambda: pytest.fail("attributes of a span nobody records"),
    )
    span.end()
    assert tracing.traceparent(span.get_span_context()) == unsampled
    assert not span.is_recording()
    assert spans.get_finished_spans() == ()


def test_a_sampled_trace_continues_in_a_span_of_its_own_with_its_attributes(
    spans: InMemorySpanExporter,
) -> None:
    sampled = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    span = tracing.continued(
        "t publish",
        tracing.extract({tracing.TRACEPARENT: sampled}),
        SpanKind.PRODUCER,
        lambda: {"messaging.destination.name": "t"},
    )
    span.end()
    (finished,) = spans.get_finished_spans()
    assert finished.context is not None
    assert finished.parent is not None
    assert (f"{finished.context.trace_id:032x}", f"{finished.parent.span_id:016x}") == (
        "ab" * 16,
        "cd" * 8,
    )
    assert finished.context.span_id != finished.parent.span_id
    assert finished.attributes == {"messaging.destination.name": "t"}
    assert finished.kind is SpanKind.PRODUCER


def test_an_event_applied_alone_in_a_trace_nobody_samples_writes_in_its_callers_ids(
    spans: InMemorySpanExporter,
) -> None:
    unsampled = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-00"
    alone = record("r1", unsampled)
    consumer = EventConsumer(bootstrap="127.0.0.1:1", group="g", producer=cast(Any, None))
    with consumer._span(alone, events_pb2.Envelope.FromString(alone.value or b"")):
        written = written_for("r1")
    assert written == unsampled
    assert spans.get_finished_spans() == ()


def test_an_event_applied_alone_in_a_sampled_trace_writes_from_a_consumer_span_of_its_own(
    spans: InMemorySpanExporter,
) -> None:
    sampled = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    alone = record("r1", sampled)
    consumer = EventConsumer(bootstrap="127.0.0.1:1", group="g", producer=cast(Any, None))
    with consumer._span(alone, events_pb2.Envelope.FromString(alone.value or b"")):
        written = written_for("r1")
    (finished,) = spans.get_finished_spans()
    assert finished.context is not None
    assert finished.parent is not None
    assert finished.kind is SpanKind.CONSUMER
    assert f"{finished.parent.span_id:016x}" == "cd" * 8
    assert written == f"00-{'ab' * 16}-{finished.context.span_id:016x}-01"
    assert finished.attributes is not None
    assert finished.attributes["messaging.message.id"] == "e-r1"
