"""Saudi identity numbers and mobile numbers, as beneficiaries type them."""

from __future__ import annotations

import re

_MOBILE = re.compile(r"^(?:\+966|00966|0)?(5\d{8})$")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def id_number_problem(number: str, *, first_digit: str) -> str | None:
    """Why `number` is not a valid national ID (first digit 1) or iqama (2), or None."""
    if len(number) != 10 or not number.isdigit():
        return "must be 10 digits"
    if number[0] != first_digit:
        return f"must start with {first_digit}"
    if not luhn_valid(number):
        return "check digit does not match"
    return None


def normalize_mobile(text: str) -> str | None:
    """+9665XXXXXXXX for a Saudi mobile number in any usual form, else None."""
    match = _MOBILE.match(text.replace(" ", "").replace("-", ""))
    return f"+966{match.group(1)}" if match else None
