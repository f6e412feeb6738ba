"""Push assignment over 10,000 items: even spread, capacity held, absent reviewers skipped."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from tawasul_review.domain.assignment import Candidate, Mode, choose

ITEMS = 10_000


def team() -> list[Candidate]:
    both, arabic = frozenset({"ar", "en"}), frozenset({"ar"})
    return [
        Candidate("E01", True, both, 10_000, 0),
        Candidate("E02", True, arabic, 10_000, 0),
        Candidate("E03", True, both, 10_000, 0),
        Candidate("E04", False, both, 10_000, 0),  # away
        Candidate("E05", True, frozenset({"en"}), 10_000, 0),  # reads no Arabic
        Candidate("E06", True, both, 10_000, 0),
    ]


def run(mode: Mode, reviewers: list[Candidate], language: str = "ar") -> Counter[str]:
    given: Counter[str] = Counter()
    last = ""
    by_id = {c.reviewer_id: c for c in reviewers}
    for _ in range(ITEMS):
        chosen = choose(mode, list(by_id.values()), language=language, last=last)
        if chosen is None:
            given["(queue)"] += 1
            continue
        given[chosen] += 1
        by_id[chosen] = replace(by_id[chosen], load=by_id[chosen].load + 1)
        last = chosen
    return given


def test_round_robin_spreads_within_one_among_eligible_reviewers() -> None:
    given = run(Mode.ROUND_ROBIN, team())
    assert set(given) == {"E01", "E02", "E03", "E06"}
    assert max(given.values()) - min(given.values()) <= 1
    assert sum(given.values()) == ITEMS


def test_least_loaded_never_exceeds_capacity_and_leaves_the_rest_queued() -> None:
    reviewers = [replace(c, capacity=1_000 + 500 * n, load=n * 100) for n, c in enumerate(team())]
    given = run(Mode.LEAST_LOADED, reviewers)
    for c in reviewers:
        assert c.load + given[c.reviewer_id] <= c.capacity, c.reviewer_id
    eligible = [c for c in reviewers if c.eligible("ar")]
    assert given["(queue)"] == ITEMS - sum(c.capacity - c.load for c in eligible)
    assert given["E04"] == 0
    assert given["E05"] == 0


def test_least_loaded_evens_out_unequal_loads_first() -> None:
    reviewers = [
        Candidate("E01", True, frozenset({"ar"}), 100, 30),
        Candidate("E02", True, frozenset({"ar"}), 100, 0),
    ]
    assert choose(Mode.LEAST_LOADED, reviewers, language="ar") == "E02"
    given = run(Mode.LEAST_LOADED, reviewers)
    assert (given["E01"], given["E02"]) == (70, 100)


def test_a_pulling_queue_or_nobody_eligible_leaves_the_item_queued() -> None:
    assert choose(Mode.PULL, team(), language="ar") is None
    assert choose(Mode.ROUND_ROBIN, team(), language="ur") is None
    assert choose(Mode.LEAST_LOADED, [], language="ar") is None
