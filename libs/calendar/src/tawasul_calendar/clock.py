"""An SLA clock: started at submission, paused while the request waits on the beneficiary."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from tawasul_calendar.calendar import Interval, Sla, WorkingCalendar
from tawasul_calendar.errors import CalendarError
from tawasul_calendar.timeutil import riyadh


@dataclass(frozen=True)
class SlaClock:
    """Immutable: `pause` and `resume` return the next state of the clock.

    Paused intervals do not count as working time, so each one moves the due date out by the
    working time it covered.
    """

    started_at: datetime
    sla: Sla
    pauses: tuple[Interval, ...] = ()
    paused_since: datetime | None = None

    def __post_init__(self) -> None:
        riyadh(self.started_at)

    @property
    def paused(self) -> bool:
        return self.paused_since is not None

    @property
    def resumed_at(self) -> datetime:
        """When the clock last began to run: its start, or the end of its last pause. A pause
        starts no earlier (events stamped by another machine's clock may say earlier)."""
        return riyadh(self.pauses[-1][1] if self.pauses else self.started_at)

    def pause(self, at: datetime) -> SlaClock:
        if self.paused_since is not None:
            raise CalendarError("the clock is already paused")
        if riyadh(at) < self.resumed_at:
            raise CalendarError("a pause cannot start before the clock's last change")
        return replace(self, paused_since=at)

    def resume(self, at: datetime) -> SlaClock:
        if self.paused_since is None:
            raise CalendarError("the clock is not paused")
        if riyadh(at) < self.paused_since:
            raise CalendarError("the clock cannot resume before it was paused")
        return replace(self, pauses=(*self.pauses, (self.paused_since, at)), paused_since=None)

    def due(self, calendar: WorkingCalendar, *, now: datetime) -> datetime:
        """When the promise falls due; while paused, as if the clock resumed at `now`."""
        return calendar.due(self.started_at, self.sla, pauses=self._pauses_until(now))

    def elapsed(self, calendar: WorkingCalendar, *, now: datetime) -> timedelta:
        if riyadh(now) < riyadh(self.started_at):
            return timedelta(0)
        return calendar.elapsed(self.started_at, now, pauses=self._pauses_until(now))

    def remaining(self, calendar: WorkingCalendar, *, now: datetime) -> timedelta:
        """Working time left before the due date; negative once breached."""
        return self.sla.budget(calendar.hours) - self.elapsed(calendar, now=now)

    def used(self, calendar: WorkingCalendar, *, now: datetime) -> float:
        """The share of the budget spent (0.5 and 0.75 are the usual warnings, 1 a breach)."""
        return self.elapsed(calendar, now=now) / self.sla.budget(calendar.hours)

    def rescheduled(
        self, before: WorkingCalendar, after: WorkingCalendar, *, now: datetime
    ) -> tuple[datetime, datetime] | None:
        """The (old, new) due date when a new calendar (an announcement) moves it, else None."""
        old, new = self.due(before, now=now), self.due(after, now=now)
        return None if old == new else (old, new)

    def _pauses_until(self, now: datetime) -> tuple[Interval, ...]:
        if self.paused_since is None:
            return self.pauses
        return (*self.pauses, (self.paused_since, max(riyadh(now), riyadh(self.paused_since))))
