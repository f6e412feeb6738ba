"""What tawasul-rewind would move: each group of the service past the time, back to it.
Against a Kafka in memory here; the real one in tests/e2e/test_rewind.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition
from tawasul_platform import rewind
from tawasul_platform.rewind import Move, duration, groups_of, main, moves
from tawasul_platform.topics import (
    APPLICANT_ACTIONS,
    NOTIFICATION_EVENTS,
    REQUEST_ROUTED,
    REQUEST_SUBMITTED,
)

SUBMITTED_0 = TopicPartition(REQUEST_SUBMITTED, 0)
SUBMITTED_1 = TopicPartition(REQUEST_SUBMITTED, 1)
ROUTED_0 = TopicPartition(REQUEST_ROUTED, 0)
BACKUP = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


class Kafka:
    """Each partition's records' timestamps (ms), and the groups' committed offsets."""

    def __init__(self) -> None:
        self.logs: dict[TopicPartition, list[int]] = {}
        self.committed: dict[str, dict[TopicPartition, int]] = {}

    def publish(self, tp: TopicPartition, at: datetime) -> int:
        log = self.logs.setdefault(tp, [])
        log.append(int(at.timestamp() * 1000))
        return len(log) - 1


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> Kafka:
    cluster = Kafka()

    class Admin:
        def __init__(self, **_: Any) -> None:
            pass

        async def start(self) -> None:
            pass

        async def close(self) -> None:
            pass

        async def list_consumer_group_offsets(
            self, group: str
        ) -> dict[TopicPartition, OffsetAndMetadata]:
            offsets = cluster.committed.get(group, {})
            return {tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()}

    class Consumer(Admin):
        async def stop(self) -> None:
            pass

        async def offsets_for_times(
            self, times: dict[TopicPartition, int]
        ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
            return {
                tp: next(
                    (
                        OffsetAndTimestamp(offset, at)
                        for offset, at in enumerate(cluster.logs.get(tp, []))
                        if at >= ms
                    ),
                    None,
                )
                for tp, ms in times.items()
            }

        async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
            return {tp: len(cluster.logs.get(tp, [])) for tp in tps}

    async def commit_outside(
        _bootstrap: str, group: str, offsets: dict[TopicPartition, int], _ctx: Any
    ) -> bool:
        cluster.committed.setdefault(group, {}).update(offsets)
        return True

    monkeypatch.setattr(rewind, "AIOKafkaAdminClient", Admin)
    monkeypatch.setattr(rewind, "AIOKafkaConsumer", Consumer)
    monkeypatch.setattr(rewind, "commit_outside", commit_outside)
    return cluster


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


async def test_what_was_published_before_the_backup_and_applied_after_it_is_read_again(
    kafka: Kafka,
) -> None:
    """Published a second before the backup, applied a second after it (routing's lag): the
    restored database lacks its effect, so routing goes back to it, not to the first event
    after the backup's time."""
    kafka.publish(SUBMITTED_0, BACKUP - timedelta(minutes=61))  # applied long before
    in_flight = kafka.publish(SUBMITTED_0, BACKUP - timedelta(seconds=1))
    after = kafka.publish(SUBMITTED_0, BACKUP + timedelta(seconds=5))
    kafka.committed["routing"] = {SUBMITTED_0: 3}
    assert await rewind.rewind("k:9092", "routing", BACKUP) == [
        Move("routing", SUBMITTED_0, 3, in_flight)
    ]
    assert kafka.committed["routing"][SUBMITTED_0] == in_flight
    # No margin: from the backup's time itself, as asked.
    kafka.committed["routing"] = {SUBMITTED_0: 3}
    await rewind.rewind("k:9092", "routing", BACKUP, margin=timedelta(0))
    assert kafka.committed["routing"][SUBMITTED_0] == after


def test_the_command_says_from_when_it_reads_again(
    kafka: Kafka, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka.publish(SUBMITTED_0, BACKUP - timedelta(minutes=20))
    kafka.publish(SUBMITTED_0, BACKUP + timedelta(minutes=1))
    kafka.committed["routing"] = {SUBMITTED_0: 2}
    monkeypatch.delenv("TAWASUL_KAFKA_TLS", raising=False)
    main(["--bootstrap", "k:9092", "routing", "--to", "2026-12-06T12:00:00+03:00", "--dry-run"])
    assert capsys.readouterr().out == (
        "from 2026-12-06T11:00:00+03:00 (--to less a margin of 1:00:00)\n"
        f"would move routing {REQUEST_SUBMITTED}[0]: 2 -> 0\n"
        "1 partition(s) to move\n"
    )
    assert kafka.committed["routing"] == {SUBMITTED_0: 2}
    main(["--bootstrap", "k:9092", "routing", "--to", "2026-12-06T09:00:00Z", "--margin", "10m"])
    assert capsys.readouterr().out == (
        "from 2026-12-06T08:50:00+00:00 (--to less a margin of 0:10:00)\n"
        f"moved routing {REQUEST_SUBMITTED}[0]: 2 -> 1\n"
        "1 partition(s) moved\n"
    )


@pytest.mark.parametrize(
    ("text", "margin"),
    [
        ("1h", timedelta(hours=1)),
        ("30m", timedelta(minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("0", timedelta(0)),
    ],
)
def test_a_margin_is_hours_minutes_or_seconds(text: str, margin: timedelta) -> None:
    assert duration(text) == margin


@pytest.mark.parametrize("text", ["1", "-5m", "1d", "1.5h", "h", "1h30m", ""])
def test_any_other_margin_is_refused(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--bootstrap", "k:9092", "routing", "--to", "2026-12-06T09:00:00Z"]
    with pytest.raises(SystemExit):
        main([*argv, f"--margin={text}"])
    assert f"argument --margin: {text!r} is no duration: 1h, 30m, 90s or 0" in (
        capsys.readouterr().err
    )
