"""The committed table of the `holidays` package's Saudi calendar is what the pinned package
gives today; after a `holidays` upgrade, `uv run python libs/calendar/generate.py` rewrites it.
The services read the table and never import the package (11 MiB of each, issue 12's P6)."""

from __future__ import annotations

import runpy
import subprocess
import sys
from importlib import resources
from pathlib import Path

from tawasul_calendar import rules

GENERATE = Path(__file__).resolve().parents[2] / "generate.py"


def test_the_table_is_what_the_holidays_package_gives() -> None:
    render = runpy.run_path(str(GENERATE))["render"]
    committed = resources.files(rules.__package__).joinpath(rules.PACKAGE_TABLE).read_text()
    assert committed == render(), "run: uv run python libs/calendar/generate.py"


def test_counting_working_days_imports_no_holidays_package() -> None:
    code = (
        "import sys; from datetime import date; from tawasul_calendar import WorkingCalendar; "
        "WorkingCalendar().is_working_day(date(2026, 3, 20)); print('holidays' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "False"
