"""What tawasul-rewind would move: each group of the service past the time, back to it."""

from __future__ import annotations

import pytest
from aiokafka.structs import TopicPartition
from tawasul_platform.rewind import Move, groups_of, main, moves
from tawasul_platform.topics import (
    APPLICANT_ACTIONS,
    NOTIFICATION_EVENTS,
    REQUEST_ROUTED,
    REQUEST_SUBMITTED,
)

SUBMITTED_0 = TopicPartition(REQUEST_SUBMITTED, 0)
SUBMITTED_1 = TopicPartition(REQUEST_SUBMITTED, 1)
ROUTED_0 = TopicPartition(REQUEST_ROUTED, 0)


def test_a_services_groups_are_every_one_named_after_it() -> None:
    review = groups_of("review")
    assert review == {
        "review": [REQUEST_ROUTED, APPLICANT_ACTIONS],
        "review-receipts": [NOTIFICATION_EVENTS],
    }
    assert set(groups_of("notify")) == {"notify-events"}
    with pytest.raises(ValueError, match="'gateway' reads no topic"):
        groups_of("gateway")


def test_groups_past_the_time_move_back_and_those_behind_it_stay() -> None:
    at = {SUBMITTED_0: 100, SUBMITTED_1: 40, ROUTED_0: 7}
    committed = {
        "routing": {SUBMITTED_0: 130, SUBMITTED_1: 40},
        "docs": {SUBMITTED_0: 90, ROUTED_0: 9},
    }
    assert moves(committed, at) == [
        Move("docs", ROUTED_0, 9, 7),
        Move("routing", SUBMITTED_0, 130, 100),
    ]
    assert Move("routing", SUBMITTED_0, 130, 100).describe() == (
        f"routing {REQUEST_SUBMITTED}[0]: 130 -> 100"
    )


def test_the_command_needs_kafka_and_a_time_with_its_zone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TAWASUL_KAFKA_BOOTSTRAP", raising=False)
    with pytest.raises(SystemExit, match="--bootstrap or TAWASUL_KAFKA_BOOTSTRAP"):
        main(["routing", "--to", "2026-12-06T09:00:00Z"])
    with pytest.raises(SystemExit, match="--to needs its zone"):
        main(["--bootstrap", "127.0.0.1:1", "routing", "--to", "2026-12-06T09:00:00"])
    with pytest.raises(SystemExit):
        main(["--bootstrap", "127.0.0.1:1", "routing", "--to", "yesterday"])
    assert "invalid fromisoformat value" in capsys.readouterr().err
