"""The full run's settings from its command line."""

from __future__ import annotations

from bench.cli import _parser, _settings
from bench.runs import SMOKE, Settings


def test_a_warm_up_precedes_the_figures_unless_turned_off() -> None:
    assert _settings(_parser().parse_args([])).warmup_seconds == Settings().warmup_seconds > 0
    assert _settings(_parser().parse_args(["--smoke"])) == SMOKE
    assert SMOKE.warmup_seconds < Settings().warmup_seconds
    off = _settings(_parser().parse_args(["--warmup-seconds", "0", "--p2-seconds", "300"]))
    assert (off.warmup_seconds, off.p2_seconds) == (0, 300)
