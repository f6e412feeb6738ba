"""Which days the office is closed, as forecast from the rules in force.

Sources, rule by rule:
- Weekend Friday and Saturday: Royal Decree of 23 June 2013 (in force from 28 June 2013).
- Founding Day, 22 February: Royal Order A/371 of 27 January 2022. National Day, 23 September:
  Council of Ministers decision of 2005. When either falls on a Friday the Thursday before is
  given, on a Saturday the Sunday after. All three come from the `holidays` package's Saudi
  Arabia calendar, which cites those texts, as saudi_holidays.json holds it for every year
  covered (libs/calendar/generate.py writes it; the package is not needed at run time).
- Private sector Eids (Labour Law implementing regulations, as amended by the Ministry of Human
  Resources): Eid al-Fitr four days from the day after 29 Ramadan, Eid al-Adha four days from
  the Day of Arafah (9 Dhu al-Hijjah), and a working day after the span for each of its days
  that falls on the weekend. Also taken from the `holidays` package, whose Eid dates agree with
  the Umm al-Qura calendar for every year this calendar covers (tested).
- Public sector Eids (state employees, the passports directorate among them): the span the
  Ministry announces for them year after year, 25 Ramadan to 5 Shawwal and 5 to 15 Dhu
  al-Hijjah, converted with `hijridate`'s Umm al-Qura tables.

Every Eid date computed ahead of time is a forecast: the real dates follow the moon sighting and
the Ministry's yearly announcement, which the configuration's announced spans put in place of
the forecast (see config.py).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources

from hijridate import Gregorian, Hijri

from tawasul_calendar.errors import OutOfRangeError
from tawasul_calendar.timeutil import FIRST_DAY, LAST_DAY


class Sector(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class Occasion(StrEnum):
    FOUNDING_DAY = "founding_day"
    NATIONAL_DAY = "national_day"
    EID_AL_FITR = "eid_al_fitr"
    EID_AL_ADHA = "eid_al_adha"
    # A one-off day the `holidays` package records (e.g. 23 November 2022).
    SPECIAL = "special"


EIDS = frozenset({Occasion.EID_AL_FITR, Occasion.EID_AL_ADHA})

OCCASION_NAMES: dict[Occasion, tuple[str, str]] = {
    Occasion.FOUNDING_DAY: ("يوم التأسيس", "Founding Day"),
    Occasion.NATIONAL_DAY: ("اليوم الوطني", "National Day"),
    Occasion.EID_AL_FITR: ("عيد الفطر", "Eid al-Fitr"),
    Occasion.EID_AL_ADHA: ("عيد الأضحى", "Eid al-Adha"),
    Occasion.SPECIAL: ("عطلة رسمية", "Official holiday"),
}

# (month, day) of the first and last closed day, Umm al-Qura.
PUBLIC_EID_SPANS: dict[Occasion, tuple[tuple[int, int], tuple[int, int]]] = {
    Occasion.EID_AL_FITR: ((9, 25), (10, 5)),
    Occasion.EID_AL_ADHA: ((12, 5), (12, 15)),
}

# The `holidays` package's Saudi calendar, year by year (generate.py).
PACKAGE_TABLE = "saudi_holidays.json"
# Names as the `holidays` package writes them in en_US, most specific first.
_PACKAGE_NAMES = (
    ("Eid al-Fitr", Occasion.EID_AL_FITR),
    ("Eid al-Adha", Occasion.EID_AL_ADHA),
    ("Arafah", Occasion.EID_AL_ADHA),
    ("Founding Day", Occasion.FOUNDING_DAY),
    ("National Day", Occasion.NATIONAL_DAY),
)


@dataclass(frozen=True)
class Holiday:
    """One reason a day is closed. `hijri_year` ties an Eid day to the Eid it belongs to."""

    day: date
    occasion: Occasion
    hijri_year: int
    forecast: bool = True

    @property
    def name_ar(self) -> str:
        return OCCASION_NAMES[self.occasion][0]

    @property
    def name_en(self) -> str:
        return OCCASION_NAMES[self.occasion][1]


# Dates shown to beneficiaries fall on a few days (today, due dates) and Hijri is immutable;
# the conversion walks hijridate's month tables each time.
@functools.lru_cache(maxsize=4096)
def to_hijri(day: date) -> Hijri:
    try:
        return Gregorian.fromdate(day).to_hijri()
    except OverflowError as error:
        raise OutOfRangeError(f"{day.isoformat()} is outside the Umm al-Qura tables") from error


def from_hijri(year: int, month: int, day: int) -> date:
    try:
        return Hijri(year, month, day).to_gregorian()
    except (OverflowError, ValueError) as error:
        raise OutOfRangeError(f"{year}-{month:02}-{day:02} AH is not in the tables") from error


def _occasion(name: str) -> Occasion:
    for marker, occasion in _PACKAGE_NAMES:
        if marker in name:
            return occasion
    return Occasion.SPECIAL


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@cache
def _package_days() -> dict[int, list[tuple[date, str]]]:
    """The `holidays` package's Saudi days of each year covered, with its en_US names."""
    raw = json.loads(resources.files(__package__).joinpath(PACKAGE_TABLE).read_text("utf-8"))
    return {
        int(year): [(date.fromisoformat(day), names) for day, names in days]
        for year, days in raw["years"].items()
    }


@cache
def forecast(year: int, sector: Sector) -> dict[date, tuple[Holiday, ...]]:
    """The closed days of one Gregorian year for one sector, before any announcement.

    Cached and shared: callers must not mutate the answer.
    """
    if not FIRST_DAY.year <= year <= LAST_DAY.year:
        raise OutOfRangeError(f"no holiday rules for {year} ({FIRST_DAY.year}..{LAST_DAY.year})")
    found: dict[date, list[Holiday]] = {}

    def add(day: date, occasion: Occasion) -> None:
        holiday = Holiday(day, occasion, to_hijri(day).year)
        if holiday not in found.setdefault(day, []):
            found[day].append(holiday)

    for day, names in _package_days()[year]:
        for name in names.split("; "):
            occasion = _occasion(name)
            if sector is Sector.PRIVATE or occasion not in EIDS:
                add(day, occasion)
    if sector is Sector.PUBLIC:
        hijri_years = range(to_hijri(date(year, 1, 1)).year, to_hijri(date(year, 12, 31)).year + 1)
        for hijri_year in hijri_years:
            for occasion, (first, last) in PUBLIC_EID_SPANS.items():
                span = _days(from_hijri(hijri_year, *first), from_hijri(hijri_year, *last))
                for day in span:
                    if day.year == year:
                        add(day, occasion)
    return {day: tuple(entries) for day, entries in sorted(found.items())}
