"""P1, SubmitRequest against a bare grpc.aio echo of the same bytes, and P6, every service's
resident memory idle and at its peak under P1's load, in MB (10^6 bytes) as the issue gives
its targets: 120 MiB would be 125.8 MB."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from tawasul_devstack.stack import Stack, StackConfig

from bench.cpu import Footprint
from bench.report import Figure
from bench.runs import (
    ARRIVED,
    CPU_DETAIL,
    LoadFailed,
    LoadResult,
    Settings,
    bench_process,
    load_spec,
    rate_shown,
    run_load,
    why,
)

RSS_SAMPLE_SECONDS = 0.25
# P6's targets, MB.
IDLE_MB, LOADED_MB = 120, 250
# How long P1's submissions may take to all reach review after its load.
DRAINED_BOUND_SECONDS = 180.0


def rss_mb(pid: int | None) -> float | None:
    """Resident memory (VmRSS, which /proc gives in KiB) of a process, in MB."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None
    return None


@contextlib.asynccontextmanager
async def echo_server(config: StackConfig) -> AsyncIterator[str]:
    """bench.echo in a process of its own; yields its address."""
    process = await bench_process(
        "bench.echo",
        *("--state-dir", str(config.state_dir), "--port-base", str(config.port_base)),
        stdin=None,
        stderr=None,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if not line.startswith(b"port "):
            raise LoadFailed(f"the echo server did not start (it said {line!r})")
        yield f"127.0.0.1:{int(line.split()[1])}"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def all_in_review(config: StackConfig, ids: set[str], bound: float) -> float | None:
    """Seconds until every one of these requests has its work item in review (None: not
    within `bound`)."""
    started = time.monotonic()
    left = set(ids)
    conn = await asyncpg.connect(
        host=str(config.pg_socket_dir), user="postgres", database="tawasul_review"
    )
    try:
        while left:
            for row in await conn.fetch(ARRIVED, list(left)):
                left.discard(row["id"])
            if not left:
                break
            if time.monotonic() - started > bound:
                return None
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return round(time.monotonic() - started, 2)


class RssPeak:
    """Samples every service's resident memory while a load runs; keeps each one's peak."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.peak: dict[str, float | None] = dict.fromkeys(pids)
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            for name, pid in self.pids.items():
                now = rss_mb(pid)
                if now is not None:
                    self.peak[name] = max(now, self.peak[name] or 0.0)
            await asyncio.sleep(RSS_SAMPLE_SECONDS)

    async def __aenter__(self) -> RssPeak:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def p1_and_p6(
    config: StackConfig, settings: Settings, pids: dict[str, int | None]
) -> tuple[list[Figure], LoadResult | None]:
    p1 = Figure(
        "P1",
        f"SubmitRequest requests/s, {settings.concurrency} in flight, mutual TLS, citizen token",
        "≥ 0.5× the echo",
        unit="requests/s",
    )
    idle = {name: rss_mb(pid) for name, pid in pids.items()}
    bound = {
        "concurrency": settings.concurrency,
        "count": settings.p1_requests,
        "warmup": settings.p1_warmup,
        "seconds": settings.p1_seconds,
    }
    submit: LoadResult | None = None
    loaded: dict[str, float | None] = dict.fromkeys(pids)
    try:
        async with echo_server(config) as address:
            echo = await run_load(load_spec(config, "echo", echo_address=address, **bound))
        submitted: set[str] = set()
        with Footprint(Stack(config)) as used:
            async with RssPeak(pids) as peak:
                submit = await run_load(
                    load_spec(config, "submit", emit_sent=True, **bound),
                    on_line=lambda line: submitted.add(str(line["sent"])),
                )
        loaded = peak.peak
        # Like the "200 submissions took 5.7–9.2 s to all reach their queue".
        drained = await all_in_review(config, submitted, DRAINED_BOUND_SECONDS)
        p1.value = round(submit.rate, 1)
        p1.shown = rate_shown(submit)
        p1.baseline = round(echo.rate, 1)
        p1.baseline_shown = "bare grpc.aio echo, same bytes: " + rate_shown(echo)
        p1.detail = {
            "submit": submit.summary(),
            "echo": echo.summary(),
            "all_in_review_seconds_after_the_load": drained,
            # Where the CPU went (the load process's warm-up and set-up included).
            CPU_DETAIL: used.summary(submit.count),
        }
        if submit.count == 0 or echo.count == 0:
            p1.fail(submit.first_error or echo.first_error)
        else:
            p1.ratio = round(submit.rate / echo.rate, 3)
            p1.judge(p1.ratio >= 0.5)
    except Exception as exc:  # one figure that cannot be measured does not end the run
        p1.fail(why(exc))
    figures = [p1]
    for name, pid in pids.items():
        figures.append(p6(name, "idle", idle[name], running=pid is not None))
        figures.append(p6(name, "loaded", loaded[name], running=pid is not None))
    return figures, submit


def p6(name: str, phase: str, mb: float | None, *, running: bool) -> Figure:
    """One service's resident memory, idle or its peak under load (None: no sample), against
    the issue's limit in MB."""
    limit = IDLE_MB if phase == "idle" else LOADED_MB
    figure = Figure(
        f"P6 {name} {phase}",
        f"RSS of {name} " + ("idle" if phase == "idle" else "under P1's load (peak)"),
        f"≤ {limit} MB",
        unit="MB",
    )
    if mb is None:
        figure.fail("no sample" if running else f"{name} is not running")
    else:
        figure.value = round(mb, 1)
        figure.shown = f"{mb:.1f} MB"
        figure.judge(mb <= limit)
    return figure
