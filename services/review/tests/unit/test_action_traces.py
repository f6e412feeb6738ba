"""Which trace what review writes for a poll's applicant actions continues."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aiokafka.structs import ConsumerRecord
from tawasul.events.v1 import events_pb2
from tawasul_platform import tracing
from tawasul_platform.consumer import EventConsumer
from tawasul_platform.topics import APPLICANT_ACTIONS
from tawasul_review.app import handlers
from tawasul_review.entrypoints.events import on_applicant_actions


def consumed(event: events_pb2.Envelope, traceparent: str) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=APPLICANT_ACTIONS,
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=event.request_id.encode(),
        value=event.SerializeToString(),
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=[(tracing.TRACEPARENT, traceparent.encode())],
    )


async def test_each_action_of_a_poll_writes_in_its_own_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A follow-up and a cancellation of one request in one poll, each the beneficiary's own
    call and trace, applied one at a time: what each writes continues its own trace. The
    batch's spans are found by request, so both wrote in the cancellation's."""
    written: list[tuple[str, str]] = []

    async def follow_up(**_: Any) -> None:
        written.append(("followed_up", tracing.current_traceparent(request)))

    async def withdraw(**_: Any) -> None:
        written.append(("withdrawn", tracing.current_traceparent(request)))

    async def take_items(**_: Any) -> None:
        pass

    monkeypatch.setattr(handlers, "follow_up", follow_up)
    monkeypatch.setattr(handlers, "withdraw", withdraw)
    monkeypatch.setattr(handlers, "take_items", take_items)
    request = str(uuid.uuid4())
    poll = [
        events_pb2.Envelope(
            event_id="e1",
            request_id=request,
            request_followed_up=events_pb2.RequestFollowedUp(request_id=request, message="?"),
        ),
        events_pb2.Envelope(
            event_id="e2",
            request_id=request,
            request_cancelled=events_pb2.RequestCancelled(request_id=request, reason="No"),
        ),
    ]
    traces = [tracing.new_traceparent() for _ in poll]
    records = [consumed(e, t) for e, t in zip(poll, traces, strict=True)]
    group = EventConsumer(bootstrap="127.0.0.1:1", group="review", producer=cast(Any, None))
    handle = on_applicant_actions(
        lambda: cast(Any, None), cast(Any, None), lambda: datetime.now(UTC)
    )

    with group._spans(records, poll):
        await handle(poll)

    assert [(what, t.split("-")[1]) for what, t in written] == [
        ("followed_up", traces[0].split("-")[1]),
        ("withdrawn", traces[1].split("-")[1]),
    ]
