"""Every benchmark of issue 12 against its baseline, measured in the same run.

    uv run python -m bench                  # starts a new stack of its own (TAWASUL_BENCH_DIR)
    uv run python -m bench --running        # uses the stack of TAWASUL_STACK_DIR/PORT_BASE
    uv run python -m bench --smoke --results-dir /tmp/r --doc /tmp/p.md   # every one, tiny

Prints one table (figure, this project, its baseline in the same run, the ratio, the target,
met or not), writes it as JSON under bench/results/<UTC time>.json and into
docs/performance.md with the machine. Each load runs in a process of its own (bench/load.py)
on loopback, bounded in count and time, after a warm-up; latencies come from HdrHistogram.

Without --running the run starts a stack in a state directory of its own (.state/bench, or
TAWASUL_BENCH_DIR), emptied first: no figure pays for an earlier run's data (earlier runs'
loads had left 634k work items where P5 and P8 seed their "10k"). It stops that stack at the
end (unless --keep) and keeps its data until the next run; a running stack (--running) is left
as it was. A target not met is no error: the exit code is 0 once every figure was measured, 1
when one failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from hdrh.histogram import HdrHistogram
from tawasul_devstack.stack import SERVICES, Stack, StackConfig, StackError

from bench import hops, p4, p5, p8, report
from bench.cpu import Footprint, cpu_seconds, niceness
from bench.load import LoadSpec, decode_histogram, new_histogram, percentiles_ms, record_seconds
from bench.report import Figure

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
# How often P2 looks for the submitted requests' work items in review's database.
P2_POLL_SECONDS = 0.01
# A request number as intake draws it (tawasul_platform.request_numbers), as SMS texts carry it.
REQUEST_NUMBER = re.compile(r"TW\d{9}")
# The work items of these requests that review has committed (primary-key lookups).
ARRIVED = "SELECT request_id::text AS id FROM work_items WHERE request_id = ANY($1::uuid[])"
RSS_SAMPLE_SECONDS = 0.25
# Where a load's CPU went, by process (bench.cpu.Footprint), in P1's, P2's and P7's detail.
CPU_DETAIL = "cpu_by_process"
# Before each benchmark the services must be quiet (their consumers done with what the one
# before left): together below this share of one core over a second, or this long waited.
QUIET_CORES = 0.15
QUIET_BOUND_SECONDS = 180.0
# Past its own bound in time, a load process gets this long before it is killed.
LOAD_GRACE_SECONDS = 180.0

_log = logging.getLogger("bench")


@dataclass(frozen=True)
class Settings:
    # Submissions at warmup_rate for warmup_seconds before P1, none counted: a stack just
    # started (Kafka's JIT compiler above all) warms as a running office's has.
    warmup_seconds: float = 60.0
    warmup_rate: float = 30.0
    concurrency: int = 16
    # A cap for the echo and SubmitRequest alike; each is also bounded by p1_seconds.
    p1_requests: int = 10000
    p1_warmup: int = 200
    p1_seconds: float = 20.0
    p2_seconds: float = 30.0
    p2_drain_seconds: float = 30.0
    p7_seconds: float = 30.0
    p7_drain_seconds: float = 60.0
    upload_bytes: int = 10 * MIB
    uploads: int = 8
    upload_warmup: int = 2
    settle_seconds: float = 3.0
    # P5: the stored requests it measures at, then grows to; calls of each kind at each size.
    p5_stored: tuple[int, int] = (10_000, 1_000_000)
    p5_calls: int = 2000
    # P8: the same sizes as P5; searches of each kind at each size.
    p8_stored: tuple[int, int] = (10_000, 1_000_000)
    p8_calls: int = 400
    p4_events: int = 100_000


SMOKE = Settings(
    warmup_seconds=1.0,
    warmup_rate=10.0,
    p1_requests=40,
    p1_warmup=8,
    p1_seconds=5.0,
    p2_seconds=2.0,
    p2_drain_seconds=30.0,
    p7_seconds=2.0,
    p7_drain_seconds=30.0,
    upload_bytes=256 * 1024,
    uploads=2,
    upload_warmup=1,
    settle_seconds=0.5,
    p5_stored=(200, 2_000),
    p5_calls=20,
    p8_stored=(200, 2_000),
    p8_calls=10,
    p4_events=500,
)


class LoadFailed(RuntimeError):
    pass


@dataclass
class LoadResult:
    count: int
    errors: int
    first_error: str
    elapsed: float
    histogram: HdrHistogram

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": round(self.elapsed, 3),
            "per_second": round(self.rate, 2),
            **percentiles_ms(self.histogram),
        }


def rss_mib(pid: int | None) -> float | None:
    """Resident memory (VmRSS) of a process, from /proc."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def run_load(
    spec: LoadSpec, on_line: Callable[[dict[str, Any]], None] | None = None
) -> LoadResult:
    """Runs bench.load in a process of its own and waits for its summary."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load",
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdin.write(spec.to_json().encode())
    await process.stdin.drain()
    process.stdin.close()
    errors = asyncio.create_task(process.stderr.read())
    done: dict[str, Any] | None = None

    async def read() -> None:
        nonlocal done
        assert process.stdout is not None
        async for raw in process.stdout:
            line = json.loads(raw)
            if line.get("done"):
                done = line
            elif on_line is not None:
                on_line(line)
        await process.wait()

    try:
        await asyncio.wait_for(read(), spec.seconds + LOAD_GRACE_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise LoadFailed(f"{spec.kind} load ran past its bound and was killed") from None
    stderr = (await errors).decode(errors="replace")
    if process.returncode != 0 or done is None:
        raise LoadFailed(f"{spec.kind} load exited {process.returncode}:\n{stderr[-3000:]}")
    return LoadResult(
        count=int(done["count"]),
        errors=int(done["errors"]),
        first_error=str(done["first_error"]),
        elapsed=float(done["elapsed"]),
        histogram=decode_histogram(done["histogram"]),
    )


@contextlib.asynccontextmanager
async def echo_server(config: StackConfig) -> AsyncIterator[str]:
    """bench.echo in a process of its own; yields its address."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.echo",
        "--state-dir",
        str(config.state_dir),
        "--port-base",
        str(config.port_base),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
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


async def quiet(pids: dict[str, int | None], bound: float) -> float:
    """Waits until the services are quiet, at most `bound` seconds; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        before = sum(cpu_seconds(pid) for pid in pids.values())
        await asyncio.sleep(1.0)
        if sum(cpu_seconds(pid) for pid in pids.values()) - before < QUIET_CORES:
            break
    return round(time.monotonic() - started, 1)


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
                now = rss_mib(pid)
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


def _why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, LoadFailed) else f"{type(exc).__name__}: {exc}"


def _spec(config: StackConfig, kind: str, **more: Any) -> LoadSpec:
    return LoadSpec(kind=kind, state_dir=str(config.state_dir), port_base=config.port_base, **more)


def _rate_shown(result: LoadResult, throughput: str = "") -> str:
    """ "1,234 requests/s (n=…; p50 / p95 / p99 ms)", or `throughput` in place of the rate."""
    p = percentiles_ms(result.histogram)
    errors = f", {result.errors} errors" if result.errors else ""
    return (
        f"{throughput or f'{result.rate:,.0f} requests/s'} (n={result.count}{errors}; "
        f"p50 {p['p50_ms']:.1f} / p95 {p['p95_ms']:.1f} / p99 {p['p99_ms']:.1f} ms)"
    )


async def p1_and_p6(
    config: StackConfig, settings: Settings, pids: dict[str, int | None]
) -> tuple[list[Figure], LoadResult | None]:
    p1 = Figure(
        "P1",
        f"SubmitRequest requests/s, {settings.concurrency} in flight, mutual TLS, citizen token",
        "≥ 0.5× the echo",
        unit="requests/s",
    )
    idle = {name: rss_mib(pid) for name, pid in pids.items()}
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
            echo = await run_load(_spec(config, "echo", echo_address=address, **bound))
        submitted: set[str] = set()
        with Footprint(Stack(config)) as used:
            async with RssPeak(pids) as peak:
                submit = await run_load(
                    _spec(config, "submit", emit_sent=True, **bound),
                    on_line=lambda line: submitted.add(str(line["sent"])),
                )
        loaded = peak.peak
        # Like the "200 submissions took 5.7–9.2 s to all reach their queue".
        drained = await all_in_review(config, submitted, QUIET_BOUND_SECONDS)
        p1.value = round(submit.rate, 1)
        p1.shown = _rate_shown(submit)
        p1.baseline = round(echo.rate, 1)
        p1.baseline_shown = "bare grpc.aio echo, same bytes: " + _rate_shown(echo)
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
        p1.fail(_why(exc))
    figures = [p1]
    for name in pids:
        for phase, value, limit in (("idle", idle[name], 120), ("loaded", loaded[name], 250)):
            figure = Figure(
                f"P6 {name} {phase}",
                f"RSS of {name} " + ("idle" if phase == "idle" else "under P1's load (peak)"),
                f"≤ {limit} MiB",
                unit="MiB",
            )
            if value is None:
                figure.fail(f"{name} is not running" if pids[name] is None else "no sample")
            else:
                figure.value = value
                figure.shown = f"{value:.1f} MiB"
                figure.judge(value <= limit)
            figures.append(figure)
    return figures, submit


# Which of the pending keys have arrived, each with the wall time it was seen at.
Arrivals = Callable[[Collection[str]], Awaitable[dict[str, float]]]


@dataclass
class Followed:
    """Submissions sent at a steady rate, each followed until it arrived somewhere."""

    result: LoadResult
    histogram: HdrHistogram
    backlog: list[int]
    at_end: int
    never: int
    # Each arrived submission's (sent, seen) wall-clock times, for a split of the path.
    arrived: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    def detail(self, rate: float, seconds: float) -> dict[str, Any]:
        return {
            "rate_per_second": rate,
            "seconds": seconds,
            "submitted": self.result.count,
            "submit_errors": self.result.errors,
            "submit_latency": self.result.summary(),
            "arrived": self.histogram.get_total_count() - self.never,
            "never_arrived_within_drain": self.never,
            "backlog_each_second": self.backlog,
            "backlog_at_end_of_load": self.at_end,
            **percentiles_ms(self.histogram),
        }


async def follow(
    spec: LoadSpec, arrivals: Arrivals, *, drain_seconds: float, poll_seconds: float
) -> Followed:
    """Runs the submitting load (emit_sent) and polls `arrivals` until every submission
    arrived or the drain after the load ran out; one never seen counts at the time given up
    (a lower bound, never dropped). The backlog is sampled each second of the load."""
    histogram = new_histogram()
    pending: dict[str, float] = {}
    arrived: dict[str, tuple[float, float]] = {}
    backlog: list[int] = []
    load_done = asyncio.Event()

    def sent(line: dict[str, Any]) -> None:
        pending[str(line["sent"])] = float(line["at"])

    async def poll() -> None:
        last_sample = 0.0
        drain_deadline: float | None = None
        while True:
            if load_done.is_set() and drain_deadline is None:
                drain_deadline = time.monotonic() + drain_seconds
            if pending:
                for key, seen_at in (await arrivals(list(pending))).items():
                    sent_at = pending.pop(key)
                    arrived[key] = (sent_at, seen_at)
                    record_seconds(histogram, seen_at - sent_at)
            measuring = bool(pending or histogram.get_total_count())
            if measuring and not load_done.is_set() and time.monotonic() - last_sample >= 1.0:
                backlog.append(len(pending))
                last_sample = time.monotonic()
            if drain_deadline is not None and (not pending or time.monotonic() > drain_deadline):
                return
            await asyncio.sleep(poll_seconds)

    poller = asyncio.create_task(poll())
    try:
        result = await run_load(spec, on_line=sent)
    except BaseException:
        poller.cancel()
        raise
    at_end = len(pending)
    load_done.set()
    await poller
    given_up = time.time()
    for at in pending.values():
        record_seconds(histogram, given_up - at)
    return Followed(result, histogram, backlog, at_end, len(pending), arrived)


# The open loop falls behind its schedule when every one of its calls is in flight: a run that
# sent less than this share of the rate it was given did not measure that rate.
KEPT_PACE = 0.95


def judge_latency(
    figures: list[tuple[Figure, str, float | None]],
    followed: Followed,
    detail: dict[str, Any],
    rate: float,
) -> None:
    """Each (figure, percentile, limit in ms or None for none): met when within the limit, the
    backlog stayed flat (every submission arrived and none failed) and the load kept `rate`."""
    p = percentiles_ms(followed.histogram)
    result = followed.result
    flat = followed.never == 0 and result.errors == 0
    kept_pace = result.rate >= KEPT_PACE * rate
    detail["sent_per_second"] = round(result.rate, 1)
    note = f"; {followed.never} never arrived" if followed.never else ""
    pace = "" if kept_pace else f", sent at only {result.rate:.1f}/s: intake fell behind"
    for figure, key, limit in figures:
        figure.value = p[key]
        figure.shown = (
            f"{p[key]:.1f} ms (n={result.count}, backlog at end {followed.at_end}{note}{pace})"
            if result.count
            else "no submission answered"
        )
        figure.detail = detail
        if result.count == 0:
            figure.fail(result.first_error)
        elif limit is None:
            figure.status = "—"
        else:
            figure.judge(p[key] <= limit and flat and kept_pace)


def _steady_submissions(
    config: StackConfig, rate: float, seconds: float, sent_as: str = "id"
) -> LoadSpec:
    """SubmitRequest at `rate` for `seconds` (open loop, up to 64 in flight), each submission
    reported as it is answered, for `follow`."""
    return _spec(
        config,
        "submit",
        count=int(rate * seconds) + 1,
        warmup=max(2, int(rate)),
        concurrency=64,
        seconds=seconds,
        rate=rate,
        emit_sent=True,
        sent_as=sent_as,
    )


async def p2(config: StackConfig, settings: Settings, p1_rate: float | None) -> list[Figure]:
    rate = round(p1_rate / 2, 1) if p1_rate else 0.0
    title = (
        f"submit → work item claimable in review, {{}}, at ½ P1's rate ({rate:g}/s) for "
        f"{settings.p2_seconds:g} s (issue: 5 min)"
    )
    fifty = Figure("P2 p50", title.format("p50"), "≤ 50 ms", unit="ms")
    ninety_nine = Figure("P2 p99", title.format("p99"), "≤ 250 ms", unit="ms")
    figures = [fifty, ninety_nine]
    if rate <= 0:
        for f in figures:
            f.fail("no P1 rate to take half of")
        return figures
    spec = _steady_submissions(config, rate, settings.p2_seconds)
    try:
        conn = await asyncpg.connect(
            host=str(config.pg_socket_dir), user="postgres", database="tawasul_review"
        )
    except Exception as exc:
        for f in figures:
            f.fail(_why(exc))
        return figures

    async def in_review(pending: Collection[str]) -> dict[str, float]:
        seen_at = time.time()
        return {row["id"]: seen_at for row in await conn.fetch(ARRIVED, list(pending))}

    try:
        with Footprint(Stack(config)) as used:
            followed = await follow(
                spec,
                in_review,
                drain_seconds=settings.p2_drain_seconds,
                poll_seconds=P2_POLL_SECONDS,
            )
    except Exception as exc:  # one figure that cannot be measured does not end the run
        for f in figures:
            f.fail(_why(exc))
        return figures
    finally:
        await conn.close()
    detail = followed.detail(rate, settings.p2_seconds)
    detail[CPU_DETAIL] = used.summary(followed.result.count)
    try:
        detail["hops"] = await hops.split(config.pg_socket_dir, followed.arrived)
    except Exception as exc:  # the split explains the figure; it never costs it
        detail["hops"] = {"error": _why(exc)}
    judge_latency([(fifty, "p50_ms", 50.0), (ninety_nine, "p99_ms", 250.0)], followed, detail, rate)
    return figures


async def p7(config: StackConfig, settings: Settings, p1_rate: float | None) -> list[Figure]:
    rate = round(p1_rate, 1) if p1_rate else 0.0
    title = (
        f"submission → first SMS at the gateway, {{}}, at P1's rate ({rate:g}/s) for "
        f"{settings.p7_seconds:g} s (issue: 5 min)"
    )
    fifty = Figure("P7 p50", title.format("p50"), "—", unit="ms")
    ninety_nine = Figure("P7 p99", title.format("p99"), "≤ 5 s", unit="ms")
    figures = [fifty, ninety_nine]
    if rate <= 0:
        for f in figures:
            f.fail("no P1 rate to send at")
        return figures
    spec = _steady_submissions(config, rate, settings.p7_seconds, sent_as="number")
    texts = GatewayLog(config.state_dir / "sms-gateway" / "messages.jsonl")

    async def at_the_gateway(pending: Collection[str]) -> dict[str, float]:
        return texts.arrived(pending)

    try:
        with Footprint(Stack(config)) as used:
            followed = await follow(
                spec, at_the_gateway, drain_seconds=settings.p7_drain_seconds, poll_seconds=0.1
            )
    except Exception as exc:  # one figure that cannot be measured does not end the run
        for f in figures:
            f.fail(_why(exc))
        return figures
    detail = followed.detail(rate, settings.p7_seconds)
    detail[CPU_DETAIL] = used.summary(followed.result.count)
    judge_latency(
        [(fifty, "p50_ms", None), (ninety_nine, "p99_ms", 5000.0)], followed, detail, rate
    )
    return figures


class GatewayLog:
    """The SMS gateway stand-in's record of what it received (JSON lines, appended), read from
    where the last look stopped: the request number each text names, first time seen."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = path.stat().st_size if path.exists() else 0
        self._seen: dict[str, float] = {}

    def first_seen(self) -> dict[str, float]:
        if not self._path.exists():
            return self._seen
        with self._path.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        # A line still being written is read again next time.
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for raw in complete.splitlines():
            message = json.loads(raw)
            at = datetime.fromisoformat(message["received_at"]).timestamp()
            for number in REQUEST_NUMBER.findall(message["text"]):
                self._seen.setdefault(number, at)
        return self._seen

    def arrived(self, pending: Collection[str]) -> dict[str, float]:
        """When each of `pending` was first seen, of those seen so far. A look-up per pending
        number: a pass over every text seen since the start took 45 ms a poll at 15,000 texts
        and 184 ms at P7's 62,000, ten polls a second, CPU taken from the stack it measures."""
        seen = self.first_seen()
        return {number: seen[number] for number in pending if number in seen}


async def p3(config: StackConfig, settings: Settings) -> list[Figure]:
    """The upload as channels that know its size send it (the SDK, the gateway with a
    Content-Length), and without the size (stored in parts), against one put_object run."""
    size = settings.upload_bytes
    what = f"{size / MIB:g} MiB upload through docs (stream, checks, hash, store, scan)"
    figures = [
        Figure("P3", f"{what}, size declared, MiB/s", "≥ 0.7× put_object", unit="MiB/s"),
        Figure(
            "P3 size unknown",
            f"{what}, no size declared (stored in 5 MiB parts), MiB/s",
            "≥ 0.7× put_object",
            unit="MiB/s",
        ),
    ]
    bound = {
        "concurrency": 1,
        "count": settings.uploads,
        "warmup": settings.upload_warmup,
        "seconds": 120.0,
        "size_bytes": size,
    }
    try:
        put = await run_load(_spec(config, "put_object", **bound))
        uploads = [await run_load(_spec(config, kind, **bound)) for kind in P3_KINDS]
    except Exception as exc:  # one figure that cannot be measured does not end the run
        for figure in figures:
            figure.fail(_why(exc))
        return figures
    for figure, upload in zip(figures, uploads, strict=True):
        figure.detail = {"upload": upload.summary(), "put_object": put.summary()}
        if upload.count == 0 or put.count == 0:
            figure.fail(upload.first_error or put.first_error)
            continue
        mine, theirs = upload.rate * size / MIB, put.rate * size / MIB
        figure.value = round(mine, 1)
        figure.shown = _rate_shown(upload, f"{mine:.1f} MiB/s")
        figure.baseline = round(theirs, 1)
        figure.baseline_shown = "minio put_object, same bytes, same MinIO: " + _rate_shown(
            put, f"{theirs:.1f} MiB/s"
        )
        figure.ratio = round(mine / theirs, 3)
        figure.judge(figure.ratio >= 0.7)
    return figures


P3_KINDS = ("upload", "upload_unsized")


async def bench(
    config: StackConfig, settings: Settings
) -> tuple[list[Figure], str, dict[str, float]]:
    stack = Stack(config)
    pids = {name: stack.pid(name) for name in SERVICES}
    conn = await asyncpg.connect(host=str(config.pg_socket_dir), user="postgres")
    try:
        postgres_version = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    await asyncio.sleep(settings.settle_seconds)
    # P5 and P8 first: their smaller size is the seeded office alone, not beside the tens of
    # thousands of work items P1's, P2's and P7's loads leave in review's table.
    waited = {"before P5": await quiet(pids, QUIET_BOUND_SECONDS)}
    _log.info("P5: ClaimNext and ListQueue at %d, then at %d stored requests", *settings.p5_stored)
    figures = await p5.p5(
        config,
        *settings.p5_stored,
        settings.p5_calls,
        review_pid=pids["review"],
        cpu_seconds=cpu_seconds,
    )
    waited["before P8"] = await quiet(pids, QUIET_BOUND_SECONDS)
    _log.info("P8: SearchRequests at %d, then at %d stored requests", *settings.p8_stored)
    figures.append(
        await p8.p8(
            config,
            *settings.p8_stored,
            settings.p8_calls,
            review_pid=pids["review"],
            cpu_seconds=cpu_seconds,
        )
    )
    if settings.warmup_seconds > 0:
        _log.info(
            "warm-up: submissions at %g/s for %g s, none counted",
            settings.warmup_rate,
            settings.warmup_seconds,
        )
        await run_load(_steady_submissions(config, settings.warmup_rate, settings.warmup_seconds))
    waited["before P1"] = await quiet(pids, QUIET_BOUND_SECONDS)
    _log.info("P1 and P6: echo baseline, then SubmitRequest (RSS sampled meanwhile)")
    measured, submit = await p1_and_p6(config, settings, pids)
    figures.extend(measured)
    waited["before P2"] = await quiet(pids, QUIET_BOUND_SECONDS)
    _log.info("P2: submit → claimable at half P1's rate for %g s", settings.p2_seconds)
    figures.extend(await p2(config, settings, submit.rate if submit and submit.count else None))
    waited["before P3"] = await quiet(pids, QUIET_BOUND_SECONDS)
    _log.info("P3: put_object baseline, then UploadDocument with and without its size")
    figures.extend(await p3(config, settings))
    waited["before P7"] = await quiet(pids, QUIET_BOUND_SECONDS)
    _log.info("P7: submission → first SMS at P1's rate for %g s", settings.p7_seconds)
    figures.extend(await p7(config, settings, submit.rate if submit and submit.count else None))
    # Last: it stops and restarts services (their pids above go stale).
    waited["before P4"] = await quiet(pids, QUIET_BOUND_SECONDS)
    figures.extend(await p4.p4(config, settings.p4_events))
    _log.info("waited for quiet services: %s", waited)
    # P1, P2, P3, … in order; P6's rows keep theirs.
    figures.sort(key=lambda f: f.id.split()[0])
    return figures, postgres_version, waited


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--running",
        action="store_true",
        help="use the stack that runs (TAWASUL_STACK_DIR, TAWASUL_PORT_BASE); never start it",
    )
    parser.add_argument("--keep", action="store_true", help="leave a stack this started running")
    parser.add_argument(
        "--smoke", action="store_true", help="every benchmark at a tiny size (seconds)"
    )
    defaults = Settings()
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        help=f"default {defaults.warmup_seconds:g} (at {defaults.warmup_rate:g}/s); 0: none",
    )
    parser.add_argument("--concurrency", type=int, help=f"default {defaults.concurrency}")
    parser.add_argument("--p1-requests", type=int, help=f"default {defaults.p1_requests}")
    parser.add_argument("--p1-seconds", type=float, help=f"default {defaults.p1_seconds:g}")
    parser.add_argument(
        "--p2-seconds",
        type=float,
        help=f"default {defaults.p2_seconds:g}; the issue's figure is 300",
    )
    parser.add_argument(
        "--p7-seconds",
        type=float,
        help=f"default {defaults.p7_seconds:g}; the issue's figure is 300",
    )
    parser.add_argument("--uploads", type=int, help=f"default {defaults.uploads}")
    parser.add_argument("--p4-events", type=int, help=f"default {defaults.p4_events}")
    parser.add_argument(
        "--results-dir",
        type=Path,
        help="default bench/results (with --smoke: none written unless given)",
    )
    parser.add_argument(
        "--doc",
        type=Path,
        help="default docs/performance.md (with --smoke: none written unless given)",
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    settings = SMOKE if args.smoke else Settings()
    given = {
        "warmup_seconds": args.warmup_seconds,
        "concurrency": args.concurrency,
        "p1_requests": args.p1_requests,
        "p1_seconds": args.p1_seconds,
        "p2_seconds": args.p2_seconds,
        "p7_seconds": args.p7_seconds,
        "uploads": args.uploads,
        "p4_events": args.p4_events,
    }
    return dataclasses.replace(settings, **{k: v for k, v in given.items() if v is not None})


def stored_note(figures: list[Figure], *, fresh: bool, state_dir: Path) -> str:
    """What the stack held: a new one, or the running one with what earlier loads left, and the
    work items in review's table at P5's and P8's sizes (seeded and real)."""
    held = []
    # P5 keeps each size's call figures in its detail, P8 in each kind's (name is one).
    for figure_id, name, kind in (("P5 ClaimNext", "P5", None), ("P8 search", "P8", "name")):
        detail = next((f.detail for f in figures if f.id == figure_id), {})
        sizes: dict[str, Any] = detail.get(kind, {}) if kind else detail
        counts = [
            f"{value['stored']:,} at {label}"
            for label, value in sizes.items()
            if isinstance(value, dict) and "stored" in value
        ]
        if counts:
            held.append(f"{name} {', '.join(counts)}")
    items = (
        f"; work items in review's table (seeded and real) while measured: {'; '.join(held)}"
        if held
        else ""
    )
    if fresh:
        return (
            f"The run started a new stack ({state_dir}, emptied first), so no figure paid for "
            f"an earlier run's data; P5 and P8 ran first, before any load{items}."
        )
    return f"The run used the running stack ({state_dir}) with what it held{items}."


def _notes(
    settings: Settings,
    figures: list[Figure],
    machine: dict[str, Any],
    nice: dict[str, int],
    stack: str,
) -> list[str]:
    load = machine["load_average_at_start"]
    yielding = ", ".join(f"{name} {value}" for name, value in nice.items() if value)
    notes = [
        stack,
        f"P2 ran {settings.p2_seconds:g} s (default 30 s; the issue's figure is 5 minutes: "
        "`--p2-seconds 300`). Its latency runs from the start of the SubmitRequest call to the "
        f"first poll ({P2_POLL_SECONDS * 1000:g} ms apart) that sees the work item's row in "
        "review's database; a request never seen within the drain counts at the time given up.",
        f"P7 ran {settings.p7_seconds:g} s at P1's rate (default 30 s; the issue's figure is "
        "5 minutes: `--p7-seconds 300`). Its latency runs from the start of the SubmitRequest "
        "call to the time the SMS gateway stand-in recorded the first text naming the request "
        "number (its own `received_at`, read from its log).",
        "P3 sends the same padded PDF to both; put_object goes to the same bucket (its "
        "server-side encryption included) and its objects are removed afterwards. P3 declares "
        "the upload's size, as the SDK and the gateway (with a Content-Length) do, and docs "
        "stores it in one PUT as it comes; P3 size unknown sends the same without it, as a "
        "channel streaming a body of unknown length would, and docs stores it in 5 MiB parts.",
        f"Before P1 the run sent submissions at {settings.warmup_rate:g}/s for "
        f"{settings.warmup_seconds:g} s and counted none of them: a stack it has just started "
        "warms as a running office's has (Kafka's JIT compiler took several seconds of CPU in "
        "the first minutes of load, during P1 and P2, in the runs before this warm-up).",
        "P1's baseline is bench/echo.py, a process of its own serving the request's bytes "
        "back over the same mutual TLS (intake's certificate, client certificates required), "
        "sent the same prebuilt messages and tokens by the same client code.",
        "Before each benchmark the run waits until the five services together use less than "
        f"{QUIET_CORES:g} of a core over a second (at most {QUIET_BOUND_SECONDS:g} s), so "
        "that no benchmark pays for the backlog the one before left; the waits are in the "
        "JSON, and so is how long P1's submissions took to all reach review after its load.",
        "P6 is VmRSS from /proc: idle before any load, loaded as the peak sampled every "
        f"{RSS_SAMPLE_SECONDS:g} s during P1's SubmitRequest load.",
        f"Load average at the start: {', '.join(str(x) for x in load)}, at the end: "
        f"{', '.join(str(x) for x in machine['load_average_at_end'])}, on {machine['cores']} "
        "cores: the load generator, the stack, the baselines and whatever else ran share them.",
        f"Niceness of the stack's processes: {yielding or 'none above 0'}; the rest 0 "
        "(`TAWASUL_BACKGROUND_NICE`: when the cores are short, what is off the request's path "
        "yields to it).",
    ]
    for figure_id, span in (
        ("P1", "P1's SubmitRequest load"),
        ("P2 p50", "P2's load and drain"),
        ("P7 p50", "P7's load and drain"),
    ):
        spent = next((f.detail.get(CPU_DETAIL) for f in figures if f.id == figure_id), None)
        if spent:
            notes.append(cpu_note(span, spent))
    steps = next((f.detail.get("hops") for f in figures if f.id == "P2 p50"), None)
    if steps and "error" not in steps:
        split = "; ".join(f"{step} {p['p50_ms']:g}" for step, p in steps.items())
        notes.append(
            f"P2's path, p50 of each step in ms (from the outbox and inbox rows' times; the "
            f"steps' p99s are in the JSON): {split}."
        )
    notes.append(p4.note(settings.p4_events))
    failed = [f.id for f in figures if f.status == "failed"]
    if failed:
        notes.append(f"Failed to measure: {', '.join(failed)} (see the JSON for the error).")
    return notes


def cpu_note(span: str, spent: dict[str, Any]) -> str:
    by_process = ", ".join(f"{name} {ms:g}" for name, ms in spent["cpu_ms_a_submission"].items())
    return (
        f"CPU a submission during {span}, ms: {by_process}; all "
        f"{spent['all_processes_ms_a_submission']:g}, the machine "
        f"{spent['machine_busy_cores']:g} cores busy over {spent['seconds']:g} s (bench.cpu: "
        "PostgreSQL with the backends it had at the start, the load process with its set-up)."
    )


def shown(path: Path) -> Path:
    """A path as the docs show it: from the repository's root when inside it."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def bench_dir() -> Path:
    """Where a run that starts its own stack keeps it."""
    return Path(os.environ.get("TAWASUL_BENCH_DIR") or ROOT / ".state" / "bench")


def fresh_stack(config: StackConfig) -> Stack:
    """A stack in `config.state_dir` with nothing of an earlier run left there; StackError
    while a process of that stack runs, or when the directory holds something other than a
    stack's state (it is removed whole)."""
    stack = Stack(config)
    running = sorted(name for name, up in stack.status().items() if up)
    if running:
        raise StackError(
            f"{', '.join(running)} still running in {config.state_dir}: stop them "
            f"(tawasul-stack --state-dir {config.state_dir} down) or measure them with --running"
        )
    state = config.state_dir
    if state.exists() and any(state.iterdir()) and not (state / "pids").is_dir():
        raise StackError(f"{state} is not a stack's state directory: not emptied")
    shutil.rmtree(state, ignore_errors=True)
    return Stack(config)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    settings = _settings(args)
    if args.running:
        config = StackConfig.from_env()
        stack = Stack(config)
        stopped = [name for name, up in stack.status().items() if not up]
        if stopped:
            print(
                f"error: --running, but {', '.join(stopped)} not running in {config.state_dir}",
                file=sys.stderr,
            )
            return 2
    else:
        config = StackConfig.from_env(state_dir=bench_dir())
        try:
            stack = fresh_stack(config)
        except StackError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        try:
            stack.up()
        except StackError as error:
            print(f"error: {error}", file=sys.stderr)
            if not args.keep:
                stack.down()
            return 1
    started = datetime.now(UTC)
    load_at_start = os.getloadavg()
    nice = niceness(stack)
    try:
        figures, postgres_version, waited = asyncio.run(bench(config, settings))
    finally:
        if not args.running and not args.keep:
            stack.down()
    finished = datetime.now(UTC)
    machine = report.machine(postgres_version, load_at_start)
    results_dir = args.results_dir or (None if args.smoke else ROOT / "bench" / "results")
    doc = args.doc or (None if args.smoke else ROOT / "docs" / "performance.md")
    results_file = (
        results_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json" if results_dir else None
    )
    shown_file = shown(results_file) if results_file else None
    result = {
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "command": " ".join(["uv run python -m bench", *(argv or sys.argv[1:])]),
        "results_file": str(shown_file),
        "settings": dataclasses.asdict(settings),
        "quiet_waits_seconds": waited,
        "machine": machine,
        "niceness": nice,
        "notes": _notes(
            settings,
            figures,
            machine,
            nice,
            stored_note(figures, fresh=not args.running, state_dir=shown(config.state_dir)),
        ),
        "figures": report.figures_json(figures),
    }
    print(report.table(figures))
    for note in result["notes"]:
        print(f"- {note}")
    if results_file is not None:
        report.write_json(results_file, result)
        print(f"results: {results_file}")
    if doc is not None:
        report.write_doc(doc, result, figures)
        print(f"table written to {doc}")
    return 1 if any(f.status == "failed" for f in figures) else 0
