"""Saudi identity numbers: national ID (1…) and iqama (2…) with their Luhn check digit."""

from __future__ import annotations

from tawasul_platform.i18n import Bilingual

TEN_DIGITS = Bilingual("must be 10 digits", "يجب أن يتكون من 10 أرقام")
CHECK_DIGIT = Bilingual("check digit does not match", "رقم التحقق (الرقم الأخير) غير صحيح")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def id_number_problem(number: str, *, first_digit: str) -> Bilingual | None:
    """Why `number` is not a valid national ID (first digit 1) or iqama (2), or None."""
    if len(number) != 10 or not (number.isascii() and number.isdigit()):
        return TEN_DIGITS
    if number[0] != first_digit:
        return Bilingual(f"must start with {first_digit}", f"يجب أن يبدأ بالرقم {first_digit}")
    if not luhn_valid(number):
        return CHECK_DIGIT
    return None
