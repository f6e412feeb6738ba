"""Riyadh time and the range of dates the calendar answers for."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tawasul_calendar.errors import NaiveDatetimeError, OutOfRangeError

RIYADH = ZoneInfo("Asia/Riyadh")

# The rules encoded here are those in force since Founding Day was instituted (Royal Order
# A/371, 2022); hijridate's Umm al-Qura tables end on 30 Dhu al-Hijjah 1500 (16 Nov 2077), so
# 2076 is the last Gregorian year whose Eids can all be forecast.
FIRST_DAY = date(2022, 1, 1)
LAST_DAY = date(2076, 12, 31)


def riyadh(instant: datetime) -> datetime:
    """`instant` in Riyadh time; a naive datetime is refused rather than guessed."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise NaiveDatetimeError(f"{instant.isoformat()} has no time zone")
    return instant.astimezone(RIYADH)


def check_day(day: date) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise OutOfRangeError(
            f"{day.isoformat()} is outside the calendar's range "
            f"{FIRST_DAY.isoformat()}..{LAST_DAY.isoformat()}"
        )
    return day


def at(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=RIYADH)


def midnight_after(day: date) -> datetime:
    return at(day + timedelta(days=1), time(0))
