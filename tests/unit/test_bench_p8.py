"""P8's row: the slowest kind's p99 at the large size, and as its ratio the growth the verdict
judges, the largest of any kind's, that kind named when it is not the slowest."""

from __future__ import annotations

import pytest

from bench import p8
from bench.load import Outcome, record_seconds
from bench.p5 import Sample
from bench.report import Figure

SIZES = (10_000, 1_000_000)


def sample(p99_ms: float) -> Sample:
    outcome = Outcome(count=100)
    for _ in range(100):
        record_seconds(outcome.histogram, p99_ms / 1000)
    return Sample(SIZES[0], outcome)


def judged(samples: dict[str, list[Sample]]) -> Figure:
    figure = Figure("P8 search", "SearchRequests p99", "≤ 1000 ms and ≤ 2× growth", unit="ms")
    p8.judge(figure, samples, SIZES)
    return figure


def test_the_ratio_is_the_largest_growth_and_names_its_kind() -> None:
    # name is the slowest (1.6×); nothing, quick at both sizes, grew 2.5×.
    figure = judged(
        {"name": [sample(150.0), sample(240.0)], "nothing": [sample(10.0), sample(25.0)]}
    )
    assert figure.status == "not met"
    assert figure.value == pytest.approx(240, abs=0.5)
    assert figure.baseline == pytest.approx(150, abs=0.5)
    growth = figure.detail["growth_by_kind"]
    assert growth == pytest.approx({"name": 1.6, "nothing": 2.5}, abs=0.01)
    assert figure.ratio == growth["nothing"]
    assert figure.detail["grew_most"] == "nothing"
    assert figure.shown.startswith("slowest kind name: 240.1 ms at 1M")
    assert figure.shown.endswith(
        f"; grew most: nothing, 10.0 → 25.0 ms ({figure.ratio:.3f}×, the ratio)"
    )


def test_when_the_slowest_grew_most_the_row_is_that_kind_alone() -> None:
    figure = judged(
        {"name": [sample(100.0), sample(190.0)], "nothing": [sample(10.0), sample(19.0)]}
    )
    assert figure.status == "met"
    assert figure.ratio == pytest.approx(1.9, abs=0.01)
    assert figure.detail["grew_most"] == "name"
    assert "grew most" not in figure.shown
