import pickle

import pytest
from tawasul_platform.i18n import CHARACTERS, Bilingual, at_most, in_locale, preferred_locale


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
        ("ar_SA", "ar"),
        ("ar,en;q=0.9", "ar"),
        ("en-US,en;q=0.9,ar;q=0.8", "en"),
        ("fr-FR, ar;q=0.5, en;q=0.7", "en"),
        ("en;q=0.5, ar", "ar"),
        ("en, ar", "en"),
        ("fr, de", "ar"),
        ("*", "ar"),
        ("", "ar"),
        (None, "ar"),
        ("ar;q=0", "ar"),
        ("ar;q=x, en;q=0.1", "en"),
        ("ar;q=2", "ar"),
        ("en," * 300, "ar"),
    ],
)
def test_the_preferred_of_arabic_and_english(header: str | None, locale: str) -> None:
    assert preferred_locale(header) == locale


@pytest.mark.parametrize(
    ("n", "english", "arabic"),
    [
        (1, "1 character", "حرف واحد"),
        (2, "2 characters", "حرفان"),
        (3, "3 characters", "3 أحرف"),
        (10, "10 characters", "10 أحرف"),
        (11, "11 characters", "11 حرفًا"),
        (50, "50 characters", "50 حرفًا"),
        (99, "99 characters", "99 حرفًا"),
        (100, "100 characters", "100 حرف"),
        (102, "102 characters", "102 حرف"),
        (103, "103 characters", "103 أحرف"),
        (150, "150 characters", "150 حرفًا"),
        (2000, "2000 characters", "2000 حرف"),
    ],
)
def test_a_count_agrees_with_its_number_in_either_language(
    n: int, english: str, arabic: str
) -> None:
    counted = CHARACTERS.count(n)
    assert (counted, counted.ar) == (english, arabic)


def test_at_most_puts_the_limit_in_each_language_s_order() -> None:
    limit = at_most(CHARACTERS, 1)
    assert (limit, limit.ar) == ("at most 1 character", "حرف واحد على الأكثر")
