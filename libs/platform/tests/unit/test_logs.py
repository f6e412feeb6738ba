"""The log line: one JSON object with the fields shippers and the PII test read."""

from __future__ import annotations

import json
import logging

from structlog.contextvars import bound_contextvars
from tawasul_platform import tracing
from tawasul_platform.logs import formatter


def line(message: str, *args: object, exc: bool = False) -> str:
    record = logging.LogRecord("tawasul.test", logging.WARNING, __file__, 1, message, args, None)
    if exc:
        try:
            raise ValueError("broken")
        except ValueError:
            import sys

            record.exc_info = sys.exc_info()
    return formatter("intake").format(record)


def test_a_line_is_one_json_object_with_the_service_and_the_level() -> None:
    parsed = json.loads(line("published %d outbox rows", 3))
    assert parsed["event"] == "published 3 outbox rows"
    assert parsed["level"] == "warning"
    assert parsed["service"] == "intake"
    assert parsed["logger"] == "tawasul.test"
    assert parsed["timestamp"].endswith("Z")
    assert "trace_id" not in parsed


def test_inside_a_span_the_line_names_its_trace_and_what_was_bound() -> None:
    with (
        tracing.tracer().start_as_current_span("work") as span,
        bound_contextvars(request_id="r1", event_id="e1"),
    ):
        parsed = json.loads(line("applied"))
    context = span.get_span_context()
    assert parsed["trace_id"] == f"{context.trace_id:032x}"
    assert parsed["span_id"] == f"{context.span_id:016x}"
    assert (parsed["request_id"], parsed["event_id"]) == ("r1", "e1")


def test_a_traceback_stays_inside_the_one_line() -> None:
    text = line("unexpected error in %s", "/x.Y/Z", exc=True)
    assert "\n" not in text
    assert "ValueError: broken" in json.loads(text)["exception"]


def test_arabic_is_written_as_itself() -> None:
    assert "طلب" in line("طلب")
