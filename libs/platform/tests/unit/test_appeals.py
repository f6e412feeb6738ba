"""The appeal window shared by intake (which enforces it) and review (which tells it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tawasul_calendar import RIYADH, WorkingCalendar
from tawasul_platform.appeals import appeal_until


def test_an_appeal_may_be_made_to_the_end_of_the_tenth_working_day_in_riyadh() -> None:
    # Monday 5 January 2026, 10:00 in Riyadh: ten working days on is Monday 19 January.
    until = appeal_until(WorkingCalendar(), datetime(2026, 1, 5, 7, tzinfo=UTC))
    assert until == datetime(2026, 1, 20, tzinfo=RIYADH) - timedelta(microseconds=1)
    assert until.utcoffset() == timedelta(hours=3)
