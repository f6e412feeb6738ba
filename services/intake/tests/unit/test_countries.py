import re

from tawasul_intake.domain.countries import countries, names

ARABIC_LETTERS = re.compile("[\u0621-\u064a]")
MARKS = re.compile("[\u064b-\u0652]")


def test_every_country_has_a_name_in_each_language() -> None:
    every = countries()
    assert len(every) == 249
    for code, name in every.items():
        assert len(code) == 3, code
        assert code.isupper(), code
        assert ARABIC_LETTERS.search(name.ar), (code, name.ar)  # translated, not left in English
        assert not MARKS.search(name.ar), (code, name.ar)
        assert name.en, code
    assert (every["SAU"].en, every["TUR"].ar, every["KOR"].en) == (
        "Saudi Arabia",
        "تركيا",
        "South Korea",
    )


def test_names_come_in_the_order_of_their_language() -> None:
    # Alef with hamza among the bare alefs; the article counts, as in most lists.
    assert names(["YEM", "EGY", "JOR", "ESP"], "ar") == [
        ("ESP", "إسبانيا"),
        ("JOR", "الأردن"),
        ("YEM", "اليمن"),
        ("EGY", "مصر"),
    ]
    assert names(["YEM", "EGY", "JOR"], "en") == [
        ("EGY", "Egypt"),
        ("JOR", "Jordan"),
        ("YEM", "Yemen"),
    ]
    # A code that is not a country names nothing.
    assert names(["XXA"], "en") == []
