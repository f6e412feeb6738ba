"""P2 and P7: submissions at a steady rate, each followed until it arrives, in review's
table (P2) or at the SMS gateway (P7), with the backlog sampled as the load runs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import statistics
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from hdrh.histogram import HdrHistogram
from tawasul_devstack.stack import Stack, StackConfig

from bench import hops
from bench.cpu import Footprint
from bench.load import LoadSpec, new_histogram, percentiles_ms, record_seconds
from bench.report import Figure
from bench.runs import CPU_DETAIL, LoadResult, Settings, load_spec, run_load, why

# How often P2 looks for the submitted requests' work items in review's database.
P2_POLL_SECONDS = 0.01
# Each arrived work item with the time the transaction that wrote it committed: from then on
# ClaimNext can take it (PostgreSQL's track_commit_timestamp, which the stack turns on; NULL
# for a transaction committed before it was on). A row written again since counts from that
# later commit, never earlier.
CLAIMABLE = (
    "SELECT request_id::text AS id,"
    " extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 AS committed"
    " FROM work_items WHERE request_id = ANY($1::uuid[])"
)
# A request number as intake draws it (tawasul_platform.request_numbers), as SMS texts carry it.
REQUEST_NUMBER = re.compile(r"TW\d{9}")


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
            # From when each was due to be sent (bench.load's open loop), and from when it went.
            "submit_latency": self.result.summary(),
            **(
                {"submit_service_time": percentiles_ms(self.result.service)}
                if self.result.service is not None
                else {}
            ),
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
    arrived or the drain after the load ran out; each counts from when the load's schedule
    meant to send it (its `sent` line's `at`), one never seen at the time given up (a lower
    bound, never dropped). The backlog is sampled each second of the load."""
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
# "The backlog must stay flat": its median over the load's last third at most twice its first
# third's, plus half a second of submissions (a small backlog moves by a few in flight either
# way). A backlog that grew the whole load and drained after it was not keeping up.
BACKLOG_GROWTH = 2.0
BACKLOG_SLACK_SECONDS = 0.5


def backlog_thirds(backlog: list[int]) -> tuple[float, float] | None:
    """The median backlog of the load's first and last thirds (None: under 3 seconds sampled,
    too few for a trend)."""
    third = len(backlog) // 3
    if third == 0:
        return None
    return statistics.median(backlog[:third]), statistics.median(backlog[-third:])


def judge_latency(
    figures: list[tuple[Figure, str, float | None]],
    followed: Followed,
    detail: dict[str, Any],
    rate: float,
) -> None:
    """Each (figure, percentile, limit in ms or None for none): met when within the limit, the
    backlog stayed flat (it did not grow over the load, every submission arrived and none
    failed) and the load kept `rate`."""
    p = percentiles_ms(followed.histogram)
    result = followed.result
    trend, grew = "", False
    if (thirds := backlog_thirds(followed.backlog)) is not None:
        first, last = thirds
        allowed = round(BACKLOG_GROWTH * first + BACKLOG_SLACK_SECONDS * rate, 1)
        grew = last > allowed
        detail["backlog_median"] = {"first_third": first, "last_third": last, "allowed": allowed}
        trend = f" median {first:g} in the first third, {last:g} in the last"
        trend += f" (over {allowed:g}: it grew)," if grew else ","
    flat = not grew and followed.never == 0 and result.errors == 0
    kept_pace = result.rate >= KEPT_PACE * rate
    detail["sent_per_second"] = round(result.rate, 1)
    note = f"; {followed.never} never arrived" if followed.never else ""
    pace = "" if kept_pace else f", sent at only {result.rate:.1f}/s: intake fell behind"
    for figure, key, limit in figures:
        figure.value = p[key]
        figure.shown = (
            f"{p[key]:.1f} ms (n={result.count}, backlog{trend} at end {followed.at_end}"
            f"{note}{pace})"
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


def steady_submissions(
    config: StackConfig, rate: float, seconds: float, sent_as: str = "id"
) -> LoadSpec:
    """SubmitRequest at `rate` for `seconds` (open loop, up to 64 in flight), each submission
    reported as it is answered, for `follow`."""
    return load_spec(
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
    if rate <= 0:
        for f in (fifty, ninety_nine):
            f.fail("no P1 rate to take half of")
        return [fifty, ninety_nine]
    return await _claimable(
        config, settings, rate, settings.p2_seconds, (fifty, 50.0), (ninety_nine, 250.0)
    )


async def p2_fixed(config: StackConfig, settings: Settings) -> list[Figure]:
    """P2's measure at a rate that does not follow P1's, judged against nothing: P2's own rate
    rises with every saving that raises P1, so there a saving shows as a higher rate at the
    same latency; here it shows as CPU and latency, comparable from run to run."""
    rate, seconds = settings.p2_fixed_rate, settings.p2_fixed_seconds
    title = (
        f"submit → work item claimable in review, {{}}, at a fixed {rate:g}/s for {seconds:g} s "
        "(not the issue's figure: for comparing runs)"
    )
    fifty = Figure("P2 fixed p50", title.format("p50"), "—", unit="ms")
    ninety_nine = Figure("P2 fixed p99", title.format("p99"), "—", unit="ms")
    return await _claimable(config, settings, rate, seconds, (fifty, None), (ninety_nine, None))


async def _claimable(
    config: StackConfig,
    settings: Settings,
    rate: float,
    seconds: float,
    fifty: tuple[Figure, float | None],
    ninety_nine: tuple[Figure, float | None],
) -> list[Figure]:
    """Submissions at `rate` for `seconds`, each followed to the commit that made its work item
    claimable in review: the p50 and the p99 figures, each with its limit in ms (None: not
    judged), and in their detail the CPU each process spent and the path's steps."""
    figures = [fifty[0], ninety_nine[0]]
    spec = steady_submissions(config, rate, seconds)
    try:
        conn = await asyncpg.connect(
            host=str(config.pg_socket_dir), user="postgres", database="tawasul_review"
        )
    except Exception as exc:
        for f in figures:
            f.fail(why(exc))
        return figures

    # When the poll saw each one: the figure until the 07:13 run of 2026-12-06, kept beside it.
    polled: dict[str, float] = {}

    async def in_review(pending: Collection[str]) -> dict[str, float]:
        seen_at = time.time()
        rows = await conn.fetch(CLAIMABLE, list(pending))
        polled.update((row["id"], seen_at) for row in rows)
        return {row["id"]: row["committed"] or seen_at for row in rows}

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
            f.fail(why(exc))
        return figures
    finally:
        await conn.close()
    detail = followed.detail(rate, seconds)
    detail[CPU_DETAIL] = used.summary(followed.result.count)
    detail["seen_by_the_poll"] = seen_by_the_poll(followed, polled)
    try:
        detail["hops"] = await hops.split(config.pg_socket_dir, followed.arrived)
    except Exception as exc:  # the split explains the figure; it never costs it
        detail["hops"] = {"error": why(exc)}
    judge_latency(
        [(fifty[0], "p50_ms", fifty[1]), (ninety_nine[0], "p99_ms", ninety_nine[1])],
        followed,
        detail,
        rate,
    )
    return figures


def seen_by_the_poll(followed: Followed, polled: dict[str, float]) -> dict[str, float]:
    """Call to the poll that first saw the work item, p50/p95/p99/max: the commit's time and
    the poll's interval (how P2 was measured until the 07:13 run of 2026-12-06)."""
    histogram = new_histogram()
    for key, (sent, _) in followed.arrived.items():
        record_seconds(histogram, polled[key] - sent)
    return percentiles_ms(histogram)


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
    spec = steady_submissions(config, rate, settings.p7_seconds, sent_as="number")
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
            f.fail(why(exc))
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
