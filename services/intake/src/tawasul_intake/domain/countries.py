"""Countries by their ISO 3166-1 alpha-3 code, named in Arabic and English (pycountry's ISO
data and its Arabic translation): what a nationality field offers, and the words a refusal
names them by. ICAO-only codes such as XXA (stateless) are not countries here."""

from __future__ import annotations

import functools
import gettext
import re
from collections.abc import Iterable, Mapping

import pycountry
from tawasul_platform.catalog import Text

# Harakat, shadda and sukun: a list of names is read without them.
_MARKS = re.compile("[\u064b-\u0652]")
# Renamed in ISO 3166 since its Arabic translation was made.
_ARABIC_UNTRANSLATED = {"TUR": "تركيا"}
# Alef with hamza or madda sorts with the bare alef, as Arabic dictionaries order them.
_ALEFS = str.maketrans("أإآ", "ااا")


@functools.cache
def countries() -> Mapping[str, Text]:
    """Every officially assigned code, with its short name in each language."""
    arabic = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["ar"])
    names: dict[str, Text] = {}
    for country in pycountry.countries:
        code = str(country.alpha_3)
        english = str(getattr(country, "common_name", None) or country.name)
        ar = _ARABIC_UNTRANSLATED.get(code) or _MARKS.sub("", arabic.gettext(country.name))
        names[code] = Text(ar=ar, en=english)
    return names


def names(codes: Iterable[str], locale: str) -> list[tuple[str, str]]:
    """(code, name) of each of `codes` in `locale`, in the order of the names."""
    every = countries()
    named = [(code, every[code].in_locale(locale)) for code in codes if code in every]
    return sorted(named, key=lambda pair: pair[1].translate(_ALEFS).casefold())
