"""The web page's own date rendering (app.js's `when`), run by Node as a browser would run it:
Riyadh time, whatever the zone of the beneficiary's device."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tawasul_gateway

APP = Path(tawasul_gateway.__file__).resolve().parent / "web" / "app.js"
NODE = shutil.which("node")


def when(timestamp: str, lang: str, zone: str) -> str:
    """app.js's `when(timestamp)` in language `lang`, on a device set to `zone`."""
    assert NODE is not None, "Node.js runs the page's script here; `make setup` needs it too"
    source = APP.read_text("utf-8")
    found = re.search(r"^function when\(timestamp\) \{\n.*?^\}\n", source, re.M | re.S)
    assert found, "app.js has no when(timestamp)"
    script = (
        f"const state = {{ lang: {json.dumps(lang)} }};\n{found.group(0)}"
        f"process.stdout.write(when({json.dumps(timestamp)}));\n"
    )
    done = subprocess.run(
        [NODE, "-e", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={**os.environ, "TZ": zone},
    )
    return done.stdout


@pytest.mark.parametrize("lang", ["ar", "en"])
def test_history_times_are_riyadh_time_on_a_device_abroad(lang: str) -> None:
    # Sunday 4 January 2026 22:30 UTC is Monday 5 January 01:30 in Riyadh.
    at = "2026-01-04T22:30:00Z"
    riyadh = when(at, lang, "Asia/Riyadh")
    for zone in ("UTC", "America/New_York", "Asia/Tokyo"):
        assert when(at, lang, zone) == riyadh


@pytest.mark.parametrize(
    ("lang", "hijri", "gregorian"),
    [("ar", "١٦ رجب ١٤٤٧", "٥ يناير ٢٠٢٦"), ("en", "16 Rajab 1447", "5 January 2026")],
)
def test_history_dates_are_hijri_and_gregorian_in_either_language(
    lang: str, hijri: str, gregorian: str
) -> None:
    """SPEC §6.1: dates shown to beneficiaries in both calendars, as the server's are."""
    shown = when("2026-01-04T22:30:00Z", lang, "Asia/Riyadh")
    assert hijri in shown
    assert gregorian in shown
    assert shown.index(hijri) < shown.index(gregorian)  # Hijri first, as Saudi usage has it
