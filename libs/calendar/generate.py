"""Writes the `holidays` package's Saudi calendar for every year the calendar covers into
src/tawasul_calendar/saudi_holidays.json: `uv run python libs/calendar/generate.py`.

The table is committed, so the services need no `holidays` at run time: that package imports
the calendars of all its 250 countries to give one, 11 MiB of every process that counts
working days. A unit test fails when the table is not what the pinned `holidays` gives.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import holidays
from tawasul_calendar.timeutil import FIRST_DAY, LAST_DAY

OUT = Path(__file__).resolve().parent / "src" / "tawasul_calendar" / "saudi_holidays.json"


def table() -> dict[str, list[list[str]]]:
    """Each year's days, ISO dates in order, with the package's en_US names ("a; b")."""
    return {
        str(year): [
            [day.isoformat(), names]
            for day, names in sorted(
                holidays.country_holidays("SA", years=year, language="en_US").items()
            )
        ]
        for year in range(FIRST_DAY.year, LAST_DAY.year + 1)
    }


def render() -> str:
    """JSON with one day a line, so that a new `holidays` shows as a readable diff."""
    years = [
        f"  {json.dumps(year)}: [\n"
        + ",\n".join(f"   {json.dumps(entry, ensure_ascii=False)}" for entry in days)
        + "\n  ]"
        for year, days in table().items()
    ]
    version = json.dumps(metadata.version("holidays"))
    return f'{{\n "holidays": {version},\n "years": {{\n' + ",\n".join(years) + "\n }\n}\n"


def main() -> None:
    OUT.write_text(render())


if __name__ == "__main__":
    main()
