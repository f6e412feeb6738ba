"""P5 of issue 12: ClaimNext and ListQueue p99 with 10k and with 1M stored requests.

    uv run python -m bench                 # runs it with every other benchmark
    echo '{"kind": "claim_next", ...}' | python -m bench.p5     # its load process: a Calls a line

Review's own database (tawasul_review on the stack's server) gets bench.office's work items
COPY'd in: the same mix at both sizes, so the open work grows with the table, a harder test
than an office whose backlog stays flat while its history grows.

At each size a load process of its own calls review over gRPC as reviewers of one department
with staff tokens: ClaimNext, each claim given back at once (untimed) so the queue never
drains, then ListQueue's first page at the default page size, the reviewer's screen. The
seeded rows (and the history the claims wrote) are deleted at the end, the table vacuumed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import asyncpg
from tawasul.review.v1 import review_pb2
from tawasul_devstack.journey import Clients
from tawasul_devstack.stack import StackConfig
from tawasul_platform.grpc import bearer
from tawasul_platform.identity import Role
from tawasul_platform.sql import Session
from tawasul_platform.testing import RecordedStatements
from tawasul_review.adapters.repository import SqlWorkItemRepository
from tawasul_review.app.handlers import DEFAULT_PAGE
from tawasul_review.app.ports import QueueFilter
from tawasul_review.domain.reviewers import DEFAULT_LANGUAGES

from bench import office
from bench.load import CALL_TIMEOUT, Outcome, decode_histogram, percentiles_ms, record_seconds
from bench.report import Figure
from bench.runs import bench_process

# The reviewers the load process calls as: token only, no record (the defaults apply).
CALLER_PREFIX = "P5B"
DEPARTMENT = "passports"
# Reviewers acting at the same moment.
CONCURRENCY = 4
# Each measurement's bound in time; past it, its load process gets the grace, then is killed.
CALL_SECONDS = 120.0
LOAD_GRACE_SECONDS = 120.0
# The claimable head of DEPARTMENT's queue (office.POOL_PRIORITY): four items a reviewer.
POOL_SIZE = 4 * CONCURRENCY


# --- the statements' plans ---------------------------------------------------------------------


async def statements() -> dict[str, str]:
    """The SQL review runs for ClaimNext (the reviewer's held items, then the next item) and
    for ListQueue's first page, as its own repository builds it, with the values inline."""
    session = RecordedStatements()
    items = SqlWorkItemRepository(cast(Session, session))
    caller = f"{CALLER_PREFIX}00"
    await items.held_by(caller)
    await items.next_queued(frozenset({DEPARTMENT}), DEFAULT_LANGUAGES, caller)
    await items.queue(DEPARTMENT, DEFAULT_PAGE + 1, None, QueueFilter())
    names = ("ClaimNext held_by", "ClaimNext next_queued", "ListQueue")
    return dict(zip(names, session.sql(), strict=True))


async def plans(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement, each in a transaction rolled back
    (ClaimNext's locks its row)."""
    out = {}
    for name, sql in (await statements()).items():
        transaction = conn.transaction()
        await transaction.start()
        try:
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")
        finally:
            await transaction.rollback()
        out[name] = [str(r[0]) for r in rows]
    return out


# --- the load process ----------------------------------------------------------------------


@dataclass(frozen=True)
class Calls:
    """What one load process does: `count` measured calls of `kind` after `warmup`, as
    `concurrency` reviewers of `department`, each call after their previous one."""

    kind: str  # claim_next | list_queue
    state_dir: str
    port_base: int
    department: str
    count: int
    warmup: int
    concurrency: int
    seconds: float
    # P8's searches pick what to look for among this many seeded rows.
    stored: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Calls:
        return cls(**json.loads(text))


Metadata = tuple[tuple[str, str], ...]


async def call(spec: Calls) -> Outcome:
    if spec.kind.startswith("search"):
        from bench import p8  # P8 shares this load process and its seeded office

        return await p8.call(spec)
    config = StackConfig.from_env(state_dir=Path(spec.state_dir), port_base=spec.port_base)
    async with Clients(config) as clients:
        review = clients.review
        callers = [
            bearer(clients.token(f"{CALLER_PREFIX}{w:02d}", Role.REVIEWER, frozenset({DEPARTMENT})))
            for w in range(spec.concurrency)
        ]

        async def claim_next(metadata: Metadata) -> str:
            answer = await review.ClaimNext(
                review_pb2.ClaimNextRequest(department_code=spec.department),
                timeout=CALL_TIMEOUT,
                metadata=metadata,
            )
            if not answer.HasField("item"):
                raise RuntimeError(f"ClaimNext found {spec.department}'s queue empty")
            return answer.item.request_id

        async def give_back(metadata: Metadata, request_id: str) -> None:
            await review.ReleaseRequest(
                review_pb2.ReleaseRequestRequest(request_id=request_id),
                timeout=CALL_TIMEOUT,
                metadata=metadata,
            )

        async def list_queue(metadata: Metadata) -> str:
            answer = await review.ListQueue(
                review_pb2.ListQueueRequest(department_code=spec.department),
                timeout=CALL_TIMEOUT,
                metadata=metadata,
            )
            if not answer.items:
                raise RuntimeError(f"ListQueue found {spec.department}'s queue empty")
            return str(len(answer.items))

        async def nothing(metadata: Metadata, answer: str) -> None:
            return None

        measured, after = (
            (claim_next, give_back) if spec.kind == "claim_next" else (list_queue, nothing)
        )
        await rounds(measured, after, callers, spec.warmup, None, None)
        outcome = Outcome()
        started = time.perf_counter()
        await rounds(measured, after, callers, spec.count, started + spec.seconds, outcome)
        outcome.elapsed = time.perf_counter() - started
        return outcome


async def rounds(
    measured: Callable[[Metadata], Awaitable[str]],
    after: Callable[[Metadata, str], Awaitable[None]],
    callers: list[Metadata],
    count: int,
    deadline: float | None,
    outcome: Outcome | None,
) -> None:
    """Each caller makes calls back to back until `count` are made between them or the
    deadline passes; only `measured` is timed, `after` (giving a claim back) is not."""
    numbers = iter(range(count))

    async def caller(metadata: Metadata) -> None:
        for _ in numbers:
            if deadline is not None and time.perf_counter() >= deadline:
                return
            started = time.perf_counter()
            try:
                answer = await measured(metadata)
            except Exception as exc:  # gRPC or an empty queue: counted and shown
                if outcome is None:
                    raise
                outcome.errors += 1
                outcome.first_error = outcome.first_error or f"{type(exc).__name__}: {exc}"[:500]
                continue
            if outcome is not None:
                record_seconds(outcome.histogram, time.perf_counter() - started)
                outcome.count += 1
            await after(metadata, answer)

    await asyncio.gather(*(caller(m) for m in callers))


class Load:
    """`python -m bench.p5`, started once for every measurement of a run: it takes a Calls
    per line on stdin and answers each with Outcome's done line."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._stderr: asyncio.Task[bytes] | None = None

    async def __aenter__(self) -> Load:
        self._process = await bench_process("bench.p5")
        assert self._process.stderr is not None
        self._stderr = asyncio.create_task(self._process.stderr.read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._process is not None
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 10)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()

    async def measure(self, spec: Calls) -> Outcome:
        process = self._process
        assert process is not None
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(spec.to_json().encode() + b"\n")
        await process.stdin.drain()
        try:
            line = await asyncio.wait_for(
                process.stdout.readline(), spec.seconds + LOAD_GRACE_SECONDS
            )
        except TimeoutError:
            process.kill()
            raise RuntimeError(f"{spec.kind} load ran past its bound and was killed") from None
        if not line:
            assert self._stderr is not None
            stderr = (await self._stderr).decode(errors="replace")[-3000:]
            raise RuntimeError(f"{spec.kind} load exited {await process.wait()}:\n{stderr}")
        done = json.loads(line)
        return Outcome(
            count=int(done["count"]),
            errors=int(done["errors"]),
            first_error=str(done["first_error"]),
            elapsed=float(done["elapsed"]),
            histogram=decode_histogram(done["histogram"]),
        )


# --- the benchmark -------------------------------------------------------------------------


@dataclass
class Sample:
    """One call's latencies at one size."""

    stored: int  # work items in review's table while it was measured, real ones included
    outcome: Outcome
    # The machine's load average when the calls started: others share its 2 cores.
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # CPU time per measured call (ClaimNext's give-back included) of review and of the
    # PostgreSQL backends serving its database: the work, apart from waiting for a core.
    cpu_ms_per_call: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "load_average_at_start": [round(x, 2) for x in self.load_average],
            "cpu_ms_per_call": self.cpu_ms_per_call,
            "count": self.outcome.count,
            "errors": self.outcome.errors,
            "first_error": self.outcome.first_error,
            "seconds": round(self.outcome.elapsed, 3),
            **percentiles_ms(self.outcome.histogram),
        }


def shown(sample: Sample, size: str) -> str:
    p = percentiles_ms(sample.outcome.histogram)
    errors = f", {sample.outcome.errors} errors" if sample.outcome.errors else ""
    return (
        f"{p['p99_ms']:.1f} ms at {size} (n={sample.outcome.count}{errors}; "
        f"p50 {p['p50_ms']:.1f} / p95 {p['p95_ms']:.1f} / p99 {p['p99_ms']:.1f} ms)"
    )


def judge(figure: Figure, small: Sample, large: Sample, sizes: tuple[int, int]) -> None:
    """This project: p99 at the large size; baseline: p99 at the small one; ratio: growth.
    Met when it grew at most 2× and every call was answered."""
    figure.detail.update(
        {office.size_label(sizes[0]): small.summary(), office.size_label(sizes[1]): large.summary()}
    )
    if small.outcome.count == 0 or large.outcome.count == 0:
        figure.fail(large.outcome.first_error or small.outcome.first_error or "no call answered")
        return
    at_small = percentiles_ms(small.outcome.histogram)["p99_ms"]
    at_large = percentiles_ms(large.outcome.histogram)["p99_ms"]
    figure.value = at_large
    figure.shown = shown(large, office.size_label(sizes[1]))
    figure.baseline = at_small
    figure.baseline_shown = "the same calls at " + shown(small, office.size_label(sizes[0]))
    figure.ratio = round(at_large / at_small, 3)
    clean = small.outcome.errors == 0 and large.outcome.errors == 0
    figure.judge(figure.ratio <= 2.0 and clean)


CpuSeconds = Callable[[int | None], float]


class CpuPerCall:
    """CPU time of review and of the PostgreSQL backends serving its database, per call."""

    def __init__(self, conn: asyncpg.Connection, cpu_seconds: CpuSeconds, review: int | None):
        self._conn = conn
        self._cpu = cpu_seconds
        self._review = review
        self._backends: list[int] = []
        self._before: tuple[float, float] = (0.0, 0.0)

    def _now(self) -> tuple[float, float]:
        return self._cpu(self._review), sum(self._cpu(pid) for pid in self._backends)

    async def start(self) -> None:
        rows = await self._conn.fetch(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        self._backends = [int(r["pid"]) for r in rows]
        self._before = self._now()

    def per_call(self, calls: int) -> dict[str, float]:
        now = self._now()
        used = (now[0] - self._before[0], now[1] - self._before[1])
        return {
            "review": round(1000 * used[0] / max(calls, 1), 2),
            "postgres": round(1000 * used[1] / max(calls, 1), 2),
        }


async def grow_and_measure(
    conn: asyncpg.Connection,
    config: StackConfig,
    sizes: tuple[int, int],
    calls: int,
    cpu: CpuPerCall,
) -> tuple[dict[str, list[Sample]], dict[str, Any]]:
    """At each size: seed up to it, then ClaimNext's and ListQueue's calls; the samples of
    each kind (small, large) and what the run learnt on the way."""
    rows = office.Office()
    samples: dict[str, list[Sample]] = {"claim_next": [], "list_queue": []}
    detail: dict[str, Any] = {"seed_seconds": {}}
    async with Load() as calling:
        first = 0
        for stored in sizes:
            pool = POOL_SIZE if first == 0 else 0
            seconds = await office.seed(conn, rows, first, stored, pool=pool)
            detail["seed_seconds"][office.size_label(stored)] = seconds
            count = int(await conn.fetchval("SELECT count(*) FROM work_items"))
            for kind, taken in samples.items():
                spec = Calls(
                    kind=kind,
                    state_dir=str(config.state_dir),
                    port_base=config.port_base,
                    department=DEPARTMENT,
                    count=calls,
                    warmup=max(5, calls // 10),
                    concurrency=CONCURRENCY,
                    seconds=CALL_SECONDS,
                )
                load_average = os.getloadavg()
                await cpu.start()
                outcome = await calling.measure(spec)
                per_call = cpu.per_call(outcome.count + outcome.errors + spec.warmup)
                taken.append(Sample(count, outcome, load_average, per_call))
            first = stored
    detail[f"plans_at_{office.size_label(sizes[1])}"] = await plans(conn)
    detail["events_announced_about_seeded_requests"] = await office.announced(conn)
    return samples, detail


async def p5(
    config: StackConfig,
    small: int,
    large: int,
    calls: int,
    *,
    review_pid: int | None,
    cpu_seconds: CpuSeconds,
) -> list[Figure]:
    """Seeds `small` stored requests, measures, grows them to `large`, measures again; the
    seeded rows are removed whatever happens. `cpu_seconds` reads a process's CPU time."""
    title = (
        f"{{}} p99, {office.size_label(large)} vs {office.size_label(small)} stored requests "
        f"(seeded with COPY), {CONCURRENCY} reviewers of {DEPARTMENT} at once"
    )
    claim = Figure("P5 ClaimNext", title.format("ClaimNext"), "≤ 2× growth", unit="ms")
    listing = Figure(
        "P5 ListQueue",
        title.format(f"ListQueue (first page, {DEFAULT_PAGE} items)"),
        "≤ 2× growth",
        unit="ms",
    )
    figures = [claim, listing]
    cleanup: dict[str, float] = {}
    try:
        conn = await asyncpg.connect(
            host=str(config.pg_socket_dir), user="postgres", database="tawasul_review"
        )
        try:
            cleanup["removed_before_seconds"] = await office.remove(
                conn
            )  # a run that died left some
            cpu = CpuPerCall(conn, cpu_seconds, review_pid)
            samples, detail = await grow_and_measure(conn, config, (small, large), calls, cpu)
        finally:
            try:
                cleanup["removed_after_seconds"] = await office.remove(conn)
            finally:
                await conn.close()
    except Exception as exc:  # one figure that cannot be measured does not end the run
        for figure in figures:
            figure.fail(f"{type(exc).__name__}: {exc}")
            figure.detail.update(cleanup)
        return figures
    for figure, kind in ((claim, "claim_next"), (listing, "list_queue")):
        figure.detail.update(detail | cleanup)
        at_small, at_large = samples[kind]
        judge(figure, at_small, at_large, (small, large))
    return figures


def main() -> None:
    for line in sys.stdin:
        outcome = asyncio.run(call(Calls.from_json(line)))
        sys.stdout.write(outcome.done_line() + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
