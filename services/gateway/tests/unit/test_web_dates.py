"""The web page's own date rendering (app.js's `when`), run by Node as a browser would run it:
Riyadh time, whatever the zone of the beneficiary's device."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

PageScript = Callable[..., object]


def when(page_script: PageScript, timestamp: str, lang: str, zone: str) -> str:
    """app.js's `when(timestamp)` in language `lang`, on a device set to `zone`."""
    shown = page_script(f"when({json.dumps(timestamp)})", ("when",), lang=lang, zone=zone)
    assert isinstance(shown, str)
    return shown


@pytest.mark.parametrize("lang", ["ar", "en"])
def test_history_times_are_riyadh_time_on_a_device_abroad(
    page_script: PageScript, lang: str
) -> None:
    # Sunday 4 January 2026 22:30 UTC is Monday 5 January 01:30 in Riyadh.
    at = "2026-01-04T22:30:00Z"
    riyadh = when(page_script, at, lang, "Asia/Riyadh")
    for zone in ("UTC", "America/New_York", "Asia/Tokyo"):
        assert when(page_script, at, lang, zone) == riyadh


@pytest.mark.parametrize(
    ("lang", "hijri", "gregorian"),
    [("ar", "١٦ رجب ١٤٤٧", "٥ يناير ٢٠٢٦"), ("en", "16 Rajab 1447", "5 January 2026")],
)
def test_history_dates_are_hijri_and_gregorian_in_either_language(
    page_script: PageScript, lang: str, hijri: str, gregorian: str
) -> None:
    """SPEC §6.1: dates shown to beneficiaries in both calendars, as the server's are."""
    shown = when(page_script, "2026-01-04T22:30:00Z", lang, "Asia/Riyadh")
    assert hijri in shown
    assert gregorian in shown
    assert shown.index(hijri) < shown.index(gregorian)  # Hijri first, as Saudi usage has it
