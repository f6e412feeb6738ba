"""Golden texts of dates in Hijri (Umm al-Qura) and Gregorian, Arabic and English."""

from __future__ import annotations

from datetime import date

import pytest
from tawasul_calendar import Locale, OutOfRangeError, format_date, format_gregorian, format_hijri

GOLDEN = [
    (
        date(2026, 12, 1),
        "الثلاثاء ٢١ جمادى الآخرة ١٤٤٨ هـ الموافق ١ ديسمبر ٢٠٢٦ م",
        "Tuesday 21 Jumada al-Akhirah 1448 AH (1 December 2026)",
    ),
    (
        date(2026, 2, 22),
        "الأحد ٥ رمضان ١٤٤٧ هـ الموافق ٢٢ فبراير ٢٠٢٦ م",
        "Sunday 5 Ramadan 1447 AH (22 February 2026)",
    ),
    (
        date(2026, 3, 20),
        "الجمعة ١ شوال ١٤٤٧ هـ الموافق ٢٠ مارس ٢٠٢٦ م",
        "Friday 1 Shawwal 1447 AH (20 March 2026)",
    ),
    (
        date(2026, 9, 23),
        "الأربعاء ١٢ ربيع الثاني ١٤٤٨ هـ الموافق ٢٣ سبتمبر ٢٠٢٦ م",
        "Wednesday 12 Rabi' al-Thani 1448 AH (23 September 2026)",
    ),
    (
        date(2027, 5, 16),
        "الأحد ١٠ ذو الحجة ١٤٤٨ هـ الموافق ١٦ مايو ٢٠٢٧ م",
        "Sunday 10 Dhu al-Hijjah 1448 AH (16 May 2027)",
    ),
    (
        date(2028, 2, 29),
        "الثلاثاء ٤ شوال ١٤٤٩ هـ الموافق ٢٩ فبراير ٢٠٢٨ م",
        "Tuesday 4 Shawwal 1449 AH (29 February 2028)",
    ),
    (
        date(2030, 1, 5),
        "السبت ١ رمضان ١٤٥١ هـ الموافق ٥ يناير ٢٠٣٠ م",
        "Saturday 1 Ramadan 1451 AH (5 January 2030)",
    ),
]


@pytest.mark.parametrize(("day", "arabic", "english"), GOLDEN)
def test_both_calendars(day: date, arabic: str, english: str) -> None:
    assert format_date(day, Locale.AR) == arabic
    assert format_date(day, Locale.EN) == english


def test_each_calendar_alone() -> None:
    day = date(2026, 12, 1)
    assert format_hijri(day, Locale.AR) == "٢١ جمادى الآخرة ١٤٤٨ هـ"
    assert format_hijri(day, Locale.EN) == "21 Jumada al-Akhirah 1448 AH"
    assert format_gregorian(day, Locale.AR) == "١ ديسمبر ٢٠٢٦ م"
    assert format_gregorian(day, Locale.EN) == "1 December 2026"
    assert format_gregorian(day, Locale.EN, weekday=True) == "Tuesday 1 December 2026"


@pytest.mark.parametrize("day", [date(1900, 1, 1), date(2077, 11, 17), date(2100, 1, 1)])
@pytest.mark.parametrize("locale", list(Locale))
def test_dates_outside_umm_al_qura_are_a_clear_error(day: date, locale: Locale) -> None:
    with pytest.raises(OutOfRangeError):
        format_date(day, locale)
    with pytest.raises(OutOfRangeError):
        format_gregorian(day, locale)
