"""The stack a full run starts: new each time, so that no figure pays for an earlier run's data."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from tawasul_devstack.components import LocalProcess
from tawasul_devstack.stack import Stack, StackConfig, StackError

from bench.cli import fresh_stack, stored_note
from bench.report import Figure


def config(state_dir: Path) -> StackConfig:
    return StackConfig.from_env(state_dir=state_dir)


def test_an_earlier_runs_data_is_gone_before_the_stack_starts(tmp_path: Path) -> None:
    state = tmp_path / "bench"
    for left in ("pids/postgres.pid", "pg/base/16384/1259", "kafka/requests.submitted-0/0.log"):
        (state / left).parent.mkdir(parents=True, exist_ok=True)
        (state / left).write_text("an earlier run's")

    stack = fresh_stack(config(state))

    assert not state.exists()
    assert stack.config.state_dir == state
    assert not any(stack.status().values())


def test_a_stack_that_runs_there_is_neither_emptied_nor_restarted(tmp_path: Path) -> None:
    state = tmp_path / "bench"
    smtp = Stack(config(state)).component("smtp")
    assert isinstance(smtp, LocalProcess)
    smtp.proc.spawn(["sleep", "60"], dict(os.environ))
    try:
        with pytest.raises(StackError, match=r"smtp still running in .*--running"):
            fresh_stack(config(state))
        assert smtp.pid() is not None
        assert smtp.proc.pid_file.exists()
    finally:
        smtp.stop(signal.SIGKILL)


def test_a_directory_that_holds_no_stack_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("not a stack's")

    with pytest.raises(StackError, match="not a stack's state directory"):
        fresh_stack(config(tmp_path))

    assert (tmp_path / "thesis.tex").read_text() == "not a stack's"


def test_the_note_says_what_review_held_while_p5_and_p8_measured() -> None:
    def sizes(small: int, large: int) -> dict[str, object]:
        return {"10k": {"stored": small, "p99_ms": 9.0}, "1M": {"stored": large, "p99_ms": 9.5}}

    figures = [
        Figure(
            "P5 ClaimNext",
            "",
            "",
            detail={"seed_seconds": {"10k": 6.5}, **sizes(10_000, 1_000_000)},
        ),
        Figure("P8 search", "", "", detail={"name": sizes(10_004, 1_000_004), "number": {}}),
        Figure("P1", "", "", detail={"stored": 3}),
    ]

    fresh = stored_note(figures, fresh=True, state_dir=Path(".state/bench"))
    running = stored_note(figures[2:], fresh=False, state_dir=Path(".state/stack"))

    assert fresh == (
        "The run started a new stack (.state/bench, emptied first), so no figure paid for an "
        "earlier run's data; P5 and P8 ran first, before any load; work items in review's table "
        "(seeded and real) while measured: P5 10,000 at 10k, 1,000,000 at 1M; "
        "P8 10,004 at 10k, 1,000,004 at 1M."
    )
    assert running == "The run used the running stack (.state/stack) with what it held."
