"""Properties that every answer of the calendar keeps, over generated instants and amounts."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from tawasul_calendar import RIYADH, Sector, WorkingCalendar

CALENDARS = {sector: WorkingCalendar(sector=sector) for sector in Sector}

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
