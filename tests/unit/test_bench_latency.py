"""P2 and P7 are judged at the rate they were given, or not met: a load that fell behind its
schedule measured an easier rate than the figure names."""

from __future__ import annotations

import pytest

from bench.latency import Followed, judge_latency
from bench.load import new_histogram, record_seconds
from bench.report import Figure
from bench.runs import LoadResult


def followed(sent: int, over_seconds: float) -> Followed:
    arrivals = new_histogram()
    for _ in range(sent):
        record_seconds(arrivals, 0.8)
    result = LoadResult(sent, 0, "", over_seconds, new_histogram())
    return Followed(result, arrivals, backlog=[0], at_end=0, never=0)


@pytest.mark.parametrize(
    ("over_seconds", "status", "says"),
    [(300.0, "met", ""), (407.0, "not met", "sent at only 85.2/s: intake fell behind")],
)
def test_a_latency_is_met_only_at_the_rate_it_names(
    over_seconds: float, status: str, says: str
) -> None:
    figure = Figure("P7 p99", "first SMS, p99", "≤ 5 s", unit="ms")
    detail: dict[str, object] = {}
    judge_latency([(figure, "p99_ms", 5000.0)], followed(34680, over_seconds), detail, 115.6)
    assert figure.status == status
    assert figure.shown.startswith("800")
    assert figure.shown.endswith(f"backlog at end 0{', ' + says if says else ''})")
    assert detail["sent_per_second"] == round(34680 / over_seconds, 1)
