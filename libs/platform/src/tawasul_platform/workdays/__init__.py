"""The working-day calendar every service uses, built from settings and the versioned file.

The file beside this module is the closures and announced Eid spans in force when this
version shipped; an operator points `TAWASUL_CALENDAR_CONFIG_PATH` at a newer version (each
year's Eid announcement, a declared holiday, an outage) without a release.
"""

from __future__ import annotations

from datetime import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from tawasul_calendar import CalendarConfig, OfficeHours, Sector, WorkingCalendar

if TYPE_CHECKING:
    # The settings check the calendar they describe when they are read (this module's
    # `working_calendar`), so they import this module, not it them.
    from tawasul_platform.settings import ServiceSettings


def shipped_config() -> CalendarConfig:
    return CalendarConfig.from_json(
        resources.files(__package__).joinpath("calendar.v1.json").read_text("utf-8")
    )


def load_working_calendar(settings: ServiceSettings) -> WorkingCalendar:
    """The sector's calendar with the newer of the shipped and the configured file."""
    return working_calendar(
        settings.calendar_sector,
        settings.office_opens,
        settings.office_closes,
        settings.calendar_config_path,
    )


def working_calendar(
    sector: Sector, opens: time, closes: time, path: Path | None
) -> WorkingCalendar:
    """The calendar these settings describe; tawasul_calendar.ConfigError when they cannot be
    one (office hours that close before they open, a malformed file, a version already shipped
    with other content), OSError when the file cannot be read."""
    calendar = WorkingCalendar(
        sector=sector, hours=OfficeHours(opens=opens, closes=closes), config=shipped_config()
    )
    if path is None:
        return calendar
    configured = CalendarConfig.from_json(path.read_text("utf-8"))
    if configured.version < calendar.config.version:
        return calendar
    return calendar.updated(configured)
