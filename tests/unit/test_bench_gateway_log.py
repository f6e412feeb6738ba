"""P7 reads the SMS gateway stand-in's log as it grows: whole lines only, first text wins."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from bench.latency import GatewayLog


def line(text: str, at: str) -> bytes:
    return (json.dumps({"text": text, "received_at": at}, ensure_ascii=False) + "\n").encode()


def test_texts_are_matched_by_request_number_from_where_the_last_look_stopped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "messages.jsonl"
    path.write_bytes(line("older TW000000019", "2026-12-01T10:00:00+00:00"))
    log = GatewayLog(path)  # what was there before the benchmark is not its
    assert log.first_seen() == {}
    first = "2026-12-02T10:00:01.250000+00:00"
    with path.open("ab") as out:
        out.write(line("تم استلام طلبك رقم \u2066TW123456780\u2069 في خدمة تواصل", first))
        out.write(b'{"text": "TW5555')  # a line still being written
    assert log.first_seen() == {"TW123456780": datetime.fromisoformat(first).timestamp()}
    with path.open("ab") as out:
        out.write(b'55550", "received_at": "2026-12-02T10:00:02+00:00"}\n')
        out.write(line("again TW123456780", "2026-12-02T10:00:09+00:00"))
    seen = log.first_seen()
    assert seen["TW555555550"] == datetime(2026, 12, 2, 10, 0, 2, tzinfo=UTC).timestamp()
    assert seen["TW123456780"] == datetime.fromisoformat(first).timestamp()


def test_only_the_pending_numbers_are_answered(tmp_path: Path) -> None:
    path = tmp_path / "messages.jsonl"
    path.touch()
    log = GatewayLog(path)
    at = "2026-12-02T10:00:01+00:00"
    with path.open("ab") as out:
        out.write(line("first TW111111110", at))
        out.write(line("second TW222222220", at))
    when = datetime.fromisoformat(at).timestamp()
    assert log.arrived(["TW222222220", "TW333333330"]) == {"TW222222220": when}
    assert log.arrived(["TW111111110"]) == {"TW111111110": when}
