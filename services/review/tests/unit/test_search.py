"""Search as Arabic is really typed: one normalisation for indexing and querying, the shape of
a query, and request numbers one typing mistake away."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from tawasul_platform.request_numbers import damm_digit
from tawasul_review.domain import search
from tawasul_review.domain.model import HistoryEntry
from tawasul_review.domain.search import (
    Kind,
    classify,
    mobile_key,
    normalise,
    number_candidates,
    person_id,
    public_texts,
    request_number,
    searchable,
    terms,
    tokens,
    whole,
)

# Each row: spellings people really type for the same thing.
SAME = [
    # Alef with hamza above, below, madda, wasla, and bare.
    ("أحمد", "احمد", "إحمد"),
    ("آمنة", "امنه"),
    ("ٱلله", "الله"),
    ("إبراهيم", "ابراهيم", "أبراهيم"),
    # Ta marbuta and ha.
    ("فاطمة", "فاطمه"),
    ("أسامة", "اسامه"),
    # Alef maqsura and ya (and the Persian ya of Urdu keyboards).
    ("مصطفى", "مصطفي", "مصطفی"),
    ("عيسى", "عيسي"),
    # Servant-of names with and without the space.
    ("عبدالله", "عبد الله", "عبد  الله"),
    ("عبد الرحمن", "عبدالرحمن"),
    ("أبو بكر", "ابوبكر"),
    # Tatweel.
    ("محـــمد", "محمد", "مـحـمـد"),
    # Harakat, tanween, shadda, sukun, superscript alef.
    ("مُحَمَّد", "محمد"),
    ("عُثْمَان", "عثمان"),
    ("شكراً", "شكرا"),
    ("هٰذا", "هذا"),
    # Hamza on a seat.
    ("مسؤول", "مسوول"),
    ("هيئة", "هييه"),
    # Arabic-Indic and Persian digits.
    ("٠٥٥١٢٣٤٥٦٧", "0551234567", "۰۵۵۱۲۳۴۵۶۷"),
    ("هوية ٢٠٤٥٦٧٨٩٠٧", "هويه 2045678907"),
    # Latin transliterations in any case, with or without accents.
    ("Mohammed Al-Qahtani", "MOHAMMED al qahtani", "mohammed AL QAHTANI"),
    ("José María", "jose maria"),
    # Punctuation and runs of spaces.
    ("  الجواز،   لا تظهر الصورة!  ", "الجواز لا تظهر الصوره"),
    # Urdu and Persian keyboards: heh doachashmee, ta marbuta goal, yeh barree, and heh with
    # a hamza or a ya above (which NFKC leaves composed).
    ("إبراهيم", "ابراھیم", "ابراھيم"),
    ("فاطمة", "فاطمۃ", "فاطمه"),
    ("علي", "علے", "علۓ"),
    ("خانه", "خانۀ", "خانۂ", "خانه\u0654"),
    # Latin letters with a stroke or a ligature, which have no accent to lose.
    ("Yılmaz", "YILMAZ", "yilmaz"),
    ("Łukasz Wałęsa", "ŁUKASZ WAŁĘSA", "lukasz walesa"),
    ("Søren Ødegård", "SØREN ØDEGÅRD", "soren odegard", "Sǿren Ødegård"),
    ("Đorđević", "ĐORĐEVIĆ", "dordevic"),
    ("Guðrún Þórsdóttir", "GUÐRÚN ÞÓRSDÓTTIR", "gudrun thorsdottir"),
    ("Cæsar Œdipe", "CÆSAR ŒDIPE", "caesar oedipe"),
    # Invisible format characters pasted inside a word: soft hyphen, zero-width space,
    # non-joiner and joiner, word joiner, the direction marks, a byte-order mark.
    ("Christopher", "Chris\u00adtopher", "Chris\u200btopher", "\ufeffChristopher"),
    ("محمد", "مح\u200cمد", "مح\u200dمد", "مح\u2060مد", "\u200fمحمد\u200f", "مح\u061cمد"),
    ("0551234567", "055\u200e1234567"),
]


@pytest.mark.parametrize("spellings", SAME, ids=[row[0] for row in SAME])
def test_every_spelling_of_a_row_normalises_alike(spellings: tuple[str, ...]) -> None:
    assert len({normalise(s) for s in spellings}) == 1


@pytest.mark.parametrize(
    ("typed", "indexed"),
    [
        ("أحمد", "احمد"),
        ("محـــمد", "محمد"),
        ("مُحَمَّد", "محمد"),
        ("فاطمة", "فاطمه"),
        ("مصطفى", "مصطفي"),
        ("عبد الله", "عبدالله"),
        ("٠٥٥١٢٣٤٥٦٧", "0551234567"),
        ("AHMED", "ahmed"),
        ("YILMAZ Yılmaz", "yilmaz yilmaz"),
        ("ǾRSTED ǿrsted", "orsted orsted"),
        ("ǼLFRED", "aelfred"),
    ],
)
def test_the_searchable_form(typed: str, indexed: str) -> None:
    assert normalise(typed) == indexed


def test_format_characters_are_dropped_not_read_as_breaks() -> None:
    assert normalise("Chris\u00adtopher Lee") == "christopher lee"
    assert normalise("عبد\u200c الله\u200f") == "عبدالله"
    assert terms("مح\u200dمد") == ["محمد"]
    assert normalise("\u200e\u2066\u2069") == ""


def test_the_format_characters_dropped_are_unicode_s() -> None:
    """The list normalise drops is this interpreter's category Cf, no more and no less: a
    Python with a newer Unicode fails here until the list follows it."""
    every = (chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)
    assert {c for c in every if unicodedata.category(c) == "Cf"} == {
        c for c in map(chr, range(sys.maxunicode + 1)) if search._FORMAT.fullmatch(c)
    }


@pytest.mark.parametrize(
    "text", [s for row in SAME for s in row] + ["ǿ", "Ǽ", "ǣ", "İstanbul", "ۀ", "ۂ", "ۓ", "ﮤ"]
)
def test_the_searchable_form_is_its_own(text: str) -> None:
    assert normalise(normalise(text)) == normalise(text)


def test_different_names_stay_different() -> None:
    assert normalise("محمد") != normalise("محمود")
    assert normalise("سعد") != normalise("سعيد")
    assert normalise("عبد") == "عبد"


def test_searchable_joins_normalised_texts_and_skips_empty_ones() -> None:
    assert searchable("أحمد", "", "  ", "Ahmed") == "احمد ahmed"


def test_public_texts_leave_internal_notes_and_system_entries_out() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 1, 4, tzinfo=UTC)
    entries = [
        HistoryEntry(at, "routing", "queued", "passports.default"),
        HistoryEntry(at, "E100", "note", "internal only", internal=True),
        HistoryEntry(at, "E100", "message", "أرفق صورة"),
        HistoryEntry(at, "applicant", "answered", "أرفقتها"),
        HistoryEntry(at, "E100", "claimed", ""),
    ]
    assert public_texts(entries) == ["أرفق صورة", "أرفقتها"]


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("TW123456786", Kind.NUMBER),
        ("tw 1234-5678 6", Kind.NUMBER),
        ("12345678", Kind.NUMBER),
        ("TW١٢٣٤٥٦٧٨٦", Kind.NUMBER),
        ("1000000008", Kind.PERSON_ID),
        ("٢٠٤٥٦٧٨٩٠٧", Kind.PERSON_ID),
        ("0551234567", Kind.MOBILE),
        ("+966 55 123 4567", Kind.MOBILE),
        ("00966551234567", Kind.MOBILE),
        ("٠٥٥١٢٣٤٥٦٧", Kind.MOBILE),
        ("محمد القحطاني", Kind.TEXT),
        ("passport photo", Kind.TEXT),
    ],
)
def test_what_a_query_is(query: str, kind: Kind) -> None:
    assert classify(query) is kind


def test_a_mobile_has_one_key_in_every_spelling() -> None:
    spellings = ["0551234567", "+966551234567", "00966551234567", "966551234567", "٠٥٥١٢٣٤٥٦٧"]
    assert {mobile_key(s) for s in spellings} == {"551234567"}
    assert mobile_key("") == mobile_key("0451234567") == mobile_key("hello") == ""


def test_person_ids() -> None:
    assert person_id("١٠٠٠٠٠٠٠٠٨") == "1000000008"
    assert person_id("5000000008") is None
    assert person_id("100000000") is None


def test_a_valid_number_is_exact_with_no_suggestions() -> None:
    assert damm_digit("12345678") == "6"
    assert request_number("TW123456786") == "123456786"
    assert number_candidates("123456786") == ("TW123456786", [])


def test_a_number_without_its_check_digit_suggests_the_one_number() -> None:
    assert number_candidates("12345678") == ("", ["TW123456786"])


def test_one_wrong_digit_or_a_swap_suggests_the_intended_number() -> None:
    for typo in ("123456785", "123457786", "213456786", "123456768"):
        exact, near = number_candidates(typo)
        assert exact == ""
        assert "TW123456786" in near
        assert all(damm_digit(n[2:]) == "0" for n in near)
        assert len(near) <= 20


def test_text_terms_are_normalised_deduplicated_and_short_words_dropped() -> None:
    assert terms("أحمد احمد في الجواز") == ["احمد", "الجواز"]
    assert terms("في من") == []


def test_numbers_in_a_text_are_tokens_whole_and_their_digits_in_ascii() -> None:
    text = normalise("رقم جوازي A١٢٣٤٥٦٧ والإيصال INV-2024-00123 بتاريخ 1/5 و۱۲")
    assert tokens(text) == ["a1234567", "1234567", "2024", "00123", "و12"]
    assert tokens(normalise("لا أرقام هنا")) == []
    # Runs shorter than a query term are left out, as short query words are.
    assert tokens("ab 12 x1") == []


def test_a_term_holding_a_digit_is_matched_whole_and_others_as_substrings() -> None:
    assert [whole(t) for t in terms("A١٢٣٤٥٦٧ 2nd جواز passport")] == [True, True, False, False]
