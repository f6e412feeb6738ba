"""Dates as beneficiaries read them: Umm al-Qura Hijri and Gregorian, in Arabic and English.

Arabic uses Arabic-Indic digits, as Saudi official texts do; month and day names are
hijridate's. Bidirectional isolation inside a longer message is the caller's concern.
"""

from __future__ import annotations

import functools
from datetime import date
from enum import StrEnum

from hijridate import Gregorian

from tawasul_calendar.rules import to_hijri

_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


class Locale(StrEnum):
    AR = "ar"
    EN = "en"


def _digits(number: int, locale: Locale) -> str:
    text = str(number)
    return text.translate(_ARABIC_INDIC) if locale is Locale.AR else text


def format_hijri(day: date, locale: Locale, *, weekday: bool = False) -> str:
    """ "21 جمادى الآخرة 1448 هـ" with Arabic-Indic digits, or "21 Jumada al-Akhirah 1448 AH"."""
    hijri = to_hijri(day)
    text = (
        f"{_digits(hijri.day, locale)} {hijri.month_name(locale.value)} "
        f"{_digits(hijri.year, locale)} {hijri.notation(locale.value)}"
    )
    return f"{hijri.day_name(locale.value)} {text}" if weekday else text


def format_gregorian(day: date, locale: Locale, *, weekday: bool = False) -> str:
    """ "1 ديسمبر 2026 م" with Arabic-Indic digits, or "1 December 2026"."""
    to_hijri(day)  # the same range as the Hijri side, so both always answer together
    gregorian = Gregorian.fromdate(day)
    text = f"{_digits(day.day, locale)} {gregorian.month_name(locale.value)} "
    text += f"{_digits(day.year, locale)} م" if locale is Locale.AR else str(day.year)
    return f"{gregorian.day_name(locale.value)} {text}" if weekday else text


@functools.lru_cache(maxsize=4096)  # every response and message names a few days, often
def format_date(day: date, locale: Locale) -> str:
    """Both calendars, Hijri first as Saudi usage has it, with the weekday."""
    hijri = format_hijri(day, locale, weekday=True)
    gregorian = format_gregorian(day, locale)
    if locale is Locale.AR:
        return f"{hijri} الموافق {gregorian}"
    return f"{hijri} ({gregorian})"
