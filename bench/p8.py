"""P8 of issue 15: SearchRequests p99 with 10k and with 1M stored requests.

    uv run python -m bench                 # runs it with every other benchmark
    uv run python -m bench.p8 --large 100000   # P8 alone, on the running stack
                                               # (TAWASUL_STACK_DIR, TAWASUL_PORT_BASE)

Review's table gets P5's office COPY'd in (bench.office.Office: every department, state and
sub-service, with the search columns filled as review writes them: the subject, their names
in Arabic and Latin, the mobile's key and the normalised text). At each size a load process
calls SearchRequests as reviewers of two departments (the union of two departments' pages,
a supervisor's search) with staff tokens, one kind of query at a time:

- number: a valid request number (the unique index; the seeded rows carry P5 numbers, so it
  finds none, which costs the same probe);
- suggestion: the same number without its check digit (the ten probes of its near misses);
- person_id, mobile: a seeded applicant's ID, a seeded mobile in +966 form;
- name: a seeded first and family name, typed without hamza or ta marbuta (≈0.13 % of rows);
- common_text: two words of a description (an eighth of the rows: the order index's case);
- rare_text: the number a description ends with (one row: matched whole, off the index of
  the text's numbers);
- nothing: a word no row holds (the case where reading in order would never stop early);
- filters: no query, open items past due, queued (the SLA filter on the order index).

The figure is the slowest kind's p99 at the large size, against the same kind at the small
one; its ratio is the largest growth of any kind's p99, that kind named in the row (the one
the verdict judges, which need not be the slowest). Met when the slowest kind's p99 is at most
1 s, no kind's grew more than 2×, and every call was answered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, cast

import asyncpg
from tawasul.review.v1 import review_pb2
from tawasul_devstack.journey import Clients
from tawasul_devstack.stack import Stack, StackConfig
from tawasul_platform.grpc import bearer
from tawasul_platform.identity import Role
from tawasul_platform.request_numbers import damm_digit
from tawasul_platform.sql import Database, Session
from tawasul_platform.testing import RecordedStatements, async_engine
from tawasul_review.adapters.repository import SqlWorkItemRepository
from tawasul_review.app.handlers import DEFAULT_PAGE
from tawasul_review.domain.model import OPEN_STATES, State
from tawasul_review.domain.search import (
    Criteria,
    mobile_key,
    number_candidates,
    terms,
)

from bench import office, p5
from bench.cpu import cpu_seconds
from bench.load import CALL_TIMEOUT, Outcome, percentiles_ms
from bench.report import Figure

DEPARTMENTS = frozenset({"passports", "visas"})
CALLER_PREFIX = "P8B"
KINDS = (
    "number",
    "suggestion",
    "person_id",
    "mobile",
    "name",
    "common_text",
    "rare_text",
    "nothing",
    "filters",
)
TARGET_MS = 1000.0
# Typed the way people type: no hamza, ha for ta marbuta, ya for alef maqsura.
_TYPED = str.maketrans({"أ": "ا", "إ": "ا", "ة": "ه", "ى": "ي"})
COMMON = "تاشيره زياره"  # the description "طلب تمديد تأشيرة زيارة …": an eighth of the rows
NOTHING = "qzxjv"


def query(kind: str, n: int) -> review_pb2.SearchRequestsRequest:
    """The search of `kind` about seeded row n."""
    body = f"{n * 7 % 10**8:08d}"
    if kind == "number":
        return review_pb2.SearchRequestsRequest(query="TW" + body + damm_digit(body))
    if kind == "suggestion":
        return review_pb2.SearchRequestsRequest(query=body)
    if kind == "person_id":
        return review_pb2.SearchRequestsRequest(query=office.applicant_of(n))
    if kind == "mobile":
        return review_pb2.SearchRequestsRequest(query="+966" + office.mobile_of(n)[1:])
    if kind == "name":
        first, _, family = office.name_parts(n)
        typed = f"{first[0]} {family[0]}".translate(_TYPED)
        return review_pb2.SearchRequestsRequest(query=typed)
    if kind == "common_text":
        return review_pb2.SearchRequestsRequest(query=COMMON)
    if kind == "rare_text":  # at least 3 digits: a shorter word is not searched for
        return review_pb2.SearchRequestsRequest(query=str(max(n, 100)))
    if kind == "nothing":
        return review_pb2.SearchRequestsRequest(query=NOTHING)
    if kind == "filters":
        return review_pb2.SearchRequestsRequest(
            states=[review_pb2.WORK_ITEM_STATE_QUEUED], sla_state=review_pb2.SLA_STATE_BREACHED
        )
    raise ValueError(f"not a P8 kind: {kind}")


Metadata = tuple[tuple[str, str], ...]


async def call(spec: p5.Calls) -> Outcome:
    """The load process's side: `spec.count` searches of one kind (after the warm-up), as
    `spec.concurrency` reviewers of DEPARTMENTS, each after their previous one."""
    kind = spec.kind.split(":", 1)[1]
    config = StackConfig.from_env(state_dir=Path(spec.state_dir), port_base=spec.port_base)
    rng = random.Random(8)
    async with Clients(config) as clients:
        callers = [
            bearer(clients.token(f"{CALLER_PREFIX}{w:02d}", Role.REVIEWER, DEPARTMENTS))
            for w in range(spec.concurrency)
        ]

        async def search(metadata: Metadata) -> str:
            request = query(kind, rng.randrange(max(spec.stored, 1)))
            request.page_size = DEFAULT_PAGE
            answer = await clients.review.SearchRequests(
                request, timeout=CALL_TIMEOUT, metadata=metadata
            )
            return str(len(answer.items) + len(answer.suggestions))

        async def nothing(metadata: Metadata, answer: str) -> None:
            return None

        await p5.rounds(search, nothing, callers, spec.warmup, None, None)
        outcome = Outcome()
        started = time.perf_counter()
        await p5.rounds(search, nothing, callers, spec.count, started + spec.seconds, outcome)
        outcome.elapsed = time.perf_counter() - started
        return outcome


# --- the statements' plans ---------------------------------------------------------------------


def criteria(kind: str, n: int, now: Any) -> Criteria:
    """What review's handler asks its repository for, for `query(kind, n)`."""
    request = query(kind, n)
    if kind in ("number", "suggestion"):
        digits = request.query.removeprefix("TW")
        exact, near = number_candidates(digits)
        return Criteria(departments=DEPARTMENTS, numbers=(exact,) if exact else tuple(near))
    if kind == "person_id":
        return Criteria(departments=DEPARTMENTS, person_id=request.query)
    if kind == "mobile":
        return Criteria(departments=DEPARTMENTS, mobile_key=mobile_key(request.query))
    if kind == "filters":
        return Criteria(
            departments=DEPARTMENTS,
            states=tuple(s for s in sorted(OPEN_STATES) if s is State.QUEUED),
            due_by=now,
        )
    return Criteria(departments=DEPARTMENTS, terms=tuple(terms(request.query)))


async def plans(
    conn: asyncpg.Connection, config: StackConfig, stored: int
) -> dict[str, list[dict[str, Any]]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement review's repository ran for each kind of
    search about one seeded row, with its execution time: for two words, the read of each
    department's newest items and, when that could not settle the page, the planned search
    after it (the slower at 1M: a name's)."""
    now = await conn.fetchval("SELECT now()")
    out: dict[str, list[dict[str, Any]]] = {}
    n = stored // 3
    engine = async_engine(config.database_url("review"), pool_size=1)
    database = Database(engine.sync_engine)
    try:
        for kind in KINDS:
            session = database.session()
            ran = RecordedStatements(through=session)
            try:
                await SqlWorkItemRepository(cast(Session, ran)).search(
                    criteria(kind, n, now), DEFAULT_PAGE + 1, None
                )
            finally:
                await session.close()
            out[kind] = []
            # Not its SET LOCAL plan_cache_mode: EXPLAIN plans the values inline anyway.
            for sql in (s for s in ran.sql() if not s.startswith("SET ")):
                rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")
                lines = [str(r[0]) for r in rows]
                executed = next((x for x in lines if x.startswith("Execution Time")), "")
                out[kind].append({"sql": sql, "plan": lines, "execution": executed})
    finally:
        await engine.dispose()
    return out


# --- the benchmark -------------------------------------------------------------------------


async def grow_and_measure(
    conn: asyncpg.Connection,
    config: StackConfig,
    sizes: tuple[int, int],
    calls: int,
    cpu: p5.CpuPerCall,
) -> tuple[dict[str, list[p5.Sample]], dict[str, Any]]:
    rows = office.Office()
    samples: dict[str, list[p5.Sample]] = {kind: [] for kind in KINDS}
    detail: dict[str, Any] = {"seed_seconds": {}}
    async with p5.Load() as calling:
        first = 0
        for stored in sizes:
            detail["seed_seconds"][office.size_label(stored)] = await office.seed(
                conn, rows, first, stored
            )
            count = int(await conn.fetchval("SELECT count(*) FROM work_items"))
            for kind, taken in samples.items():
                spec = p5.Calls(
                    kind=f"search:{kind}",
                    state_dir=str(config.state_dir),
                    port_base=config.port_base,
                    department=",".join(sorted(DEPARTMENTS)),
                    count=calls,
                    warmup=max(5, calls // 10),
                    concurrency=p5.CONCURRENCY,
                    seconds=p5.CALL_SECONDS,
                    stored=stored,
                )
                load_average = os.getloadavg()
                await cpu.start()
                outcome = await calling.measure(spec)
                per_call = cpu.per_call(outcome.count + outcome.errors + spec.warmup)
                taken.append(p5.Sample(count, outcome, load_average, per_call))
            first = stored
        detail[f"plans_at_{office.size_label(sizes[1])}"] = await plans(conn, config, sizes[1])
    return samples, detail


def judge(figure: Figure, samples: dict[str, list[p5.Sample]], sizes: tuple[int, int]) -> None:
    """The slowest kind's p99 at the large size against the same kind's at the small one; the
    ratio, the largest growth of any kind's p99 (named when it is not the slowest's)."""
    small_size, large_size = office.size_label(sizes[0]), office.size_label(sizes[1])
    p99: dict[str, tuple[float, float]] = {}
    for kind, (small, large) in samples.items():
        figure.detail[kind] = {small_size: small.summary(), large_size: large.summary()}
        p99[kind] = (
            percentiles_ms(small.outcome.histogram)["p99_ms"],
            percentiles_ms(large.outcome.histogram)["p99_ms"],
        )
    answered = all(s.outcome.count for pair in samples.values() for s in pair)
    errors = sum(s.outcome.errors for pair in samples.values() for s in pair)
    if not answered:
        first = next((s.outcome.first_error for p in samples.values() for s in p), "")
        figure.fail(first or "no call answered")
        return
    slowest = max(p99, key=lambda k: p99[k][1])
    at_small, at_large = p99[slowest]
    growth = {k: round(large / max(small, 0.01), 3) for k, (small, large) in p99.items()}
    # The slowest kind when it grew as much as any: the row then tells one kind's story.
    grew_most = max(growth, key=lambda k: (growth[k], k == slowest))
    figure.detail["p99_ms_by_kind"] = {
        k: {small_size: a, large_size: b} for k, (a, b) in p99.items()
    }
    figure.detail["growth_by_kind"] = growth
    figure.detail["grew_most"] = grew_most
    figure.value = at_large
    figure.shown = f"slowest kind {slowest}: " + p5.shown(samples[slowest][1], large_size)
    if grew_most != slowest:
        small_ms, large_ms = p99[grew_most]
        figure.shown += (
            f"; grew most: {grew_most}, {small_ms:.1f} → {large_ms:.1f} ms "
            f"({growth[grew_most]:.3f}×, the ratio)"
        )
    figure.baseline = at_small
    figure.baseline_shown = f"{slowest} at " + p5.shown(samples[slowest][0], small_size)
    figure.ratio = growth[grew_most]
    figure.judge(at_large <= TARGET_MS and figure.ratio <= 2.0 and errors == 0)


async def p8(
    config: StackConfig,
    small: int,
    large: int,
    calls: int,
    *,
    review_pid: int | None,
    cpu_seconds: p5.CpuSeconds,
) -> Figure:
    """Seeds `small` stored requests, searches, grows them to `large`, searches again; the
    seeded rows are removed whatever happens."""
    figure = Figure(
        "P8 search",
        f"SearchRequests p99 (slowest of {len(KINDS)} kinds of query; ratio: the most grown), "
        f"{office.size_label(large)} vs {office.size_label(small)} stored requests (seeded with "
        f"COPY), {p5.CONCURRENCY} reviewers of {' and '.join(sorted(DEPARTMENTS))} at once",
        f"≤ {TARGET_MS:g} ms and ≤ 2× growth",
        unit="ms",
    )
    cleanup: dict[str, float] = {}
    try:
        conn = await asyncpg.connect(
            host=str(config.pg_socket_dir), user="postgres", database="tawasul_review"
        )
        try:
            cleanup["removed_before_seconds"] = await office.remove(conn)
            cpu = p5.CpuPerCall(conn, cpu_seconds, review_pid)
            samples, detail = await grow_and_measure(conn, config, (small, large), calls, cpu)
        finally:
            try:
                cleanup["removed_after_seconds"] = await office.remove(conn)
            finally:
                await conn.close()
    except Exception as exc:  # one figure that cannot be measured does not end the run
        figure.fail(f"{type(exc).__name__}: {exc}")
        figure.detail.update(cleanup)
        return figure
    figure.detail.update(detail | cleanup)
    judge(figure, samples, (small, large))
    return figure


def plan_text(figure: Figure) -> str:
    """The plans of the slowest kinds at the large size, for docs/performance.md."""
    plans_key = next((k for k in figure.detail if k.startswith("plans_at_")), "")
    found: dict[str, Any] = figure.detail.get(plans_key, {})
    by_kind: dict[str, Any] = figure.detail.get("p99_ms_by_kind", {})
    order = sorted(found, key=lambda k: -max(by_kind.get(k, {0: 0.0}).values()))
    out = []
    for kind in order:
        for statement in found[kind]:
            out.append(f"-- {kind}: {statement['execution']}\n{statement['sql']}\n")
            out.append("\n".join(statement["plan"]) + "\n")
    return "\n".join(out)


async def _alone(args: argparse.Namespace) -> int:
    config = StackConfig.from_env()

    figure = await p8(
        config,
        args.small,
        args.large,
        args.calls,
        review_pid=Stack(config).pid("review"),
        cpu_seconds=cpu_seconds,
    )
    print(
        json.dumps(
            {
                "id": figure.id,
                "status": figure.status,
                "value": figure.value,
                "baseline": figure.baseline,
                "ratio": figure.ratio,
                "shown": figure.shown,
            },
            ensure_ascii=False,
            indent=1,
        )
    )
    print(
        json.dumps(
            {k: v for k, v in figure.detail.items() if not k.startswith("plans_at_")},
            ensure_ascii=False,
            indent=1,
        )
    )
    if args.plans:
        Path(args.plans).write_text(plan_text(figure))  # noqa: ASYNC240 - once, at the end
    return 0 if figure.status in ("met", "not met") else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.p8", description=__doc__)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=400, help="calls of each kind at each size")
    parser.add_argument("--plans", default="", help="write the plans at the large size here")
    return asyncio.run(_alone(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
