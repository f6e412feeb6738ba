"""`tawasul-gateway [serve]`: the HTTP gateway on uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import structlog
import uvicorn
from pydantic import ValidationError
from structlog.typing import EventDict, WrappedLogger

from tawasul_gateway.bootstrap import build
from tawasul_gateway.entrypoints import metrics
from tawasul_gateway.settings import GatewaySettings


def configure_logging(level: str) -> None:
    """The services' log line: one JSON object with timestamp, level, service, logger and
    event (tawasul_platform.logs, which the gateway does not import)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                _gateway,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(ensure_ascii=False),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _gateway(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event["service"] = "gateway"
    return event


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tawasul-gateway", description=__doc__)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"])
    parser.parse_args(argv)
    try:
        settings = GatewaySettings()  # from the environment
    except ValidationError as exc:
        print(f"tawasul-gateway: bad settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if settings.metrics_address:
        metrics.serve(settings.metrics_address)
    config = uvicorn.Config(
        build(settings),
        host=settings.http_host,
        port=settings.http_port,
        loop="uvloop",
        # Access lines come from the app, with route templates: paths may hold people's data.
        access_log=False,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
