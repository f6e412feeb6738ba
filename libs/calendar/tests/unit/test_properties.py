"""Properties that every answer of the calendar keeps, over generated instants and amounts."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from tawasul_calendar import RIYADH, Sector, WorkingCalendar
from tawasul_calendar.config import CalendarConfig, Closure

CALENDARS = {sector: WorkingCalendar(sector=sector) for sector in Sector}
# An outage closing part of an office day, and a closure over a week, for one calendar.
CLOSED = WorkingCalendar(
    config=CalendarConfig(
        version=1,
        closures=(
            Closure(
                "outage",
                datetime(2026, 3, 10, 9, tzinfo=RIYADH),
                datetime(2026, 3, 10, 11, 30, tzinfo=RIYADH),
                "انقطاع",
                "outage",
            ),
            Closure(
                "week",
                datetime(2027, 6, 2, 12, tzinfo=RIYADH),
                datetime(2027, 6, 9, 10, tzinfo=RIYADH),
                "إغلاق",
                "closure",
            ),
        ),
    )
)

instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(RIYADH)
).map(lambda t: t.replace(second=0, microsecond=0))
# Up to 40 working days of 7 hours, to the minute.
amounts = st.integers(min_value=0, max_value=40 * 7 * 60).map(lambda m: timedelta(minutes=m))
sectors = st.sampled_from(list(Sector))
pauses = st.tuples(instants, st.integers(min_value=0, max_value=30 * 24 * 60)).map(
    lambda p: (p[0], p[0] + timedelta(minutes=p[1]))
)

settings.register_profile("calendar", max_examples=300, deadline=None)
settings.load_profile("calendar")


@given(sectors, instants, amounts, amounts)
def test_adding_is_monotone_in_the_amount(
    sector: Sector, start: datetime, a: timedelta, b: timedelta
) -> None:
    calendar = CALENDARS[sector]
    small, large = sorted((a, b))
    assert calendar.add(start, small) <= calendar.add(start, large)


@given(sectors, instants, instants, amounts)
def test_adding_is_monotone_in_the_start(
    sector: Sector, a: datetime, b: datetime, amount: timedelta
) -> None:
    calendar = CALENDARS[sector]
    early, late = sorted((a, b))
    assert calendar.add(early, amount) <= calendar.add(late, amount)


@given(sectors, instants, amounts)
def test_adding_then_measuring_gives_the_amount_back(
    sector: Sector, start: datetime, amount: timedelta
) -> None:
    calendar = CALENDARS[sector]
    assert calendar.elapsed(start, calendar.add(start, amount)) == amount


@given(sectors, instants, amounts, st.lists(pauses, max_size=3))
def test_a_pause_never_brings_a_due_date_earlier(
    sector: Sector, start: datetime, amount: timedelta, paused: list[tuple[datetime, datetime]]
) -> None:
    calendar = CALENDARS[sector]
    due = calendar.add(start, amount, pauses=paused)
    assert due >= calendar.add(start, amount)
    assert calendar.elapsed(start, due, pauses=paused) == amount


@given(sectors, instants, amounts)
def test_the_due_date_is_the_earliest_instant_with_that_much_work_done(
    sector: Sector, start: datetime, amount: timedelta
) -> None:
    calendar = CALENDARS[sector]
    due = calendar.add(start, amount)
    if amount:
        assert calendar.elapsed(start, due - timedelta(minutes=1)) < amount
        assert calendar.is_working_day(due.date())


def _walked(
    calendar: WorkingCalendar,
    start: datetime,
    end: datetime,
    paused: list[tuple[datetime, datetime]],
) -> timedelta:
    """`elapsed` by its definition: each day's office hours within [start, end), less every
    minute of them inside a pause."""
    total = timedelta(0)
    day = start.astimezone(RIYADH).date()
    while day <= end.astimezone(RIYADH).date():
        for begin, finish in calendar.open_intervals(day):
            begin, finish = max(begin, start), min(finish, end)
            if begin < finish:
                total += finish - begin
                cuts = sorted((max(a, begin), min(b, finish)) for a, b in paused)
                covered, reached = timedelta(0), begin
                for a, b in cuts:
                    a = max(a, reached)
                    if a < b:
                        covered += b - a
                        reached = b
                total -= covered
        day += timedelta(days=1)
    return total


years = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2029, 12, 31), timezones=st.just(RIYADH)
).map(lambda t: t.replace(microsecond=0))
long_pauses = st.tuples(years, st.integers(min_value=0, max_value=400 * 24 * 60)).map(
    lambda p: (p[0], p[0] + timedelta(minutes=p[1]))
)


@given(
    st.sampled_from([*CALENDARS.values(), CLOSED]),
    years,
    years,
    st.lists(long_pauses, max_size=4),
)
@settings(max_examples=150)
def test_elapsed_over_years_is_each_day_s_office_hours_less_the_pauses(
    calendar: WorkingCalendar,
    a: datetime,
    b: datetime,
    paused: list[tuple[datetime, datetime]],
) -> None:
    start, end = sorted((a, b))
    assert calendar.elapsed(start, end, pauses=paused) == _walked(calendar, start, end, paused)
