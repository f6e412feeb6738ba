"""P2 and P7 are judged at the rate they were given, with a backlog that stayed flat, or not
met: a load that fell behind its schedule measured an easier rate than the figure names, and a
backlog that grew the whole load and drained after it was not keeping up."""

from __future__ import annotations

import pytest

from bench.latency import Followed, judge_latency
from bench.load import new_histogram, record_seconds
from bench.report import Figure
from bench.runs import LoadResult

# A backlog of about 90 (115.6/s at 0.8 s), up and down by a few each second.
STEADY = [90 + (s * 7) % 11 - 5 for s in range(300)]


def followed(sent: int, over_seconds: float, backlog: list[int] = STEADY) -> Followed:
    arrivals = new_histogram()
    for _ in range(sent):
        record_seconds(arrivals, 0.8)
    result = LoadResult(sent, 0, "", over_seconds, new_histogram())
    return Followed(result, arrivals, backlog=backlog, at_end=backlog[-1], never=0)


def p7_p99() -> Figure:
    return Figure("P7 p99", "first SMS, p99", "≤ 5 s", unit="ms")


@pytest.mark.parametrize(
    ("over_seconds", "status", "says"),
    [(300.0, "met", ""), (407.0, "not met", "sent at only 85.2/s: intake fell behind")],
)
def test_a_latency_is_met_only_at_the_rate_it_names(
    over_seconds: float, status: str, says: str
) -> None:
    figure = p7_p99()
    detail: dict[str, object] = {}
    judge_latency([(figure, "p99_ms", 5000.0)], followed(34680, over_seconds), detail, 115.6)
    assert figure.status == status
    assert figure.shown.startswith("800")
    assert figure.shown.endswith(
        "backlog median 90 in the first third, 90 in the last, at end 88"
        f"{', ' + says if says else ''})"
    )
    assert detail["sent_per_second"] == round(34680 / over_seconds, 1)
    assert detail["backlog_median"] == {"first_third": 90, "last_third": 90, "allowed": 237.8}


def test_a_backlog_that_grew_all_through_the_load_is_not_flat() -> None:
    """160/s for 300 s, each second 2.6 more behind (0 → 781), all drained after the load: the
    latency is within 5 s, every submission arrived, and it did not keep up."""
    growing = [int(160 * 4.9 * s / 300) for s in range(300)]
    figure = p7_p99()
    detail: dict[str, object] = {}
    judge_latency([(figure, "p99_ms", 5000.0)], followed(48000, 300.0, growing), detail, 160.0)
    assert figure.status == "not met"
    assert "backlog median 129 in the first third, 651.5 in the last (over 338: it grew)" in (
        figure.shown
    )
    assert detail["backlog_median"] == {"first_third": 129, "last_third": 651.5, "allowed": 338}


def test_a_small_backlog_may_move_by_half_a_second_of_submissions() -> None:
    """At 50/s a backlog of 1 or 2 that rose to 20 is a few calls' jitter, not a trend."""
    backlog = [1, 2] * 50 + [20] * 50
    figure = p7_p99()
    judge_latency([(figure, "p99_ms", 5000.0)], followed(15000, 300.0, backlog), {}, 50.0)
    assert figure.status == "met", figure.shown
    assert "median 1.5 in the first third, 20 in the last," in figure.shown


def test_under_three_seconds_of_backlog_show_no_trend() -> None:
    figure = p7_p99()
    detail: dict[str, object] = {}
    judge_latency([(figure, "p99_ms", 5000.0)], followed(20, 2.0, [3, 0]), detail, 10.0)
    assert figure.status == "met"
    assert figure.shown == "800.2 ms (n=20, backlog at end 0)"
    assert "backlog_median" not in detail
