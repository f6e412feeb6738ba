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
import dataclasses
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from tawasul_devstack.stack import SERVICES, Stack, StackConfig, StackError

from bench import p4, p5, p8, report
from bench.cpu import cpu_seconds, niceness
from bench.latency import P2_POLL_SECONDS, p2, p2_fixed, p7, steady_submissions
from bench.p1 import RSS_SAMPLE_SECONDS, p1_and_p6
from bench.p3 import p3
from bench.report import Figure
from bench.runs import CPU_DETAIL, ROOT, SMOKE, Settings, run_load

# Before each benchmark the services must be quiet (their consumers done with what the one
# before left): together below this share of one core over a second, or this long waited.
QUIET_CORES = 0.15
QUIET_BOUND_SECONDS = 180.0

_log = logging.getLogger("bench")


async def quiet(pids: dict[str, int | None], bound: float) -> float:
    """Waits until the services are quiet, at most `bound` seconds; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        before = sum(cpu_seconds(pid) for pid in pids.values())
        await asyncio.sleep(1.0)
        if sum(cpu_seconds(pid) for pid in pids.values()) - before < QUIET_CORES:
            break
    return round(time.monotonic() - started, 1)


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
        await run_load(steady_submissions(config, settings.warmup_rate, settings.warmup_seconds))
    waited["before P1"] = await quiet(pids, QUIET_BOUND_SECONDS)
    _log.info("P1 and P6: echo baseline, then SubmitRequest (RSS sampled meanwhile)")
    measured, submit = await p1_and_p6(config, settings, pids)
    figures.extend(measured)
    waited["before P2"] = await quiet(pids, QUIET_BOUND_SECONDS)
    _log.info("P2: submit → claimable at half P1's rate for %g s", settings.p2_seconds)
    figures.extend(await p2(config, settings, submit.rate if submit and submit.count else None))
    waited["before P2 fixed"] = await quiet(pids, QUIET_BOUND_SECONDS)
    _log.info(
        "P2 fixed: submit → claimable at %g/s for %g s",
        settings.p2_fixed_rate,
        settings.p2_fixed_seconds,
    )
    figures.extend(await p2_fixed(config, settings))
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
        "--p2-fixed-rate",
        type=float,
        help=f"default {defaults.p2_fixed_rate:g} (for {defaults.p2_fixed_seconds:g} s)",
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
        "p2_fixed_rate": args.p2_fixed_rate,
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
        "`--p2-seconds 300`). Its latency runs from the time the load's schedule meant to send "
        "the SubmitRequest call (a call held back behind calls in flight counts its wait) to the "
        "commit of review's transaction that wrote the work item (PostgreSQL's commit "
        "timestamp: from then on ClaimNext can take it), found by a poll "
        f"({P2_POLL_SECONDS * 1000:g} ms apart) of review's database; a request never seen "
        "within the drain counts at the time given up. Until the 07:13 run of 2026-12-06 it "
        "ran to the poll that saw the row, the poll's interval included: that figure is in "
        "the JSON (`seen_by_the_poll`).",
        f"P2 fixed is P2's measure at {settings.p2_fixed_rate:g} submissions a second for "
        f"{settings.p2_fixed_seconds:g} s in every run, judged against nothing: P2's own rate "
        "is half of P1's, so a saving that raises P1 raises the rate P2 is measured at and "
        "shows as a higher rate at the same latency; at a fixed rate it shows as CPU a "
        "submission and latency, comparable from run to run (the host's drift aside).",
        f"P7 ran {settings.p7_seconds:g} s at P1's rate (default 30 s; the issue's figure is "
        "5 minutes: `--p7-seconds 300`). Its latency runs from the time the load's schedule "
        "meant to send the SubmitRequest call to the time the SMS gateway stand-in recorded the "
        "first text naming the request number (its own `received_at`, read from its log).",
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
        "P6 is VmRSS from /proc in MB (10^6 bytes, as the issue's 120 and 250 MB; 120 MiB "
        "would be 125.8 MB): idle before any load, loaded as the peak sampled every "
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
        ("P2 fixed p50", "P2 fixed's load and drain"),
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
