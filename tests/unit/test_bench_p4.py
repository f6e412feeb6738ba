"""P4's pure parts: the backlog is what intake would publish and routing accepts, the right
consumers are paused, and a drain is timed from the look before the first commit."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from aiokafka.structs import TopicPartition
from tawasul.events.v1 import events_pb2
from tawasul_devstack.offsets import behind
from tawasul_platform import topics
from tawasul_platform.catalog import load_catalog
from tawasul_routing.adapters.events import from_submitted
from tawasul_routing.adapters.rules import load_rules
from tawasul_routing.domain.model import decide

from bench.p4 import (
    BaselineSpec,
    Drain,
    paused_groups,
    paused_services,
    submitted_events,
)


def test_the_backlog_is_intakes_submitted_events_and_routing_decides_every_one() -> None:
    catalog = load_catalog()
    rules = load_rules()
    backlog = submitted_events(len(catalog.sub_services) * 20, rng=random.Random(7))
    now = datetime.now(UTC)
    departments: Counter[str] = Counter()
    rules_met: Counter[str] = Counter()
    for event in backlog:
        envelope = events_pb2.Envelope.FromString(event.value)
        submitted = envelope.request_submitted
        # Keyed like intake's: the request id, so that a request's events stay in order.
        assert event.key.decode() == event.request_id == envelope.request_id
        assert submitted.request_id == event.request_id
        assert envelope.event_type == "tawasul.requests.submitted"
        assert dict(event.headers)["event_type"] == b"tawasul.requests.submitted"
        uuid.UUID(envelope.event_id)
        sub_service = catalog.sub_services[submitted.sub_service_code]
        assert submitted.department_code == sub_service.department
        assert submitted.applicant_kind in {r.value for r in sub_service.filers}
        required = {f.name for f in sub_service.fields if f.required}
        assert required <= set(submitted.fields)
        decision = decide(from_submitted(envelope, now), rules, now)
        departments[decision.department] += 1
        rules_met[decision.rule] += 1
    assert len({e.request_id for e in backlog}) == len(backlog)
    assert len({events_pb2.Envelope.FromString(e.value).event_id for e in backlog}) == len(backlog)
    # Every department gets its share, and some requests meet a rule beyond the default.
    assert set(departments) == set(catalog.departments)
    assert len(rules_met) > 1


def test_two_backlogs_never_share_a_request() -> None:
    first, second = submitted_events(50), submitted_events(50)
    assert not {e.request_id for e in first} & {e.request_id for e in second}


def test_every_other_consumer_of_the_two_topics_is_paused_and_routing_is_not() -> None:
    pairs = paused_groups()
    assert (topics.REQUEST_ROUTED, "review") in pairs
    assert (topics.REQUEST_SUBMITTED, "notify-events") in pairs
    assert all(group != "routing" for _, group in pairs)
    assert {t for t, _ in pairs} == {topics.REQUEST_SUBMITTED, topics.REQUEST_ROUTED}
    assert paused_services() == ["docs", "notify", "review"]
    notify = (topics.REQUEST_ROUTED, "notify-events")
    assert paused_services([("x", "routing"), notify]) == ["notify"]


def test_a_drain_runs_from_the_last_look_before_any_commit_to_the_first_with_none_left() -> None:
    drain = Drain(events=1000, started=10.0)
    drain.samples = [(11.0, 1000), (12.0, 1000), (12.5, 600), (13.0, 100), (13.5, 0)]
    assert drain.idle_until == 12.0
    assert drain.done_at == 13.5
    assert drain.seconds == pytest.approx(1.5)
    assert drain.rate == pytest.approx(1000 / 1.5)
    assert drain.summary()["seconds_from_process_start"] == 3.5


def test_a_drain_committing_at_the_first_look_counts_from_the_start() -> None:
    drain = Drain(events=10, started=5.0, samples=[(5.1, 0)])
    assert drain.idle_until == 5.0
    assert drain.seconds == pytest.approx(0.1)


def test_an_unfinished_drain_has_no_rate() -> None:
    drain = Drain(events=10, started=0.0, samples=[(1.0, 10), (2.0, 4)])
    assert drain.done_at is None
    with pytest.raises(ValueError, match="not drained"):
        _ = drain.rate
    assert drain.summary()["per_second"] is None


def test_behind_counts_what_is_not_committed_up_to_the_ends() -> None:
    a, b, c = (TopicPartition("t", p) for p in range(3))
    # Never committed counts from the start; committed past the end counts nothing.
    assert behind({a: 10, b: 5, c: 7}, {a: 4, c: 9}) == 6 + 5


def test_the_baselines_spec_survives_the_trip_to_its_process() -> None:
    spec = BaselineSpec("b:1", "/tmp/pg", "db", "g", "t", {0: 5, 3: 12})
    assert BaselineSpec.from_json(spec.to_json()) == spec
