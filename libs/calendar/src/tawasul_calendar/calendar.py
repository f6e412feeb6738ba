"""Working time on the Saudi calendar: office hours on working days, less closures and pauses.

Every answer is exact to the microsecond and consistent with every other: adding an amount of
working time gives the earliest instant at which that much has elapsed, so measuring from the
start to that instant gives the amount back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from tawasul_calendar.config import CalendarConfig
from tawasul_calendar.errors import CalendarError, ConfigError
from tawasul_calendar.rules import Holiday, Sector, forecast
from tawasul_calendar.timeutil import at, check_day, midnight_after, riyadh

Interval = tuple[datetime, datetime]

SUNDAY_TO_THURSDAY = frozenset({6, 0, 1, 2, 3})  # date.weekday(): Monday is 0


@dataclass(frozen=True)
class OfficeHours:
    """When the office works on a working day; Friday and Saturday are the weekend."""

    opens: time = time(7, 30)
    closes: time = time(14, 30)
    weekdays: frozenset[int] = SUNDAY_TO_THURSDAY

    def __post_init__(self) -> None:
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None:
            raise ConfigError("office hours are Riyadh wall-clock times, without a zone")
        if not self.opens < self.closes:
            raise ConfigError("office hours: opens must be before closes")
        if not self.weekdays or not self.weekdays <= SUNDAY_TO_THURSDAY:
            raise ConfigError("office hours: weekdays must be some of Sunday to Thursday")

    @property
    def day_length(self) -> timedelta:
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)


class SlaUnit(StrEnum):
    WORKING_DAYS = "working_days"
    WORKING_HOURS = "working_hours"


@dataclass(frozen=True)
class Sla:
    """A promise counted in working time: "7 working days", "72 working hours"."""

    amount: int
    unit: SlaUnit

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise CalendarError("an SLA must be a positive amount")

    @classmethod
    def days(cls, amount: int) -> Sla:
        return cls(amount, SlaUnit.WORKING_DAYS)

    @classmethod
    def hours(cls, amount: int) -> Sla:
        return cls(amount, SlaUnit.WORKING_HOURS)

    def budget(self, hours: OfficeHours) -> timedelta:
        """The working time the promise allows: a working day is one full office day."""
        if self.unit is SlaUnit.WORKING_DAYS:
            return self.amount * hours.day_length
        return timedelta(hours=self.amount)


class WorkingCalendar:
    """One sector's calendar with its office hours and configuration; immutable."""

    def __init__(
        self,
        *,
        sector: Sector = Sector.PUBLIC,
        hours: OfficeHours | None = None,
        config: CalendarConfig | None = None,
    ) -> None:
        self.sector = sector
        self.hours = hours or OfficeHours()
        self.config = config or CalendarConfig()
        self._closed: dict[int, dict[date, tuple[Holiday, ...]]] = {}
        self._closures = [(c.start, c.end) for c in self.config.closures_for(sector)]
        # Each day's office hours, made once: every due date walks the days ahead.
        self._open: dict[date, tuple[Interval, ...]] = {}
        # Per year, the office time before each of its days: `elapsed` over months reads two.
        self._totals: dict[int, list[timedelta]] = {}

    def updated(self, config: CalendarConfig) -> WorkingCalendar:
        """This calendar with a newer configuration; the same one again changes nothing."""
        if config.version == self.config.version:
            if config != self.config:
                raise ConfigError(f"version {config.version} was already loaded with other content")
            return self
        if config.version < self.config.version:
            raise ConfigError(
                f"version {config.version} is older than the loaded {self.config.version}"
            )
        return WorkingCalendar(sector=self.sector, hours=self.hours, config=config)

    def holidays_on(self, day: date) -> tuple[Holiday, ...]:
        """Why `day` is closed for this sector (empty on an ordinary day)."""
        check_day(day)
        year = self._closed.get(day.year)
        if year is None:
            year = self._closed[day.year] = self._year(day.year)
        return year.get(day, ())

    def is_working_day(self, day: date) -> bool:
        return check_day(day).weekday() in self.hours.weekdays and not self.holidays_on(day)

    def open_intervals(self, day: date) -> list[Interval]:
        """The office hours of `day` less any configured closure."""
        return list(self._open_on(day))

    def _open_on(self, day: date) -> tuple[Interval, ...]:
        found = self._open.get(day)
        if found is None:
            found = self._open[day] = (
                tuple(
                    _subtract(
                        [(at(day, self.hours.opens), at(day, self.hours.closes))], self._closures
                    )
                )
                if self.is_working_day(day)
                else ()
            )
        return found

    def next_opening(self, instant: datetime) -> datetime:
        """The first working instant at or after `instant`: where a clock started then starts."""
        begin, _ = next(self._intervals(riyadh(instant), ()))
        return begin

    def add(
        self, start: datetime, amount: timedelta, *, pauses: Sequence[Interval] = ()
    ) -> datetime:
        """The earliest instant by which `amount` of working time has passed since `start`."""
        if amount < timedelta(0):
            raise CalendarError("cannot add a negative amount of working time")
        remaining = amount
        start = riyadh(start)
        if not remaining:
            check_day(start.date())
            return start
        intervals = self._intervals(start, pauses)
        while True:
            begin, end = next(intervals)
            if remaining <= end - begin:
                return begin + remaining
            remaining -= end - begin

    def add_working_days(
        self, start: datetime, days: int, *, pauses: Sequence[Interval] = ()
    ) -> datetime:
        return self.add(start, days * self.hours.day_length, pauses=pauses)

    def add_working_hours(
        self, start: datetime, hours: int, *, pauses: Sequence[Interval] = ()
    ) -> datetime:
        return self.add(start, timedelta(hours=hours), pauses=pauses)

    def due(self, start: datetime, sla: Sla, *, pauses: Sequence[Interval] = ()) -> datetime:
        return self.add(start, sla.budget(self.hours), pauses=pauses)

    def elapsed(
        self, start: datetime, end: datetime, *, pauses: Sequence[Interval] = ()
    ) -> timedelta:
        """The working time between two instants, paused intervals left out."""
        start, end = riyadh(start), riyadh(end)
        if end < start:
            raise CalendarError("the end is before the start")
        total = self._worked(start, end)
        for begin, finish in _union(pauses):
            begin, finish = max(begin, start), min(finish, end)
            if begin < finish:
                total -= self._worked(begin, finish)
        return total

    def _worked(self, start: datetime, end: datetime) -> timedelta:
        """Office time in [start, end), both in Riyadh time: whole days come off the yearly
        running totals, so two years cost no more to measure than two days."""
        first, last = start.date(), end.date()
        if first == last:
            return self._worked_on(first, start, end)
        return (
            self._worked_on(first, start, midnight_after(first))
            + self._whole_days(first + timedelta(days=1), last)
            + self._worked_on(last, at(last, time(0)), end)
        )

    def _worked_on(self, day: date, start: datetime, end: datetime) -> timedelta:
        total = timedelta(0)
        for begin, finish in self._open_on(day):
            begin, finish = max(begin, start), min(finish, end)
            if begin < finish:
                total += finish - begin
        return total

    def _whole_days(self, first: date, last: date) -> timedelta:
        """Office time of the days from `first` up to, not including, `last`."""
        if first.year == last.year:
            totals = self._totals_of(first.year)
            return totals[_day_of_year(last)] - totals[_day_of_year(first)]
        totals = self._totals_of(first.year)
        total = totals[-1] - totals[_day_of_year(first)]
        for year in range(first.year + 1, last.year):
            total += self._totals_of(year)[-1]
        return total + self._totals_of(last.year)[_day_of_year(last)]

    def _totals_of(self, year: int) -> list[timedelta]:
        """Office time before each day of `year` from its 1 January; the last is the year's."""
        totals = self._totals.get(year)
        if totals is None:
            running = timedelta(0)
            totals = [running]
            day = date(year, 1, 1)
            while day.year == year:
                running += sum((end - begin for begin, end in self._open_on(day)), timedelta(0))
                totals.append(running)
                day += timedelta(days=1)
            self._totals[year] = totals
        return totals

    def _intervals(self, start: datetime, pauses: Sequence[Interval]) -> Iterator[Interval]:
        """Working intervals from `start` on, pauses cut out; ends by raising past the range."""
        cuts = [(riyadh(a), riyadh(b)) for a, b in pauses]
        day = start.date()
        while True:
            hours: Iterable[Interval] = self._open_on(day)
            if cuts:
                day_start, day_end = at(day, time(0)), midnight_after(day)
                hours = _subtract(hours, [(a, b) for a, b in cuts if a < day_end and b > day_start])
            for begin, end in hours:
                begin = max(begin, start)
                if begin < end:
                    yield begin, end
            day += timedelta(days=1)

    def _year(self, year: int) -> dict[date, tuple[Holiday, ...]]:
        closed = dict(forecast(year, self.sector))
        for span in self.config.spans_for(self.sector):
            replaced = (span.occasion, span.hijri_year)
            for day, entries in list(closed.items()):
                kept = tuple(h for h in entries if (h.occasion, h.hijri_year) != replaced)
                if kept:
                    closed[day] = kept
                else:
                    del closed[day]
            day = span.first_day
            while day <= span.last_day:
                if day.year == year:
                    announced = Holiday(day, span.occasion, span.hijri_year, forecast=False)
                    closed[day] = (*closed.get(day, ()), announced)
                day += timedelta(days=1)
        return closed


def _day_of_year(day: date) -> int:
    return day.toordinal() - date(day.year, 1, 1).toordinal()


def _union(intervals: Iterable[Interval]) -> list[Interval]:
    """The intervals in Riyadh time, sorted, overlapping ones merged."""
    merged: list[Interval] = []
    for begin, end in sorted((riyadh(a), riyadh(b)) for a, b in intervals):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif begin < end:
            merged.append((begin, end))
    return merged


def _subtract(spans: Iterable[Interval], cuts: Iterable[Interval]) -> list[Interval]:
    pieces = list(spans)
    for cut_start, cut_end in cuts:
        kept: list[Interval] = []
        for begin, end in pieces:
            if cut_end <= begin or cut_start >= end:
                kept.append((begin, end))
                continue
            if begin < cut_start:
                kept.append((begin, cut_start))
            if cut_end < end:
                kept.append((cut_end, end))
        pieces = kept
    return pieces
