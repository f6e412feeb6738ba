"""How long a rejection may be appealed: intake enforces it, review tells it with the decision.

One rule for both, so that the date the beneficiary is told is the one intake holds them to.
"""

from __future__ import annotations

from datetime import datetime, time

from tawasul_calendar import RIYADH, WorkingCalendar

# A rejection may be appealed once, within this many working days of it.
APPEAL_WITHIN_WORKING_DAYS = 10


def appeal_until(calendar: WorkingCalendar, rejected_at: datetime) -> datetime:
    """The last instant a rejection made at `rejected_at` may be appealed: the beneficiary is
    told a day, so the window runs to the end of it, in Riyadh."""
    last = calendar.add_working_days(rejected_at, APPEAL_WITHIN_WORKING_DAYS)
    return datetime.combine(last.astimezone(RIYADH).date(), time.max, tzinfo=RIYADH)
