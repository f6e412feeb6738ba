"""The calendar's rules and refusals, one behaviour a test."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hijridate import Hijri
from tawasul_calendar import (
    LAST_DAY,
    RIYADH,
    AnnouncedSpan,
    CalendarConfig,
    ConfigError,
    NaiveDatetimeError,
    Occasion,
    OfficeHours,
    OutOfRangeError,
    Sector,
    Sla,
    SlaClock,
    WorkingCalendar,
)
from tawasul_calendar.rules import forecast

PUBLIC = WorkingCalendar()
PRIVATE = WorkingCalendar(sector=Sector.PRIVATE)


def riyadh(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=RIYADH)


def test_the_public_sector_is_the_default() -> None:
    assert PUBLIC.sector is Sector.PUBLIC
    # 15 March 2026 (26 Ramadan 1447) is inside the public Eid break, not the private one.
    assert not PUBLIC.is_working_day(date(2026, 3, 15))
    assert PRIVATE.is_working_day(date(2026, 3, 15))


def test_holidays_say_why_a_day_is_closed() -> None:
    (founding,) = PUBLIC.holidays_on(date(2026, 2, 22))
    assert (founding.occasion, founding.name_en, founding.name_ar) == (
        Occasion.FOUNDING_DAY,
        "Founding Day",
        "يوم التأسيس",
    )
    assert founding.forecast
    # In 2028 Founding Day falls inside the public Eid al-Fitr break: both reasons are kept.
    assert {h.occasion for h in PUBLIC.holidays_on(date(2028, 2, 22))} == {
        Occasion.FOUNDING_DAY,
        Occasion.EID_AL_FITR,
    }
    assert PUBLIC.holidays_on(date(2026, 1, 6)) == ()


@pytest.mark.parametrize("year", range(2022, LAST_DAY.year + 1))
def test_the_package_eids_agree_with_umm_al_qura(year: int) -> None:
    """The private sector's Eids come from `holidays`; they must match hijridate's tables."""
    closed = forecast(year, Sector.PRIVATE)
    for hijri_year in range(1443, 1501):
        arafah = Hijri(hijri_year, 12, 9).to_gregorian()
        if arafah.year == year:
            assert any(h.occasion is Occasion.EID_AL_ADHA for h in closed[arafah])
        fitr_first = Hijri(hijri_year, 9, 29).to_gregorian() + timedelta(days=1)
        if fitr_first.year == year:
            assert any(h.occasion is Occasion.EID_AL_FITR for h in closed[fitr_first])
            assert fitr_first - timedelta(days=1) not in closed


def test_naive_instants_are_refused() -> None:
    with pytest.raises(NaiveDatetimeError):
        PUBLIC.due(datetime(2026, 1, 4, 10, 0), Sla.days(1))
    with pytest.raises(NaiveDatetimeError):
        PUBLIC.elapsed(riyadh("2026-01-04 10:00"), datetime(2026, 1, 5))


def test_other_zones_are_answered_in_riyadh_time() -> None:
    utc = datetime(2026, 1, 4, 7, 0, tzinfo=UTC)  # 10:00 in Riyadh
    due = PUBLIC.due(utc, Sla.days(1))
    assert due == riyadh("2026-01-05 10:00")
    assert due.tzinfo is RIYADH


@pytest.mark.parametrize(
    "start", ["2021-12-31 10:00", "2077-01-03 10:00", "1999-05-05 10:00", "2100-01-01 00:00"]
)
def test_dates_outside_the_tables_are_a_clear_error(start: str) -> None:
    with pytest.raises(OutOfRangeError, match="outside"):
        PUBLIC.due(riyadh(start), Sla.days(1))


def test_a_due_date_that_would_leave_the_tables_is_a_clear_error() -> None:
    with pytest.raises(OutOfRangeError):
        PUBLIC.due(riyadh("2076-12-30 10:00"), Sla.days(7))


def test_next_opening() -> None:
    assert PUBLIC.next_opening(riyadh("2026-01-08 23:59")) == riyadh("2026-01-11 07:30")
    assert PUBLIC.next_opening(riyadh("2026-01-11 09:00")) == riyadh("2026-01-11 09:00")
    assert PUBLIC.next_opening(riyadh("2026-03-13 09:00")) == riyadh("2026-03-25 07:30")


def test_elapsed_counts_only_office_hours() -> None:
    assert PUBLIC.elapsed(riyadh("2026-01-08 14:00"), riyadh("2026-01-11 08:30")) == timedelta(
        hours=1, minutes=30
    )
    assert PUBLIC.elapsed(riyadh("2026-01-09 00:00"), riyadh("2026-01-10 23:59")) == timedelta(0)


def test_office_hours_are_configurable() -> None:
    calendar = WorkingCalendar(hours=OfficeHours(opens=time(8, 0), closes=time(16, 0)))
    assert calendar.due(riyadh("2026-01-04 06:00"), Sla.hours(10)) == riyadh("2026-01-05 10:00")
    assert calendar.due(riyadh("2026-01-04 06:00"), Sla.days(1)) == riyadh("2026-01-04 16:00")


@pytest.mark.parametrize(
    "hours",
    [
        {"opens": time(14, 0), "closes": time(8, 0)},
        {"weekdays": frozenset({4})},
        {"weekdays": frozenset()},
        {"opens": time(8, 0, tzinfo=UTC)},
    ],
)
def test_office_hours_that_make_no_sense_are_refused(hours: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        OfficeHours(**hours)  # type: ignore[arg-type]


CONFIG_V1 = """{
  "version": 1,
  "announced_spans": [
    {"sector": "public", "occasion": "eid_al_fitr", "hijri_year": 1447,
     "first_day": "2026-03-17", "last_day": "2026-03-28", "source": "circular 47/1447"}
  ],
  "closures": [
    {"id": "outage-2026-01-13", "start": "2026-01-13T09:00:00+03:00",
     "end": "2026-01-13T12:00:00+03:00", "reason_ar": "عطل", "reason_en": "outage"}
  ]
}"""


def test_configuration_is_parsed() -> None:
    config = CalendarConfig.from_json(CONFIG_V1)
    assert config.version == 1
    assert config.announced == (
        AnnouncedSpan(
            Sector.PUBLIC,
            Occasion.EID_AL_FITR,
            1447,
            date(2026, 3, 17),
            date(2026, 3, 28),
            "circular 47/1447",
        ),
    )
    (closure,) = config.closures
    assert (closure.start, closure.end) == (riyadh("2026-01-13 09:00"), riyadh("2026-01-13 12:00"))
    assert closure.sectors == frozenset(Sector)


def test_loading_the_same_configuration_twice_changes_nothing() -> None:
    once = PUBLIC.updated(CalendarConfig.from_json(CONFIG_V1))
    twice = once.updated(CalendarConfig.from_json(CONFIG_V1))
    assert twice is once
    start = riyadh("2026-01-12 14:00")
    assert twice.due(start, Sla.days(3)) == once.due(start, Sla.days(3))
    assert once.due(start, Sla.days(3)) == riyadh("2026-01-18 10:00")


def test_stale_or_conflicting_versions_are_refused() -> None:
    loaded = PUBLIC.updated(CalendarConfig.from_json(CONFIG_V1))
    with pytest.raises(ConfigError, match="older"):
        loaded.updated(CalendarConfig(version=0))
    with pytest.raises(ConfigError, match="other content"):
        loaded.updated(CalendarConfig(version=1))


def test_a_newer_version_can_withdraw_a_closure() -> None:
    loaded = PUBLIC.updated(CalendarConfig.from_json(CONFIG_V1))
    withdrawn = loaded.updated(CalendarConfig(version=2))
    start = riyadh("2026-01-12 14:00")
    assert withdrawn.due(start, Sla.days(3)) == PUBLIC.due(start, Sla.days(3))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "top level"),
        ("{", "not JSON"),
        ('{"announced_spans": []}', "version: required"),
        ('{"version": "1"}', "version: must be an integer"),
        ('{"version": 1, "closures": {}}', "closures: must be a list"),
        (
            '{"version": 1, "announced_spans": [{"sector": "army", "occasion": "eid_al_fitr"}]}',
            r"announced_spans\[0\]\.sector",
        ),
        (
            '{"version": 1, "announced_spans": [{"sector": "public", "occasion": "national_day",'
            ' "hijri_year": 1447, "first_day": "2026-09-23", "last_day": "2026-09-23",'
            ' "source": "x"}]}',
            "only the Eids",
        ),
        (
            '{"version": 1, "announced_spans": [{"sector": "public", "occasion": "eid_al_fitr",'
            ' "hijri_year": 1447, "first_day": "2026-03-28", "last_day": "2026-03-17",'
            ' "source": "x"}]}',
            "last_day must follow first_day",
        ),
        (
            # Last year's entry copied with this year's dates.
            '{"version": 1, "announced_spans": [{"sector": "public", "occasion": "eid_al_fitr",'
            ' "hijri_year": 1446, "first_day": "2026-03-18", "last_day": "2026-03-24",'
            ' "source": "x"}]}',
            r"announced_spans\[0\]\.hijri_year: 1446, but 2026-03-18 is in 1447 AH",
        ),
        (
            '{"version": 1, "closures": [{"id": "a", "start": "2026-01-13T09:00:00",'
            ' "end": "2026-01-13T12:00:00+03:00", "reason_ar": "x", "reason_en": "x"}]}',
            r"closures\[0\]\.start: .*no time zone",
        ),
        (
            '{"version": 1, "closures": [{"id": "a", "start": "2026-01-13T12:00:00+03:00",'
            ' "end": "2026-01-13T09:00:00+03:00", "reason_ar": "x", "reason_en": "x"}]}',
            "end must be after start",
        ),
        (
            '{"version": 1, "closures": [{"id": "a", "start": "2090-01-13T09:00:00+03:00",'
            ' "end": "2090-01-13T12:00:00+03:00", "reason_ar": "x", "reason_en": "x"}]}',
            "outside the calendar's range",
        ),
    ],
)
def test_bad_configuration_names_the_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CalendarConfig.from_json(text)


def test_duplicate_closure_ids_are_refused() -> None:
    closure = '{"id": "a", "start": "2026-01-13T09:00:00+03:00",'
    closure += ' "end": "2026-01-13T12:00:00+03:00", "reason_ar": "x", "reason_en": "x"}'
    with pytest.raises(ConfigError, match="unique"):
        CalendarConfig.from_json(f'{{"version": 1, "closures": [{closure}, {closure}]}}')


def test_a_closure_for_one_sector_leaves_the_other_open() -> None:
    text = (
        '{"version": 1, "closures": [{"id": "a", "start": "2026-01-13T00:00:00+03:00",'
        ' "end": "2026-01-14T00:00:00+03:00", "reason_ar": "x", "reason_en": "x",'
        ' "sectors": ["private"]}]}'
    )
    config = CalendarConfig.from_json(text)
    start = riyadh("2026-01-12 10:00")
    assert PUBLIC.updated(config).due(start, Sla.days(1)) == riyadh("2026-01-13 10:00")
    assert PRIVATE.updated(config).due(start, Sla.days(1)) == riyadh("2026-01-14 10:00")


class TestClock:
    START = riyadh("2026-03-08 10:00")

    def test_running_clock(self) -> None:
        clock = SlaClock(self.START, Sla.days(7))
        assert clock.due(PUBLIC, now=self.START) == riyadh("2026-03-29 10:00")
        assert clock.elapsed(PUBLIC, now=riyadh("2026-03-09 10:00")) == timedelta(hours=7)
        assert clock.used(PUBLIC, now=riyadh("2026-03-09 10:00")) == pytest.approx(1 / 7)
        assert clock.remaining(PUBLIC, now=riyadh("2026-03-09 10:00")) == timedelta(hours=42)

    def test_a_pause_moves_the_due_date_by_the_working_time_it_covered(self) -> None:
        clock = SlaClock(self.START, Sla.days(7)).pause(riyadh("2026-03-09 10:00"))
        assert clock.paused
        # While paused the due date keeps moving out, as if the clock resumed now.
        assert clock.due(PUBLIC, now=riyadh("2026-03-10 10:00")) == riyadh("2026-03-30 10:00")
        assert clock.elapsed(PUBLIC, now=riyadh("2026-03-12 10:00")) == timedelta(hours=7)
        resumed = clock.resume(riyadh("2026-03-11 10:00"))
        assert not resumed.paused
        assert resumed.due(PUBLIC, now=riyadh("2026-04-01 00:00")) == riyadh("2026-03-31 10:00")

    def test_a_pause_across_a_holiday_costs_only_its_working_time(self) -> None:
        clock = SlaClock(self.START, Sla.days(7))
        paused = clock.pause(riyadh("2026-03-13 00:00")).resume(riyadh("2026-03-25 00:00"))
        assert paused.due(PUBLIC, now=self.START) == clock.due(PUBLIC, now=self.START)

    def test_breach_shows_as_negative_remaining_time(self) -> None:
        clock = SlaClock(self.START, Sla.hours(7))
        assert clock.remaining(PUBLIC, now=riyadh("2026-03-10 10:00")) == timedelta(hours=-7)
        assert clock.used(PUBLIC, now=riyadh("2026-03-10 10:00")) == 2.0

    def test_before_the_start_nothing_has_elapsed(self) -> None:
        clock = SlaClock(self.START, Sla.days(1))
        assert clock.elapsed(PUBLIC, now=riyadh("2026-03-01 10:00")) == timedelta(0)

    def test_impossible_transitions_are_refused(self) -> None:
        running = SlaClock(self.START, Sla.days(1))
        paused = running.pause(riyadh("2026-03-09 10:00"))
        with pytest.raises(ValueError, match="not paused"):
            running.resume(riyadh("2026-03-09 10:00"))
        with pytest.raises(ValueError, match="already paused"):
            paused.pause(riyadh("2026-03-09 11:00"))
        with pytest.raises(ValueError, match="before the clock's last change"):
            running.pause(riyadh("2026-03-01 10:00"))
        with pytest.raises(ValueError, match="before it was paused"):
            paused.resume(riyadh("2026-03-08 12:00"))

    def test_an_announcement_reschedules_a_promised_due_date(self) -> None:
        clock = SlaClock(riyadh("2026-03-15 10:00"), Sla.days(7))
        announced = PUBLIC.updated(CalendarConfig.from_json(CONFIG_V1))
        assert clock.rescheduled(PUBLIC, announced, now=self.START) == (
            riyadh("2026-04-02 14:30"),
            riyadh("2026-04-05 10:00"),
        )
        assert clock.rescheduled(PUBLIC, PUBLIC, now=self.START) is None

    def test_a_naive_start_is_refused(self) -> None:
        with pytest.raises(NaiveDatetimeError):
            SlaClock(datetime(2026, 3, 8, 10, 0), Sla.days(1))

    def test_an_sla_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            Sla.days(0)
