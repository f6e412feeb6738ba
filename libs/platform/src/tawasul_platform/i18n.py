"""Messages people read, in the two languages Tawasul speaks, and a caller's choice of one.

A refusal's field messages are for the person who typed the field: the web page and the apps
show them beside it, in the page's language (Arabic first). A `Bilingual` message is its
English, which it equals as a string (what logs, tests and developers read), with its Arabic
beside it; the gRPC frame answers in the language the call's `accept-language` prefers.

Pure Python: domain modules import it.
"""

from __future__ import annotations

from typing import Final

ACCEPT_LANGUAGE: Final = "accept-language"
LOCALES: Final = ("ar", "en")


class Bilingual(str):
    """English text (the string itself) with its Arabic (`ar`)."""

    ar: str

    def __new__(cls, en: str, ar: str) -> Bilingual:
        said = super().__new__(cls, en)
        said.ar = ar
        return said

    def __reduce__(self) -> tuple[type[Bilingual], tuple[str, str]]:
        return Bilingual, (str(self), self.ar)


def in_locale(message: str, locale: str) -> str | None:
    """`message` in `locale` ("ar" or "en"), or None when it has no text in that language."""
    if locale == "en":
        return str(message) or None
    if locale == "ar" and isinstance(message, Bilingual):
        return message.ar
    return None


def preferred_locale(header: str | None) -> str | None:
    """ "ar" or "en", whichever an Accept-Language value ranks first (by its q-values, then its
    order); None when it names neither, or is not one."""
    if not header or len(header) > 512:
        return None
    best: tuple[float, int, str] | None = None
    for order, item in enumerate(header.split(",")):
        tag, _, params = item.partition(";")
        locale = tag.strip().lower().split("-", 1)[0]
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
    return best[2] if best else None
