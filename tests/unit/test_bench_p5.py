"""P5's seed and verdicts without a stack: rows that fit review's table and leave its sweep
alone, a claimable head of the measured queue, and the growth figure built from two sizes."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import pytest
from tawasul_review.adapters import tables
from tawasul_review.domain.reviewers import DEFAULT_CAPACITY
from tawasul_review.domain.search import searchable, tokens

from bench.load import Outcome, record_seconds
from bench.office import (
    DEPARTMENTS,
    FIELDS,
    NUMBER_PREFIX,
    POOL_PRIORITY,
    QUIET_FOR,
    STATES,
    Office,
    size_label,
)
from bench.p5 import DEPARTMENT, Calls, CpuPerCall, Sample, judge, statements
from bench.report import Figure

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
STORED = 10_000


def rows(first: int = 0, count: int = STORED, pool: int = 16) -> list[dict[str, Any]]:
    records = Office().rows(first, count, NOW, stored=STORED, pool=pool)
    return [dict(zip(FIELDS, r, strict=True)) for r in records]


def test_every_row_gives_every_column_of_reviews_table_once() -> None:
    assert sorted(FIELDS) == sorted(c.name for c in tables.work_items.columns)
    assert all(len(r) == len(FIELDS) for r in Office().rows(0, 50, NOW, stored=STORED))


def test_rows_are_the_same_for_the_same_seed_and_numbered_apart_from_real_ones() -> None:
    assert Office().rows(100, 20, NOW, stored=STORED) == Office().rows(100, 20, NOW, stored=STORED)
    numbers = [r["request_number"] for r in rows(0, 500) + rows(500, 500)]
    assert len(set(numbers)) == 1000
    assert all(n.startswith(NUMBER_PREFIX) and len(n) <= 20 for n in numbers)


def test_the_office_spreads_over_departments_states_priorities_and_languages() -> None:
    seeded = rows()
    states = Counter(r["state"] for r in seeded)
    for state, share in STATES:
        assert abs(states[state] / STORED * 100 - share) < max(1.0, share / 5), state
    assert {r["department"] for r in seeded} == set(DEPARTMENTS)
    assert len({r["sub_service_code"] for r in seeded}) > 10
    queues = {r["queue"] for r in seeded}
    assert queues >= {"passports.default", "residents.visit-visa", "reports.establishments"}
    assert {r["priority"] for r in seeded} >= {0, 1, 10, 20, POOL_PRIORITY}
    assert {json.loads(r["contact"])["locale"] for r in seeded} == {"ar", "en"}
    assert {r["decision"] for r in seeded if r["state"] == "decided"} == {"accept", "reject"}


def test_json_columns_read_back_as_review_stores_them() -> None:
    for r in rows(0, 2000):
        assert set(json.loads(r["contact"])) == {"mobile", "email", "locale"}
        assert set(json.loads(r["sla"])) == {"amount", "unit"}
        assert all(len(pair) == 2 for pair in json.loads(r["pauses"]))
        assert isinstance(json.loads(r["document_ids"]), list)
        assert isinstance(json.loads(r["missing"]), list)


def test_search_columns_are_what_reviews_repository_writes() -> None:
    for r in rows(0, 2000, pool=0):
        assert r["search_text"] == searchable(r["description"], *json.loads(r["names"]))
        assert r["search_tokens"] == tokens(r["search_text"])


def test_nothing_seeded_falls_due_for_reviews_sweep_during_the_run() -> None:
    quiet_until = NOW + QUIET_FOR
    for r in rows():
        if r["state"] == "claimed":
            assert r["claimed_until"] > quiet_until
        if r["state"] == "waiting_on_applicant":
            assert r["respond_by"] > quiet_until
        assert r["sla_next_at"] is None or r["sla_next_at"] > quiet_until


def test_clocks_run_while_the_office_holds_the_request_as_reviews_model_keeps_them() -> None:
    paused = Counter(
        (r["state"], r["paused_since"] is not None)
        for r in rows()
        if r["state"] in ("decided", "withdrawn", "queued", "claimed")
    )
    # Stopped at the decision or withdrawal; running while queued or claimed.
    assert {state for state, stopped in paused if stopped} == {"decided", "withdrawn"}
    assert {state for state, stopped in paused if not stopped} == {"queued", "claimed"}


def test_seeded_claims_stay_within_each_reviewers_capacity() -> None:
    held = Counter(r["assignee"] for r in rows() if r["state"] == "claimed")
    assert held
    assert max(held.values()) <= DEFAULT_CAPACITY


def test_the_pool_heads_the_measured_queue_and_is_claimed_without_announcing() -> None:
    seeded = rows(pool=16)
    pool, rest = seeded[:16], seeded[16:]
    for r in pool:
        assert r["state"] == "queued"
        assert r["department"] == DEPARTMENT
        assert r["priority"] == POOL_PRIORITY
        # Under review already: claiming it again publishes nothing.
        assert r["public_status"] == "under_review"
        assert r["due_at"] < NOW
    assert all(r["priority"] < POOL_PRIORITY for r in rest)
    assert all(r["priority"] < POOL_PRIORITY for r in rows(STORED, 5000, pool=0))


def sample(stored: int, p99_ms: float, errors: int = 0, count: int = 100) -> Sample:
    outcome = Outcome(errors=errors, first_error="boom" if errors else "")
    for _ in range(count):
        record_seconds(outcome.histogram, p99_ms / 1000)
    outcome.count = count
    return Sample(stored, outcome)


def test_the_figure_is_p99_at_the_large_size_against_the_small_one() -> None:
    figure = Figure("P5 ClaimNext", "ClaimNext p99", "≤ 2× growth", unit="ms")
    judge(figure, sample(10_000, 20.0), sample(1_000_000, 30.0), (10_000, 1_000_000))
    # HdrHistogram keeps three significant digits.
    assert figure.value == pytest.approx(30.0, rel=1e-3)
    assert figure.baseline == pytest.approx(20.0, rel=1e-3)
    assert figure.ratio == pytest.approx(1.5, rel=1e-3)
    assert figure.status == "met"
    assert "at 1M" in figure.shown
    assert "at 10k" in figure.baseline_shown
    assert figure.detail["1M"]["stored"] == 1_000_000


def test_growth_past_twice_or_an_unanswered_call_is_not_met() -> None:
    grown = Figure("P5 ListQueue", "ListQueue p99", "≤ 2× growth", unit="ms")
    judge(grown, sample(200, 10.0), sample(2000, 25.0), (200, 2000))
    assert grown.ratio == pytest.approx(2.5, rel=1e-3)
    assert grown.status == "not met"
    erred = Figure("P5 ListQueue", "ListQueue p99", "≤ 2× growth", unit="ms")
    judge(erred, sample(200, 10.0), sample(2000, 10.0, errors=1), (200, 2000))
    assert erred.status == "not met"
    silent = Figure("P5 ListQueue", "ListQueue p99", "≤ 2× growth", unit="ms")
    judge(silent, sample(200, 10.0), sample(2000, 10.0, errors=5, count=0), (200, 2000))
    assert silent.status == "failed"
    assert silent.detail["error"] == "boom"


def test_sizes_read_as_people_say_them() -> None:
    assert [size_label(n) for n in (200, 2000, 10_000, 1_000_000, 2_500_000)] == [
        "200",
        "2k",
        "10k",
        "1M",
        "2.5M",
    ]


def test_calls_round_trip_as_json() -> None:
    spec = Calls("claim_next", "/s", 1, DEPARTMENT, 10, 2, 4, 30.0)
    assert Calls.from_json(spec.to_json()) == spec


async def test_the_explained_statements_are_the_ones_reviews_repository_builds() -> None:
    sql = await statements()
    assert "assignee = 'P5B00'" in sql["ClaimNext held_by"]
    assert "FOR UPDATE SKIP LOCKED" in sql["ClaimNext next_queued"]
    assert f"department IN ('{DEPARTMENT}')" in sql["ClaimNext next_queued"]
    assert "LIMIT 51" in sql["ListQueue"]
    assert "ORDER BY work_items.priority DESC, work_items.queued_at" in sql["ListQueue"]


class Backends:
    async def fetch(self, query: str) -> list[dict[str, int]]:
        return [{"pid": 11}, {"pid": 12}]


async def test_cpu_per_call_counts_review_and_the_backends_of_its_database() -> None:
    used = {1: 5.0, 11: 1.0, 12: 2.0}
    cpu = CpuPerCall(cast(asyncpg.Connection, Backends()), lambda pid: used.get(pid or 0, 0.0), 1)
    await cpu.start()
    used.update({1: 6.0, 11: 1.2, 12: 2.3})
    assert cpu.per_call(100) == {"review": 10.0, "postgres": 5.0}
