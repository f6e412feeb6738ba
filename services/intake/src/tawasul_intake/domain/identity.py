"""Saudi identity numbers: national ID (1…) and iqama (2…) with their Luhn check digit, and a
visitor's border number (3… or 4…) without one."""

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


def id_number_problem(number: str, *, first_digits: str) -> Bilingual | None:
    """Why `number` is not an ID starting with one of `first_digits`, or None: a national ID
    (1) or an iqama (2) ends in its check digit, a visitor's border number (3 or 4) in none."""
    if len(number) != 10 or not (number.isascii() and number.isdigit()):
        return TEN_DIGITS
    if number[0] not in first_digits:
        return Bilingual(
            "must start with " + " or ".join(first_digits),
            "يجب أن يبدأ بالرقم " + " أو ".join(first_digits),
        )
    if number[0] in "12" and not luhn_valid(number):
        return CHECK_DIGIT
    return None
