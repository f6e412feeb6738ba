"""The working-day calendar every service uses, built from settings and the versioned file.

The file beside this module is the closures and announced Eid spans in force when this
version shipped; an operator points `TAWASUL_CALENDAR_CONFIG_PATH` at a newer version (each
year's Eid announcement, a declared holiday, an outage) without a release.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tawasul_calendar import CalendarConfig, OfficeHours, WorkingCalendar

from tawasul_platform.settings import ServiceSettings


def shipped_config() -> CalendarConfig:
    return CalendarConfig.from_json(
        resources.files(__package__).joinpath("calendar.v1.json").read_text("utf-8")
    )


def load_working_calendar(settings: ServiceSettings) -> WorkingCalendar:
    """The sector's calendar with the newer of the shipped and the configured file."""
    calendar = WorkingCalendar(
        sector=settings.calendar_sector,
        hours=OfficeHours(opens=settings.office_opens, closes=settings.office_closes),
        config=shipped_config(),
    )
    path: Path | None = settings.calendar_config_path
    if path is None:
        return calendar
    configured = CalendarConfig.from_json(path.read_text("utf-8"))
    if configured.version < calendar.config.version:
        return calendar
    return calendar.updated(configured)
