"""One log format for every service: key=value lines that log shippers parse."""

from __future__ import annotations

import logging
import sys


def configure_logging(service: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            f"ts=%(asctime)s service={service} level=%(levelname)s logger=%(name)s msg=%(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request it makes at INFO: one line per SMS sent.
    for noisy in ("aiokafka", "faststream", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
