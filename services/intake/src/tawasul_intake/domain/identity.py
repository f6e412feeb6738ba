"""Saudi identity numbers: national ID (1…) and iqama (2…) with their Luhn check digit."""

from __future__ import annotations


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
    if len(number) != 10 or not (number.isascii() and number.isdigit()):
        return "must be 10 digits"
    if number[0] != first_digit:
        return f"must start with {first_digit}"
    if not luhn_valid(number):
        return "check digit does not match"
    return None
