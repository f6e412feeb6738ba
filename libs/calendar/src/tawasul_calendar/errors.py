"""What the calendar refuses, each a ValueError so callers can map it to bad input."""

from __future__ import annotations


class CalendarError(ValueError):
    """Base of every refusal of the calendar."""


class NaiveDatetimeError(CalendarError):
    """An instant without a time zone: the calendar never guesses one."""


class OutOfRangeError(CalendarError):
    """A date the holiday rules or the Umm al-Qura tables do not cover."""


class ConfigError(CalendarError):
    """Closure or announcement configuration that is malformed, stale or contradictory."""
