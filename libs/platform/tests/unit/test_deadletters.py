"""tawasul-dead-letters' own logic: what a replay publishes, how a dead letter reads, and the
refusals of its command line. Kafka's side is tested on the real stack
(tests/e2e/test_dead_letters.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.errors import KafkaConnectionError
from google.protobuf.timestamp_pb2 import Timestamp
from tawasul.events.v1 import events_pb2
from tawasul_platform import topics
from tawasul_platform.deadletters import (
    DeadLetter,
    discard,
    main,
    refuse_forgotten,
    replay,
    subscription,
)
from tawasul_platform.retention import INBOX_KEEP

DLT = topics.dead_letter_topic(topics.REQUEST_ROUTED, "review")
ENVELOPE = events_pb2.Envelope(
    event_id="e-1", event_type="tawasul.requests.routed", request_id="r-1"
).SerializeToString()


def letter(value: bytes, *headers: tuple[str, bytes]) -> DeadLetter:
    return DeadLetter(
        dlt=DLT,
        partition=0,
        offset=7,
        timestamp_ms=1_764_950_400_000,  # 2025-12-05T16:00:00Z
        key=b"r-1",
        value=value,
        headers=headers,
    )


PARKED = (
    ("traceparent", b"00-abc-def-01"),
    ("event_type", b"tawasul.requests.routed"),
    ("dlt.error", b"IntegrityError('request_number')"),
    ("dlt.source", b"tawasul.requests.routed.v1[3]@41"),
    ("dlt.attempts", b"4"),
)


def test_a_replay_carries_the_events_own_headers_and_where_it_was_parked() -> None:
    assert letter(ENVELOPE, *PARKED).replayed_headers() == [
        ("traceparent", b"00-abc-def-01"),
        ("event_type", b"tawasul.requests.routed"),
        ("replayed-from", f"{DLT}[0]@7".encode()),
    ]


def test_a_dead_letter_parked_again_is_replayed_from_its_latest_parking() -> None:
    again = letter(
        ENVELOPE,
        *PARKED,
        ("replayed-from", f"{DLT}[0]@2".encode()),
        ("dlt.error", b"IntegrityError('again')"),
        ("dlt.attempts", b"4"),
    )
    assert again.replayed_headers()[-1] == ("replayed-from", f"{DLT}[0]@7".encode())
    assert [k for k, _ in again.replayed_headers()].count("replayed-from") == 1
    assert "error=IntegrityError('again')" in again.describe()
    assert f"replayed from {DLT}[0]@2" in again.describe()


def test_a_dead_letter_reads_as_its_event_or_as_undecodable() -> None:
    assert letter(ENVELOPE, *PARKED).describe() == (
        f"{DLT}[0]@7 parked 2025-12-05T16:00:00Z: tawasul.requests.routed event=e-1"
        " request=r-1 key=r-1 attempts=4 from tawasul.requests.routed.v1[3]@41"
        " error=IntegrityError('request_number')"
    )
    assert ": undecodable (5 bytes) key=r-1" in letter(b"\xff\xff\xff\xff\xff").describe()


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def occurred(days_ago: float, offset: int = 7) -> DeadLetter:
    at = Timestamp()
    at.FromDatetime(NOW - timedelta(days=days_ago))
    event = events_pb2.Envelope(event_id=f"e-{offset}", occurred_at=at)
    return DeadLetter(DLT, 0, offset, 0, b"r-1", event.SerializeToString(), ())


def test_a_dead_letter_kept_as_long_as_its_topic_allows_may_be_replayed() -> None:
    # Parked on the last day its topic held it, replayed on the last day its own topic holds it.
    refuse_forgotten([occurred(56), occurred(0, offset=8)], NOW)


def test_a_replay_of_an_event_the_inboxes_have_forgotten_is_refused_before_anything_goes_out() -> (
    None
):
    """Parked again after replays, a dead letter can outlive the groups' memory of its event:
    those that applied it would take the replay for a new event and apply it again."""
    forgotten = INBOX_KEEP.days
    with pytest.raises(ValueError, match="would apply it twice") as refused:
        refuse_forgotten([occurred(1, offset=5), occurred(2, offset=6), occurred(forgotten)], NOW)
    said = str(refused.value)
    assert said.startswith(f"{DLT}[0]@7: its event occurred 2026-01-03T12:00:00Z, more than 56")
    assert "replay the 2 before it with --count 2" in said
    with pytest.raises(ValueError, match="Nothing was replayed; apply it by hand"):
        refuse_forgotten([occurred(forgotten)], NOW)


def test_an_undecodable_dead_letter_is_no_event_any_group_applied() -> None:
    refuse_forgotten([letter(b"\xff\xff\xff")], NOW)


def test_only_a_subscription_that_exists_has_dead_letters() -> None:
    assert subscription(topics.REQUEST_ROUTED, "review") == DLT
    with pytest.raises(ValueError, match="no group 'reviews' reads") as refused:
        subscription(topics.REQUEST_ROUTED, "reviews")
    assert f"  {topics.REQUEST_ROUTED} review\n" in str(refused.value)


async def test_a_compacted_topics_dead_letters_are_refused_replay_before_anything_goes_out() -> (
    None
):
    """routing parked a reviewer's v5 (a schema it did not know yet) before review published
    v6, which takes a department away. Published again, v5 would be the reviewer's latest
    record, compaction would delete v6, and a database rebuilt from the topic would give the
    department back. Nothing listens on port 1: refused before Kafka is dialled."""
    with pytest.raises(ValueError, match="is compacted") as refused:
        await replay("127.0.0.1:1", topics.STAFF_REVIEWERS, "routing", None)
    assert str(refused.value) == (
        f"{topics.STAFF_REVIEWERS} is compacted: a replay would become each key's latest record"
        " there, and compaction would delete the newer ones. Nothing was replayed; routing reads"
        " every key's latest record again at its next start: once the cause is mended, restart"
        f" routing, then discard these dead letters (discard {topics.STAFF_REVIEWERS} routing"
        " --count N)"
    )
    # What it says to do instead goes as far as Kafka.
    with pytest.raises(KafkaConnectionError):
        await discard("127.0.0.1:1", topics.STAFF_REVIEWERS, "notify-events", 1)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["list"], "--bootstrap or TAWASUL_KAFKA_BOOTSTRAP names Kafka"),
        (["--bootstrap", "k:9092", "discard", topics.REQUEST_ROUTED, "review"], "--count"),
        (
            ["--bootstrap", "k:9092", "replay", topics.REQUEST_ROUTED, "review", "--count", "0"],
            "must be 1 or more",
        ),
        (["--bootstrap", "k:9092", "replay", topics.REQUEST_ROUTED, "nobody"], "no group"),
        (
            ["--bootstrap", "k:9092", "replay", topics.STAFF_REVIEWERS, "docs"],
            f"tawasul-dead-letters: {topics.STAFF_REVIEWERS} is compacted",
        ),
        # Nothing listens on port 1: refused at once.
        (["--bootstrap", "127.0.0.1:1", "list"], "Kafka at 127.0.0.1:1: KafkaConnectionError"),
    ],
)
def test_the_command_line_refuses_what_it_cannot_do(
    argv: list[str], says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TAWASUL_KAFKA_BOOTSTRAP", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code != 0
    assert says in f"{exited.value.code}{capsys.readouterr().err}"
