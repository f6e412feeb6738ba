"""Request numbers: "TW" + 8 random digits + a Damm check digit, e.g. TW482913570.

Short enough to read aloud over the phone, decimal so that it reads the same in Arabic
and English, random so that one number tells nothing about the next (the tracking form
must resist enumeration), and checked with Damm, which catches every single wrong digit
and every swap of two neighbouring digits: the usual mistakes when a number is typed
or dictated.
"""

from __future__ import annotations

import re
from collections.abc import Callable

PREFIX = "TW"
RANDOM_DIGITS = 8
MAX_NEAR_MISSES = 20

# The weakly totally anti-symmetric quasigroup of order 10 from Damm's thesis (2004).
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

# Spaces and every dash a phone keyboard offers, which people put in to group digits.
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212\u0640]+")
_TYPED = re.compile(rf"(?:{PREFIX})?([0-9]{{{RANDOM_DIGITS},{RANDOM_DIGITS + 1}}})")


def damm_digit(digits: str) -> str:
    """The Damm check digit of a string of ASCII digits; "0" when it already checks out."""
    interim = 0
    for char in digits:
        interim = _DAMM[interim][int(char)]
    return str(interim)


def _checks(digits: str) -> bool:
    return damm_digit(digits) == "0"


def new_request_number(randbelow: Callable[[int], int]) -> str:
    """A fresh number; production passes secrets.randbelow, tests a seeded generator.

    Numbers are not unique by construction: the caller stores them under a unique
    constraint and draws again on a clash.
    """
    body = f"{randbelow(10**RANDOM_DIGITS):0{RANDOM_DIGITS}d}"
    return PREFIX + body + damm_digit(body)


def digits_typed(raw: str) -> str | None:
    """The 8 or 9 digits of what a person typed for a request number, or None.

    Only ASCII digits: callers that can answer INVALID_ARGUMENT say why others are refused
    (fields.foreign_digits)."""
    text = _SEPARATORS.sub("", raw.strip().upper())
    match = _TYPED.fullmatch(text)
    return match.group(1) if match else None


def parse_request_number(raw: str) -> str | None:
    """The canonical request number for what a person typed, if its check digit holds."""
    digits = digits_typed(raw)
    if digits is None or len(digits) != RANDOM_DIGITS + 1 or not _checks(digits):
        return None
    return PREFIX + digits


def near_misses(raw: str) -> list[str]:
    """Valid numbers one typing mistake away from a number whose check fails or is missing.

    For 9 digits: every single substituted digit and every swap of neighbours that checks
    out; for 8 digits: the same digits with their check digit appended. Sorted, capped at
    MAX_NEAR_MISSES; empty for a number that is already valid or is not a number at all.
    """
    digits = digits_typed(raw)
    if digits is None:
        return []
    if len(digits) == RANDOM_DIGITS:
        return [PREFIX + digits + damm_digit(digits)]
    if _checks(digits):
        return []
    candidates: set[str] = set()
    for index, typed in enumerate(digits):
        for digit in "0123456789":
            if digit != typed:
                candidates.add(digits[:index] + digit + digits[index + 1 :])
    for index in range(len(digits) - 1):
        candidates.add(digits[:index] + digits[index + 1] + digits[index] + digits[index + 2 :])
    valid = sorted(PREFIX + candidate for candidate in candidates if _checks(candidate))
    return valid[:MAX_NEAR_MISSES]
