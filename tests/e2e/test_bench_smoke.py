"""`python -m bench` at a tiny size on the test stack, so that the benchmark cannot rot.

It asserts that every figure of issue 12 is in the table, the JSON and docs' page, with
numbers where it is measured, and never how fast anything was: no timed assertion here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tawasul_devstack.stack import SERVICES, Stack, StackConfig

from bench import p8
from bench.hops import STEPS
from tests.e2e.direct import scalar

ROOT = Path(__file__).resolve().parents[2]
MEASURED = {
    "P1",
    "P2 p50",
    "P2 p99",
    "P3",
    "P3 size unknown",
    "P4",
    "P4 two replicas",
    "P5 ClaimNext",
    "P5 ListQueue",
    *(f"P6 {name} {phase}" for name in SERVICES for phase in ("idle", "loaded")),
    "P7 p99",
    "P8 search",
}
# Measured, with no target of their own.
SHOWN = {"P7 p50", "P2 fixed p50", "P2 fixed p99"}
WITH_BASELINE = {
    "P1",
    "P3",
    "P3 size unknown",
    "P4",
    "P4 two replicas",
    "P5 ClaimNext",
    "P5 ListQueue",
    "P8 search",
}


def bench(stack: Stack, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Runs `python -m <args>` against the test stack; its output, once it succeeded."""
    return succeeded(
        args,
        {
            "TAWASUL_STACK_DIR": str(stack.config.state_dir),
            "TAWASUL_PORT_BASE": str(stack.config.port_base),
        },
        timeout,
    )


def succeeded(
    args: tuple[str, ...], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Runs `python -m <args>` with `env` besides this process's; its output, once it
    succeeded."""
    run = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-6000:]}"
    return run


def test_every_benchmark_runs_and_every_figure_is_reported(stack: Stack, tmp_path: Path) -> None:
    results, doc = tmp_path / "results", tmp_path / "performance.md"
    run = bench(
        stack,
        *("bench", "--running", "--smoke", "--results-dir", str(results), "--doc", str(doc)),
        timeout=540,
    )
    # P4 stops and restarts services and runs a second replica of routing: all as before.
    assert all(stack.status().values()), stack.status()
    assert stack.replicas() == []

    [written] = results.glob("*.json")
    report = json.loads(written.read_text())
    figures = {f["id"]: f for f in report["figures"]}
    assert set(figures) == MEASURED | SHOWN
    for id_ in MEASURED:
        figure = figures[id_]
        assert isinstance(figure["value"], int | float), figure
        assert figure["status"] in ("met", "not met"), figure
        assert figure["met"] is (figure["status"] == "met")
    for id_ in SHOWN:
        assert isinstance(figures[id_]["value"], int | float), figures[id_]
        assert figures[id_]["status"] == "—", figures[id_]
    for id_ in WITH_BASELINE:
        assert isinstance(figures[id_]["baseline"], int | float), figures[id_]
        assert isinstance(figures[id_]["ratio"], int | float), figures[id_]
    for key in ("cores", "memory_gib", "python", "kafka", "postgresql", "minio"):
        assert report["machine"][key], key
    # P2's path split hop by hop, every arrived request through every step.
    p2 = figures["P2 p50"]["detail"]
    assert list(p2["hops"]) == list(STEPS), p2["hops"]
    assert p2["arrived"] > 0
    assert {step["requests"] for step in p2["hops"].values()} == {p2["arrived"]}, p2["hops"]
    # P2 runs to the commit that made each work item claimable, which PostgreSQL keeps the
    # time of; the poll that saw it is reported beside it.
    track = asyncio.run(scalar(stack, "review", "SHOW track_commit_timestamp"))
    assert track == "on"
    assert set(p2["seen_by_the_poll"]) == {"p50_ms", "p95_ms", "p99_ms", "max_ms"}, p2

    # Where each load's CPU went, by process; the load process always spends some.
    for id_ in ("P1", "P2 p50", "P2 fixed p50", "P7 p50"):
        spent = figures[id_]["detail"]["cpu_by_process"]
        names = set(spent["cpu_ms_a_submission"])
        assert {"intake", "routing", "review", "postgres", "kafka", "load"} <= names, spent
        assert spent["cpu_ms_a_submission"]["load"] > 0, spent

    # P8's plans at its larger size: every statement each kind of search ran, EXPLAINed.
    plans = figures["P8 search"]["detail"]["plans_at_2k"]
    assert set(plans) == set(p8.KINDS), plans
    for kind, statements in plans.items():
        assert statements, kind
        assert all(s["execution"].startswith("Execution Time: ") for s in statements), kind
        assert all(s["sql"].startswith("SELECT ") for s in statements), kind

    # P5 seeded review's database and removed what it seeded: the stack is left as it was.
    seeded = "SELECT count(*) FROM work_items WHERE request_number LIKE 'P5%'"
    assert asyncio.run(scalar(stack, "review", seeded)) == 0

    page = doc.read_text()
    for id_ in MEASURED | SHOWN:
        assert f"| {id_} |" in run.stdout
        assert f"| {id_} |" in page
    assert "| postgresql |" in page
    assert "P2's path, p50 of each step in ms" in page
    assert "CPU a submission during P2's load and drain, ms: " in page
    assert "CPU a submission during P2 fixed's load and drain, ms: " in page
    assert "Before P1 the run sent submissions at 10/s for 1 s and counted none" in page


@pytest.fixture
def bench_dir() -> Iterator[Path]:
    """Not under pytest's temporary directory, as the session's PostgreSQL is not (the root
    conftest): the stack's server runs as a user of its own that must traverse the path, and
    any pytest session starting on the machine sets /tmp/pytest-of-<user> back to 0700 (one
    did, mid-run: the server's checkpoint could no longer open its files)."""
    home = Path(tempfile.mkdtemp(prefix="tawasul-test-bench-"))
    yield home / "bench"
    shutil.rmtree(home, ignore_errors=True)


def test_a_full_run_starts_a_new_stack_of_its_own_and_stops_it(
    tmp_path: Path, bench_dir: Path
) -> None:
    """The README's command: no stack of the run's own runs yet, an earlier run's data lies
    in its directory; the run empties it, starts the stack, measures, and stops it."""
    state = bench_dir
    earlier = state / "pg" / "an earlier run's table"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("634,520 work items")
    (state / "pids").mkdir()
    port_base = int(os.environ.get("TAWASUL_TEST_BENCH_PORT_BASE", "31000"))
    results = tmp_path / "results"

    run = succeeded(
        ("bench", "--smoke", "--results-dir", str(results), "--doc", str(tmp_path / "p.md")),
        {"TAWASUL_BENCH_DIR": str(state), "TAWASUL_PORT_BASE": str(port_base)},
        timeout=600,
    )

    [written] = results.glob("*.json")
    report = json.loads(written.read_text())
    assert report["notes"][0].startswith(f"The run started a new stack ({state}, emptied first)")
    assert all(f["status"] != "failed" for f in report["figures"]), run.stdout
    assert not earlier.exists()
    assert (state / "logs" / "review.log").exists()
    config = StackConfig.from_env(state_dir=state, port_base=port_base)
    assert not any(Stack(config).status().values())


def test_the_per_poll_benchmark_measures_both_consumers(stack: Stack) -> None:
    run = bench(
        stack, *("bench.polls", "--records", "5", "--rate", "20", "--topics", "1"), timeout=180
    )
    measured = [
        re.fullmatch(
            r"(\w+) +1 topic\(s\) × 6 partitions: \d+\.\d{3} ms of CPU per poll"
            r" \(5 records in [1-5] polls, \d+\.\d\d s\)",
            line,
        )
        for line in run.stdout.splitlines()
    ]
    assert [m and m[1] for m in measured] == ["plain", "platform"], run.stdout


def test_the_footprint_shows_each_process_and_each_groups_reads(stack: Stack) -> None:
    run = bench(stack, *("bench.footprint", "--rate", "5", "--seconds", "2"), timeout=180)
    lines = run.stdout.splitlines()
    for name in SERVICES:
        assert any(re.fullmatch(rf"{name} +\d+\.\d\d ms of CPU a submission", x) for x in lines)
    read = re.compile(
        r"  routing +reads tawasul\.requests\.submitted\.v1: (\d+\.\d\d) a submission"
    )
    assert any((m := read.fullmatch(x)) and float(m[1]) > 0 for x in lines), run.stdout
    assert re.fullmatch(r"records read a submission, all groups: \d+\.\d\d", lines[-1]), lines[-1]
