import pickle

import pytest
from tawasul_platform.i18n import Bilingual, in_locale, preferred_locale


def test_a_bilingual_message_is_its_english_with_its_arabic_beside_it() -> None:
    said = Bilingual("required", "مطلوب")
    assert said == "required"
    assert {"name": said} == {"name": "required"}
    assert (in_locale(said, "ar"), in_locale(said, "en"), in_locale(said, "fr")) == (
        "مطلوب",
        "required",
        None,
    )
    assert in_locale("required", "ar") is None
    assert pickle.loads(pickle.dumps(said)).ar == "مطلوب"


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("ar", "ar"),
        ("en", "en"),
        ("ar-SA", "ar"),
        ("EN-gb", "en"),
        ("ar,en;q=0.9", "ar"),
        ("en-US,en;q=0.9,ar;q=0.8", "en"),
        ("fr-FR, ar;q=0.5, en;q=0.7", "en"),
        ("en;q=0.5, ar", "ar"),
        ("en, ar", "en"),
        ("fr, de", None),
        ("*", None),
        ("", None),
        (None, None),
        ("ar;q=0", None),
        ("ar;q=x, en;q=0.1", "en"),
        ("ar;q=2", None),
        ("en," * 300, None),
    ],
)
def test_the_preferred_of_arabic_and_english(header: str | None, locale: str | None) -> None:
    assert preferred_locale(header) == locale
