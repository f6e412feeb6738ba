"""The appeal window shared by intake (which enforces it) and review (which tells it), and the
appeal's SLA clock (intake tells its due date, review alerts on it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tawasul_calendar import RIYADH, Sla, SlaClock, WorkingCalendar
from tawasul_platform.appeals import appeal_clock, appeal_until


def test_an_appeal_may_be_made_to_the_end_of_the_tenth_working_day_in_riyadh() -> None:
    # Monday 5 January 2026, 10:00 in Riyadh: ten working days on is Monday 19 January.
    until = appeal_until(WorkingCalendar(), datetime(2026, 1, 5, 7, tzinfo=UTC))
    assert until == datetime(2026, 1, 20, tzinfo=RIYADH) - timedelta(microseconds=1)
    assert until.utcoffset() == timedelta(hours=3)


def riyadh(day: int, hour: int) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=RIYADH)


def test_an_appeal_runs_on_the_whole_sla_from_the_appeal() -> None:
    # Submitted Sunday 4 January 10:00, five working days (due Sunday 11th), rejected late on
    # Tuesday 13th: resumed, the old clock would fall due Monday 12th, before the appeal.
    calendar = WorkingCalendar()
    stopped = SlaClock(started_at=riyadh(4, 10), sla=Sla.days(5)).pause(riyadh(13, 10))
    clock = appeal_clock(calendar, stopped, riyadh(14, 10))
    # Paused from the submission (the start the services store) to the appeal.
    assert clock == SlaClock(
        started_at=riyadh(4, 10), sla=Sla.days(5), pauses=((riyadh(4, 10), riyadh(14, 10)),)
    )
    assert clock.used(calendar, now=riyadh(14, 10)) == 0
    assert clock.due(calendar, now=riyadh(14, 10)) == riyadh(21, 10)


def test_an_appeal_keeps_the_old_clock_when_it_is_due_later() -> None:
    # Information asked for at once and answered Monday 10:00, the rejection a second later by
    # review's clock, the appeal stamped a second before the answer by intake's (replicas' clocks
    # differ): resumed where it stopped, with all but a second left, the old clock is due later.
    calendar = WorkingCalendar()
    second = timedelta(seconds=1)
    stopped = (
        SlaClock(started_at=riyadh(4, 10), sla=Sla.days(5))
        .pause(riyadh(4, 10))
        .resume(riyadh(5, 10))
        .pause(riyadh(5, 10) + second)
    )
    clock = appeal_clock(calendar, stopped, riyadh(5, 10) - second)
    assert clock == stopped.resume(riyadh(5, 10) + second)
    assert clock.due(calendar, now=riyadh(5, 10)) == riyadh(12, 10)
