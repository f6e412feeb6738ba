"""bench.cpu: where a span's CPU went, by process, a submission."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tawasul_devstack.components import LocalProcess
from tawasul_devstack.stack import Stack, StackConfig

from bench.cli import cpu_note
from bench.cpu import Footprint, Spent, niceness

BURN = "import time\nstart = time.process_time()\nwhile time.process_time() - start < {}: pass"


def burn(seconds: float) -> None:
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def test_a_span_counts_this_process_and_the_children_it_waited_for(tmp_path: Path) -> None:
    nothing_running = Stack(StackConfig.from_env(state_dir=tmp_path))
    with Footprint(nothing_running) as used:
        burn(0.2)
        subprocess.run([sys.executable, "-c", BURN.format(0.3)], check=True)
    spent = used.summary(4)
    by_process = spent["cpu_ms_a_submission"]
    assert list(by_process) == ["load", "bench"]  # the dearest first
    assert by_process["bench"] >= 50  # 0.2 s over 4 submissions
    assert by_process["load"] >= 75
    assert spent["all_processes_ms_a_submission"] == pytest.approx(
        by_process["bench"] + by_process["load"], abs=0.02
    )
    assert spent["submissions"] == 4
    assert spent["machine_busy_cores"] > 0


def test_a_footprint_is_read_once_its_span_has_ended(tmp_path: Path) -> None:
    used = Footprint(Stack(StackConfig.from_env(state_dir=tmp_path)))
    with pytest.raises(RuntimeError, match="not ended"):
        used.summary(1)


def test_the_summary_and_its_note_name_every_process_dearest_first() -> None:
    spent = Spent(
        seconds=30.04, cpu={"intake": 10.5, "postgres": 12.0, "docs": 0.0}, busy_cores=1.874
    ).summary(1500)
    assert spent == {
        "submissions": 1500,
        "seconds": 30.0,
        "cpu_ms_a_submission": {"postgres": 8.0, "intake": 7.0, "docs": 0.0},
        "all_processes_ms_a_submission": 15.0,
        "machine_busy_cores": 1.87,
    }
    note = cpu_note("P2's load and drain", spent)
    assert note.startswith(
        "CPU a submission during P2's load and drain, ms: postgres 8, intake 7, docs 0; all 15, "
        "the machine 1.87 cores busy over 30 s"
    )


def test_no_submission_costs_what_the_span_spent_not_a_division_by_zero() -> None:
    spent = Spent(seconds=1.0, cpu={"intake": 0.5}, busy_cores=0.5).summary(0)
    assert spent["cpu_ms_a_submission"] == {"intake": 500.0}


def test_niceness_is_read_off_the_running_processes(tmp_path: Path) -> None:
    config = StackConfig.from_env(state_dir=tmp_path, background_nice=6)
    sleepers = [LocalProcess(config, name) for name in ("notify", "routing")]
    for sleeper in sleepers:
        sleeper.spawn([sys.executable, "-c", "import signal; signal.pause()"], dict(os.environ), [])
    try:
        ours = os.nice(0)
        assert niceness(Stack(config)) == {"routing": ours, "notify": min(ours + 6, 19)}
    finally:
        for sleeper in sleepers:
            sleeper.stop(signal.SIGKILL)
