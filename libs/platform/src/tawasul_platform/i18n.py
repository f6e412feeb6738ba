"""Messages people read, in the two languages Tawasul speaks, and a caller's choice of one.

A refusal's field messages are for the person who typed the field: the web page and the apps
show them beside it, in the page's language (Arabic first). A `Bilingual` message is its
English, which it equals as a string (what logs, tests and developers read), with its Arabic
beside it; the gRPC frame answers in the language the call's `accept-language` prefers, and
in Arabic, the default (SPEC §2), when it names neither.

Pure Python: domain modules import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

ACCEPT_LANGUAGE: Final = "accept-language"
LOCALES: Final = ("ar", "en")
# The language of a caller who names neither: the beneficiaries', Arabic first (SPEC §2).
DEFAULT_LOCALE: Final = "ar"


class Bilingual(str):
    """English text (the string itself) with its Arabic (`ar`)."""

    ar: str

    def __new__(cls, en: str, ar: str) -> Bilingual:
        said = super().__new__(cls, en)
        said.ar = ar
        return said

    def __reduce__(self) -> tuple[type[Bilingual], tuple[str, str]]:
        return Bilingual, (str(self), self.ar)


@dataclass(frozen=True, slots=True)
class Noun:
    """What a message counts, in the words each number takes.

    Arabic agrees with the number (CLDR's plural forms, by the last two digits past two):
    one and two have words of their own and no digit ("مستند واحد", "مستندان"), 3–10 take the
    plural ("5 مستندات", "103 مستندات"), 11–99 the singular in the accusative ("50 حرفًا"), and
    the rest the singular ("100 حرف").
    """

    en: str
    en_plural: str
    ar_one: str
    ar_two: str
    ar_plural: str
    ar_accusative: str
    ar_singular: str

    def count(self, n: int) -> Bilingual:
        """`n` of this, in both languages: "1 document" / "مستند واحد"."""
        en = f"{n} {self.en if n == 1 else self.en_plural}"
        return Bilingual(en, _arabic_count(n, self))


def _arabic_count(n: int, noun: Noun) -> str:
    if n == 1:
        return noun.ar_one
    if n == 2:
        return noun.ar_two
    tens = n % 100
    if 3 <= tens <= 10:
        return f"{n} {noun.ar_plural}"
    if 11 <= tens <= 99:
        return f"{n} {noun.ar_accusative}"
    return f"{n} {noun.ar_singular}"


def in_locale(message: str, locale: str) -> str | None:
    """`message` in `locale` ("ar" or "en"), or None when it has no text in that language."""
    if locale == "en":
        return str(message) or None
    if locale == "ar" and isinstance(message, Bilingual):
        return message.ar
    return None


def preferred_locale(header: str | None) -> str:
    """ "ar" or "en", whichever an Accept-Language value ranks first (by its q-values, then its
    order); Arabic, the default, when it names neither, or is not one."""
    if not header or len(header) > 512:
        return DEFAULT_LOCALE
    best: tuple[float, int, str] | None = None
    for order, item in enumerate(header.split(",")):
        tag, _, params = item.partition(";")
        # "ar_SA" is no language tag, but some clients send their locale's name so.
        locale = tag.strip().lower().replace("_", "-").split("-", 1)[0]
        if locale not in LOCALES:
            continue
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        if not 0 < quality <= 1:
            continue
        if best is None or (quality, -order) > (best[0], -best[1]):
            best = (quality, order, locale)
    return best[2] if best else DEFAULT_LOCALE


CHARACTERS: Final = Noun("character", "characters", "حرف واحد", "حرفان", "أحرف", "حرفًا", "حرف")


def at_most(noun: Noun, n: int) -> Bilingual:
    """ "at most `n` of `noun`", in both languages."""
    counted = noun.count(n)
    return Bilingual(f"at most {counted}", f"{counted.ar} على الأكثر")
