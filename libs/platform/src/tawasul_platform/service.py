"""The process around a service: `migrate` and `serve`, with an orderly SIGTERM shutdown."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import uvloop
from pydantic import ValidationError
from pydantic_settings import SettingsError

from tawasul_platform import kafka_uvloop, metrics, tracing
from tawasul_platform.consumer import EventConsumer
from tawasul_platform.faults import is_transient
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.logs import configure_logging
from tawasul_platform.settings import CannotStart, ServiceSettings, problems
from tawasul_platform.vitals import VITALS, Vitals

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


@dataclass
class Runtime:
    """What a service's bootstrap builds for `serve`."""

    grpc: GrpcServer
    # One per consumer group; a service whose work splits by dependency (notify's channels)
    # runs a group for each, so one dependency's outage does not hold up the others.
    consumers: list[EventConsumer] = field(default_factory=list)
    # Run while health is NOT_SERVING (e.g. producer.start()); one that meets an outage is
    # retried until the dependency is back.
    startup: list[Hook] = field(default_factory=list)
    # Loops that run until cancelled (e.g. the outbox relay); one that ends stops the process.
    loops: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # Run last, after the server, the consumers and the loops have stopped.
    shutdown: list[Hook] = field(default_factory=list)


# A dependency that is down at start is tried again after 0.5 s, 1 s, 2 s … at most this often,
# so its outage costs a few log lines a minute, not a flood.
STARTUP_BACKOFF_SECONDS = 0.5
MAX_STARTUP_BACKOFF_SECONDS = 30.0


async def serve(runtime: Runtime, *, grace: float, budget: float, vitals: Vitals = VITALS) -> int:
    """Runs the service until SIGTERM/SIGINT (exit 0) or until a loop ends (exit 1).

    gRPC listens at once, with health NOT_SERVING while the startup hooks and consumers wait
    for their dependencies (Kafka, object storage); it turns SERVING once all have started.
    On SIGTERM: health NOT_SERVING, then in-flight RPCs and event handlers get `grace` seconds
    side by side, then the loops and the shutdown hooks; past `budget` seconds in all, the
    process exits anyway (exit 1), whatever still hangs. `vitals` says the same to the
    kubelet's HTTP probes, and hears the event loop beat while it runs.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    beating = asyncio.create_task(vitals.keep_beating())
    try:
        return await _run(runtime, stop, vitals, grace=grace, budget=budget)
    finally:
        beating.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _run(
    runtime: Runtime, stop: asyncio.Event, vitals: Vitals, *, grace: float, budget: float
) -> int:
    stopping = asyncio.create_task(stop.wait())
    await runtime.grpc.start()
    starting = asyncio.create_task(_start(runtime))
    loops: list[asyncio.Task[None]] = []
    code = 0
    await asyncio.wait([stopping, starting], return_when=asyncio.FIRST_COMPLETED)
    if starting.done() and starting.exception() is not None:
        log.error("startup failed; shutting down: %r", starting.exception())
        code = 1
    elif starting.done():
        loops = starting.result()
        await runtime.grpc.serving(True)
        vitals.serving = True
        log.info("serving")
        done, _ = await asyncio.wait([stopping, *loops], return_when=asyncio.FIRST_COMPLETED)
        if stopping not in done:
            code = 1
            log.error("a background loop ended; shutting down: %r", [t.exception() for t in done])
    log.info("shutting down")
    vitals.serving = False
    # A thread, so that it fires even when a hook blocks the event loop itself.
    watchdog = threading.Timer(budget, _abandon, args=(budget,))
    watchdog.daemon = True
    watchdog.start()
    try:
        await _shut_down(runtime, grace, [starting, stopping, *loops])
    finally:
        watchdog.cancel()
    log.info("stopped")
    return code


async def _start(runtime: Runtime) -> list[asyncio.Task[None]]:
    for hook in runtime.startup:
        await _until_up(hook, _name(hook))
    for consumer in runtime.consumers:
        metrics.subscribed(consumer.group)
        await _until_up(consumer.start, f"consumer group {consumer.group}")
    return [asyncio.create_task(make()) for make in runtime.loops]


async def _until_up(hook: Hook, what: str) -> None:
    """Runs `hook` until it succeeds; an outage is retried, any other error is raised."""
    delay = STARTUP_BACKOFF_SECONDS
    while True:
        try:
            await hook()
            return
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("%s: a dependency is unavailable, retrying in %.1f s: %r", what, delay, exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_STARTUP_BACKOFF_SECONDS)


async def _shut_down(runtime: Runtime, grace: float, tasks: list[asyncio.Task[Any]]) -> None:
    # GrpcServer.stop turns health NOT_SERVING before it drains; consumers drain meanwhile.
    stopped = await asyncio.gather(
        runtime.grpc.stop(grace),
        *(consumer.stop() for consumer in runtime.consumers),
        return_exceptions=True,
    )
    for task in tasks:
        task.cancel()
    ended = await asyncio.gather(*tasks, return_exceptions=True)
    for hook in runtime.shutdown:
        try:
            await hook()
        except Exception as exc:
            # The others still run: a failed close must not keep the producer from flushing.
            log.error("shutdown hook %s failed: %r", _name(hook), exc)
    failures = [r for r in (*stopped, *ended) if isinstance(r, Exception)]
    if failures:
        log.error("errors while draining: %r", failures)


def _abandon(budget: float) -> None:
    log.error("shutdown took longer than %.0f s; exiting with work still running", budget)
    logging.shutdown()
    os._exit(1)


def _cannot_start(name: str, why: CannotStart) -> NoReturn:
    print(f"tawasul-{name}: cannot start: {why}", file=sys.stderr)
    logging.shutdown()
    # At once: what the build made before it (a Kafka producer) would log, unclosed, on the way.
    os._exit(1)


def _name(hook: Hook) -> str:
    return getattr(hook, "__qualname__", repr(hook))


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
    try:
        config = settings()
    except (ValidationError, SettingsError) as exc:
        print(f"tawasul-{name}: bad settings:", *problems(exc), sep="\n  ", file=sys.stderr)
        sys.exit(2)
    configure_logging(name, config.log_level, config.log_format)
    if args.command == "migrate":
        # Imported here: alembic is 100 modules and some 5 MB that a serving process never needs.
        from tawasul_platform.migrations import upgrade

        upgrade(migrations, config.database_url)
        return

    try:
        if config.metrics_address:
            metrics.serve(config.metrics_address)
    except CannotStart as exc:
        _cannot_start(name, exc)

    async def main() -> int:
        try:
            runtime = await build(config)
        except CannotStart as exc:
            _cannot_start(name, exc)
        # What the imports and the build made lives as long as the process (some 130k objects):
        # out of the collector's generations, the full collections that a busy consumer
        # triggers no longer walk it every time (about a tenth of a consumer's CPU otherwise).
        gc.collect()
        gc.freeze()
        return await serve(
            runtime, grace=config.shutdown_grace_seconds, budget=config.shutdown_budget_seconds
        )

    provider = tracing.configure_tracing(
        name, otlp_endpoint=config.otlp_endpoint, console=config.trace_console
    )
    # uvloop: every call and event is many small socket reads and writes (gRPC, PostgreSQL,
    # Kafka), which its loop does with less overhead than asyncio's own.
    kafka_uvloop.install()
    code = uvloop.run(main())
    tracing.flush(provider)
    sys.exit(code)
