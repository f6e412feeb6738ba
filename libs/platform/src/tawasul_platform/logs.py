"""One log format for every service: a JSON object a line, which log shippers take as is.

Every line has `timestamp` (UTC, ISO 8601), `level`, `service`, `logger` and `event` (the
message), the current span's `trace_id` and `span_id` when there is one (gRPC calls, consumed
events: see tracing.py), and what the platform bound for the work in progress (`event_id`,
`request_id` of a consumed event). Messages are the code's own %-formatted text, so what keeps
personal data out of them is unchanged: values are never logged, only ids and counts.
The stdlib `logging` calls of the services and their libraries all come through here.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from tawasul_platform import tracing

LogFormat = Literal["json", "console"]
# The levels `logging` knows by name (settings.LogLevelSetting takes them in any case).
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def configure_logging(service: str, level: LogLevel, log_format: LogFormat = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(service, log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request it makes at INFO: one line per SMS sent.
    for noisy in ("aiokafka", "faststream", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def formatter(service: str, log_format: LogFormat = "json") -> logging.Formatter:
    """The formatter of every line: JSON, or aligned key=value text for people (`console`)."""

    def named(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        event["service"] = service
        return event

    chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        named,
        _trace,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # A traceback becomes the `exception` field: JSON stays one line per record.
            *([structlog.processors.format_exc_info] if log_format == "json" else []),
            renderer,
        ],
    )


def _trace(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    found = tracing.ids()
    if found is not None:
        event["trace_id"], event["span_id"] = found
    return event
