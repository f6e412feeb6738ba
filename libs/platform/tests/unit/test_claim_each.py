"""A batch's events are claimed once each, in the batch's order, whatever it repeats."""

from __future__ import annotations

from tawasul_platform.ports import claim_each
from tawasul_platform.testing import FakeInbox


async def test_new_events_in_order_once_each_and_none_applied_before() -> None:
    inbox = FakeInbox()
    assert await claim_each(inbox, "review", [("e1", "old")]) == ["old"]
    batch = [("e2", "b"), ("e1", "old again"), ("e3", "c"), ("e2", "b redelivered"), ("e4", "d")]
    assert await claim_each(inbox, "review", batch) == ["b", "c", "d"]
    # Another consumer's inbox is its own.
    assert await claim_each(inbox, "docs", batch) == ["b", "old again", "c", "d"]
    assert await claim_each(inbox, "review", []) == []
