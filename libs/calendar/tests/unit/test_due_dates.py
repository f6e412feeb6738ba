"""The table of due dates in due_dates.txt, each case checked against the library."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from tawasul_calendar import (
    RIYADH,
    AnnouncedSpan,
    CalendarConfig,
    Closure,
    Interval,
    Occasion,
    Sector,
    Sla,
    WorkingCalendar,
)

TABLE = Path(__file__).with_name("due_dates.txt")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.strip()).replace(tzinfo=RIYADH)


def _span(
    sector: Sector, occasion: Occasion, hijri_year: int, first: str, last: str
) -> AnnouncedSpan:
    return AnnouncedSpan(
        sector,
        occasion,
        hijri_year,
        date.fromisoformat(first),
        date.fromisoformat(last),
        source="test: a hypothetical announcement",
    )


CALENDARS = {
    "public": WorkingCalendar(sector=Sector.PUBLIC),
    "private": WorkingCalendar(sector=Sector.PRIVATE),
    "public-announced": WorkingCalendar(
        sector=Sector.PUBLIC,
        config=CalendarConfig(
            version=1,
            announced=(
                _span(Sector.PUBLIC, Occasion.EID_AL_FITR, 1447, "2026-03-17", "2026-03-28"),
            ),
        ),
    ),
    "private-announced": WorkingCalendar(
        sector=Sector.PRIVATE,
        config=CalendarConfig(
            version=1,
            announced=(
                _span(Sector.PRIVATE, Occasion.EID_AL_ADHA, 1448, "2027-05-16", "2027-05-19"),
            ),
        ),
    ),
    "public-closures": WorkingCalendar(
        sector=Sector.PUBLIC,
        config=CalendarConfig(
            version=1,
            closures=(
                Closure(
                    "outage", _at("2026-01-13 09:00"), _at("2026-01-13 12:00"), "عطل", "outage"
                ),
                Closure(
                    "declared",
                    datetime.combine(date(2026, 1, 15), time(0), RIYADH),
                    datetime.combine(date(2026, 1, 16), time(0), RIYADH),
                    "إجازة معلنة",
                    "declared holiday",
                ),
            ),
        ),
    ),
}


def _sla(text: str) -> Sla:
    amount, unit = int(text[:-1]), text[-1]
    return Sla.days(amount) if unit == "d" else Sla.hours(amount)


def _pauses(text: str) -> tuple[Interval, ...]:
    if text.strip() == "-":
        return ()
    return tuple((_at(start), _at(end)) for start, end in (p.split("..") for p in text.split(",")))


def _cases() -> list[Any]:
    cases: list[Any] = []
    for number, line in enumerate(TABLE.read_text("utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        calendar, start, sla, pauses, due, why = (cell.strip() for cell in line.split("|"))
        cases.append(
            pytest.param(calendar, start, sla, pauses, due, id=f"line{number}: {why}"[:120])
        )
    return cases


def test_the_table_is_large_enough() -> None:
    assert len(_cases()) >= 200


@pytest.mark.parametrize(("calendar", "start", "sla", "pauses", "due"), _cases())
def test_due_date(calendar: str, start: str, sla: str, pauses: str, due: str) -> None:
    cal = CALENDARS[calendar]
    answer = cal.due(_at(start), _sla(sla), pauses=_pauses(pauses))
    assert answer == _at(due)
    assert cal.elapsed(_at(start), answer, pauses=_pauses(pauses)) == _sla(sla).budget(cal.hours)
