"""The Saudi working-day calendar: due dates in working days and hours, Hijri and Gregorian.

Pure: no I/O and no clock; every instant is passed in, time-zone aware, and answered in
Asia/Riyadh.
"""

from tawasul_calendar.calendar import Interval, OfficeHours, Sla, SlaUnit, WorkingCalendar
from tawasul_calendar.clock import SlaClock
from tawasul_calendar.config import AnnouncedSpan, CalendarConfig, Closure
from tawasul_calendar.errors import CalendarError, ConfigError, NaiveDatetimeError, OutOfRangeError
from tawasul_calendar.formatting import Locale, format_date, format_gregorian, format_hijri
from tawasul_calendar.rules import Holiday, Occasion, Sector
from tawasul_calendar.timeutil import FIRST_DAY, LAST_DAY, RIYADH

__all__ = [
    "FIRST_DAY",
    "LAST_DAY",
    "RIYADH",
    "AnnouncedSpan",
    "CalendarConfig",
    "CalendarError",
    "Closure",
    "ConfigError",
    "Holiday",
    "Interval",
    "Locale",
    "NaiveDatetimeError",
    "Occasion",
    "OfficeHours",
    "OutOfRangeError",
    "Sector",
    "Sla",
    "SlaClock",
    "SlaUnit",
    "WorkingCalendar",
    "format_date",
    "format_gregorian",
    "format_hijri",
]
