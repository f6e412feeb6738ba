"""Versioned configuration: announced Eid spans and extra closures.

Each version is the whole table, so a later version can also withdraw a closure or correct an
announcement. The text is parsed here; where it is kept and how it is read is the caller's
business (the calendar does no I/O).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from tawasul_calendar.errors import CalendarError, ConfigError
from tawasul_calendar.rules import EIDS, Occasion, Sector, to_hijri
from tawasul_calendar.timeutil import check_day, riyadh

MAX_SPAN_DAYS = 30

T = TypeVar("T")


@dataclass(frozen=True)
class AnnouncedSpan:
    """The days a sector is actually closed for one Eid, as announced; replaces the forecast."""

    sector: Sector
    occasion: Occasion
    hijri_year: int
    first_day: date
    last_day: date
    source: str


@dataclass(frozen=True)
class Closure:
    """An extra closure (a declared holiday, an outage), from `start` up to `end`."""

    id: str
    start: datetime
    end: datetime
    reason_ar: str
    reason_en: str
    sectors: frozenset[Sector] = frozenset(Sector)


@dataclass(frozen=True)
class CalendarConfig:
    version: int = 0
    announced: tuple[AnnouncedSpan, ...] = ()
    closures: tuple[Closure, ...] = ()

    def __post_init__(self) -> None:
        if self.version < 0:
            raise ConfigError("version: must not be negative")
        keys = [(s.sector, s.occasion, s.hijri_year) for s in self.announced]
        if len(set(keys)) != len(keys):
            raise ConfigError("announced_spans: one span per sector, occasion and Hijri year")
        ids = [c.id for c in self.closures]
        if len(set(ids)) != len(ids):
            raise ConfigError("closures: ids must be unique")

    @classmethod
    def from_json(cls, text: str) -> CalendarConfig:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"not JSON: {error}") from error
        if not isinstance(raw, dict):
            raise ConfigError("the top level must be an object")
        spans: list[Any] = _field(raw, "announced_spans", "", _list, [])
        closures: list[Any] = _field(raw, "closures", "", _list, [])
        return cls(
            version=_field(raw, "version", "", _int),
            announced=tuple(_span(s, f"announced_spans[{n}]") for n, s in enumerate(spans)),
            closures=tuple(_closure(c, f"closures[{n}]") for n, c in enumerate(closures)),
        )

    def spans_for(self, sector: Sector) -> tuple[AnnouncedSpan, ...]:
        return tuple(s for s in self.announced if s.sector is sector)

    def closures_for(self, sector: Sector) -> tuple[Closure, ...]:
        return tuple(c for c in self.closures if sector in c.sectors)


_MISSING: Any = object()


def _field(
    raw: Mapping[str, Any], key: str, where: str, parse: Callable[[Any], T], default: T = _MISSING
) -> T:
    path = f"{where}.{key}" if where else key
    if key not in raw:
        if default is _MISSING:
            raise ConfigError(f"{path}: required")
        return default
    try:
        return parse(raw[key])
    except (CalendarError, TypeError, ValueError) as error:
        raise ConfigError(f"{path}: {error}") from error


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("must be an integer")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError("must be a non-empty string")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("must be a list")
    return value


def _sectors(value: Any) -> frozenset[Sector]:
    return frozenset(Sector(s) for s in _list(value))


def _day(value: Any) -> date:
    return check_day(date.fromisoformat(_str(value)))


def _instant(value: Any) -> datetime:
    instant = riyadh(datetime.fromisoformat(_str(value)))
    check_day(instant.date())
    return instant


def _object(item: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: must be an object")
    return item


def _span(item: Any, where: str) -> AnnouncedSpan:
    raw = _object(item, where)
    span = AnnouncedSpan(
        sector=_field(raw, "sector", where, Sector),
        occasion=_field(raw, "occasion", where, Occasion),
        hijri_year=_field(raw, "hijri_year", where, _int),
        first_day=_field(raw, "first_day", where, _day),
        last_day=_field(raw, "last_day", where, _day),
        source=_field(raw, "source", where, _str),
    )
    if span.occasion not in EIDS:
        raise ConfigError(f"{where}.occasion: only the Eids are announced each year")
    if not 0 <= (span.last_day - span.first_day).days < MAX_SPAN_DAYS:
        raise ConfigError(f"{where}: last_day must follow first_day by under {MAX_SPAN_DAYS} days")
    # An announcement replaces the forecast of its occasion and Hijri year: a year copied from
    # last year's entry would replace nothing, and both spans would close the office.
    if (year := to_hijri(span.first_day).year) != span.hijri_year:
        raise ConfigError(
            f"{where}.hijri_year: {span.hijri_year}, but {span.first_day} is in {year} AH"
        )
    return span


def _closure(item: Any, where: str) -> Closure:
    raw = _object(item, where)
    closure = Closure(
        id=_field(raw, "id", where, _str),
        start=_field(raw, "start", where, _instant),
        end=_field(raw, "end", where, _instant),
        reason_ar=_field(raw, "reason_ar", where, _str),
        reason_en=_field(raw, "reason_en", where, _str),
        sectors=_field(raw, "sectors", where, _sectors, frozenset(Sector)),
    )
    if closure.end <= closure.start:
        raise ConfigError(f"{where}: end must be after start")
    if not closure.sectors:
        raise ConfigError(f"{where}.sectors: name at least one sector")
    return closure
