"""The process around a service: `migrate` and `serve`, with an orderly SIGTERM shutdown."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tawasul_platform.consumer import EventConsumer
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.logs import configure_logging
from tawasul_platform.migrations import upgrade
from tawasul_platform.settings import ServiceSettings

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


@dataclass
class Runtime:
    """What a service's bootstrap builds for `serve`."""

    grpc: GrpcServer
    # One per consumer group; a service whose work splits by dependency (notify's channels)
    # runs a group for each, so one dependency's outage does not hold up the others.
    consumers: list[EventConsumer] = field(default_factory=list)
    # Run before the server starts (e.g. producer.start()).
    startup: list[Hook] = field(default_factory=list)
    # Loops that run until cancelled (e.g. the outbox relay); one that ends stops the process.
    loops: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # Run last, after the server, the consumers and the loops have stopped.
    shutdown: list[Hook] = field(default_factory=list)


async def serve(runtime: Runtime, grace: float) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for hook in runtime.startup:
        await hook()
    await runtime.grpc.start()
    for consumer in runtime.consumers:
        await consumer.start()
    loops = [asyncio.create_task(make()) for make in runtime.loops]
    stopping = asyncio.create_task(stop.wait())
    await runtime.grpc.serving(True)
    log.info("serving")
    done, _ = await asyncio.wait([stopping, *loops], return_when=asyncio.FIRST_COMPLETED)
    code = 0 if stopping in done else 1
    if code:
        log.error("a background loop ended; shutting down: %r", [t.exception() for t in done])
    log.info("shutting down")
    await runtime.grpc.stop(grace)
    for consumer in runtime.consumers:
        await consumer.stop()
    for task in (*loops, stopping):
        task.cancel()
    await asyncio.gather(*loops, stopping, return_exceptions=True)
    for hook in runtime.shutdown:
        await hook()
    log.info("stopped")
    return code


S = TypeVar("S", bound=ServiceSettings)


def run(
    *,
    name: str,
    settings: Callable[[], S],
    build: Callable[[S], Awaitable[Runtime]],
    migrations: Path,
) -> None:
    """The `tawasul-<name>` command: `migrate` applies migrations, `serve` runs the service."""
    parser = argparse.ArgumentParser(prog=f"tawasul-{name}")
    parser.add_argument("command", choices=["serve", "migrate"])
    args = parser.parse_args()
    config = settings()
    configure_logging(name, config.log_level)
    if args.command == "migrate":
        upgrade(migrations, config.database_url)
        return

    async def main() -> int:
        return await serve(await build(config), config.shutdown_grace_seconds)

    sys.exit(asyncio.run(main()))
