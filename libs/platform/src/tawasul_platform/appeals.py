"""How long a rejection may be appealed (intake enforces it, review tells it with the decision),
and the SLA clock an appeal runs on (intake tells its due date, review alerts on it).

One rule for each, shared, so that the dates the beneficiary is told are the ones the services
hold to.
"""

from __future__ import annotations

from datetime import datetime, time

from tawasul_calendar import RIYADH, SlaClock, WorkingCalendar

# A rejection may be appealed once, within this many working days of it.
APPEAL_WITHIN_WORKING_DAYS = 10


def appeal_until(calendar: WorkingCalendar, rejected_at: datetime) -> datetime:
    """The last instant a rejection made at `rejected_at` may be appealed: the beneficiary is
    told a day, so the window runs to the end of it, in Riyadh."""
    last = calendar.add_working_days(rejected_at, APPEAL_WITHIN_WORKING_DAYS)
    return datetime.combine(last.astimezone(RIYADH).date(), time.max, tzinfo=RIYADH)


def appeal_clock(calendar: WorkingCalendar, stopped: SlaClock, appealed_at: datetime) -> SlaClock:
    """The SLA clock of an appeal made at `appealed_at`, given the clock stopped (paused) at the
    rejection. An appeal is a new review of the request: the whole SLA from the appeal, so that
    one of a rejection made after the due date is not due before it arrives. Unless the old
    clock, resumed, is due later (stamps of two machines' clocks): the appeal keeps at least
    what it had.

    The fresh clock still starts at the submission, paused until the appeal: the services store
    a clock's start as the request's submission time."""
    resumed = stopped
    if stopped.paused_since is not None:
        resumed = stopped.resume(max(appealed_at, stopped.paused_since))
    start = stopped.started_at
    fresh = SlaClock(started_at=start, sla=stopped.sla, pauses=((start, max(appealed_at, start)),))
    if resumed.due(calendar, now=appealed_at) > fresh.due(calendar, now=appealed_at):
        return resumed
    return fresh
