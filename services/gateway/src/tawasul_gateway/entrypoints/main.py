"""`tawasul-gateway [serve]`: the HTTP gateway on uvicorn."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError
from tawasul_platform import tracing
from tawasul_platform.logs import configure_logging
from tawasul_platform.settings import CannotStart, problems

from tawasul_gateway.bootstrap import build
from tawasul_gateway.entrypoints import metrics
from tawasul_gateway.settings import GatewaySettings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tawasul-gateway", description=__doc__)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"])
    parser.parse_args(argv)
    try:
        settings = GatewaySettings()  # from the environment
    except (ValidationError, SettingsError) as exc:
        print("tawasul-gateway: bad settings:", *problems(exc), sep="\n  ", file=sys.stderr)
        return 2
    # The services' log line (JSON, with the current span's trace_id and span_id).
    configure_logging("gateway", settings.log_level)
    if settings.metrics_address:
        try:
            metrics.serve(settings.metrics_address)
        except CannotStart as exc:
            print(f"tawasul-gateway: cannot start: {exc}", file=sys.stderr)
            return 1
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
    provider = tracing.configure_tracing(
        "gateway", otlp_endpoint=settings.otlp_endpoint, console=settings.trace_console
    )
    uvicorn.Server(config).run()
    tracing.flush(provider)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
