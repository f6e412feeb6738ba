from datetime import date

import pytest
from tawasul_intake.domain.fields import (
    FIELD_KINDS,
    FOREIGN_DIGITS,
    GREGORIAN_ONLY,
    NATIONALITY_CODES,
    check_field,
    clean_text,
    description_problem,
    foreign_digits,
    mobile_problem,
    normalize_digits,
    normalize_mobile,
)
from tawasul_platform.i18n import Bilingual

TODAY = date(2026, 11, 22)
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def with_luhn(body: str) -> str:
    """`body` and its Luhn check digit, computed here independently of the code under test."""
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value // 10 + value % 10
    return body + str(-total % 10)


NATIONAL_IDS = ["1000000008", with_luhn("105432987"), with_luhn("199999999")]
IQAMAS = ["2345678904", with_luhn("200000000"), with_luhn("287654321")]


def test_independent_luhn_agrees_with_known_numbers() -> None:
    assert with_luhn("100000000") == "1000000008"
    assert with_luhn("234567890") == "2345678904"


# --- digits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("٠١٢٣٤٥٦٧٨٩", "0123456789"),
        ("۰۱۲۳۴۵۶۷۸۹", "0123456789"),
        ("رقم الطلب ١٢٣", "رقم الطلب 123"),
        ("0123456789", "0123456789"),
        ("²³", "²³"),
    ],
)
def test_normalize_digits(raw: str, expected: str) -> None:
    assert normalize_digits(raw) == expected


# --- free text --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  hello   world  ", "hello world"),
        ("a\t\t b", "a b"),
        ("first line\r\nsecond line", "first line\nsecond line"),
        ("first\rsecond", "first\nsecond"),
        ("first \n\n\n  second", "first\nsecond"),
        ("first\u2028second", "first\nsecond"),
        ("no\u00a0\u00a0break", "no break"),
        ("e\u0301t\u0301e\u0301", "\u00e9t\u0301\u00e9"),
        ("مرحبا\u200fبك", "مرحبا\u200fبك"),
        ("", ""),
        ("   \n\t ", ""),
    ],
)
def test_clean_text_normalizes(raw: str, expected: str) -> None:
    assert clean_text(raw, max_length=100) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("nul\x00byte", "must not contain control characters"),
        ("bell\x07", "must not contain control characters"),
        ("\x1b[31mred", "must not contain control characters"),
        ("delete\x7f", "must not contain control characters"),
        ("next line\x85", "must not contain control characters"),
        ("form\x0cfeed", "must not contain control characters"),
        *[
            (f"abc{chr(code)}def", "must not contain text-direction override characters")
            for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
        ],
    ],
)
def test_clean_text_refuses_hidden_characters(raw: str, problem: str) -> None:
    assert clean_text(raw, max_length=100) == ("", problem)


@pytest.mark.parametrize(
    ("raw", "max_length", "problem"),
    [
        ("x" * 10, 10, None),
        ("x" * 11, 10, "at most 10 characters"),
        ("a" + " " * 50 + "b", 3, None),
        ("ب" * 5 + "\u0651", 5, "at most 5 characters"),
    ],
)
def test_clean_text_caps_length_after_cleaning(
    raw: str, max_length: int, problem: str | None
) -> None:
    assert clean_text(raw, max_length=max_length)[1] == problem


# --- descriptions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "An error numbered 1021 appears when renewing iqama 2345678904 after payment",
        "The photo does not appear on the passport renewal page after I upload it",
        "The site does not work when I pay the visit visa extension fee with a Mada card",
        "Exit re-entry visa 6012345678 was issued twice; please cancel the second one",
        "تظهر رسالة خطأ رقم 1021 عند تجديد هوية مقيم رقم 2345678904 بعد السداد",
        "لم تظهر الصورة الشخصية في طلب تجديد الجواز بعد رفعها مرتين",
        "أرغب في إلغاء تأشيرة الخروج والعودة رقم ٦٠١٢٣٤٥٦٧٨ لأن السفر أُلغي",
        "الموقع لا يعمل عند سداد رسوم تمديد تأشيرة الزيارة العائلية",
    ],
)
def test_precise_descriptions_are_accepted(text: str) -> None:
    assert description_problem(text) is None


FILLER = [
    "الموقع لا يعمل",
    "النظام لا يعمل",
    "ما يشتغل",
    "مشكلة",
    "عندي مشكلة",
    "the site does not work",
    "it does not work",
    "help",
    "problem",
    "urgent",
    "please help",
    "The site does not work!!! Please help, urgent",
    "It does not work, I have a problem, please help.",
    "الموقع لا يعمل، عندي مشكلة",
    "النظام لا يعمل وما يشتغل عندي مشكلة",
    "السلام عليكم، الموقع ما يشتغل أرجو المساعدة",
    "الموقـــع لا يَعمل وعندي مُشكلة عاجلة",
    "URGENT problem: the website is not working, help me please",
]


@pytest.mark.parametrize("text", FILLER)
def test_generic_filler_is_refused(text: str) -> None:
    assert description_problem(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "The site does not work!!! Please help, urgent",
        "الموقع لا يعمل، عندي مشكلة",
        "السلام عليكم، الموقع ما يشتغل أرجو المساعدة",
        "URGENT problem: the website is not working, help me please",
    ],
)
def test_long_filler_is_called_too_general(text: str) -> None:
    assert (description_problem(text) or "").startswith("too general")


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("", "too short, use at least 20 characters"),
        ("renew iqama error", "too short, use at least 20 characters"),
        ("aaaaaaaaaaaaaaaaaaaaaaa", "repeats a single character"),
        ("a a a a a a a a a a a a a a", "repeats a single character"),
        ("test test test test test", "repeats the same words"),
        ("hello world hello world hello world", "repeats the same words"),
        ("!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "must be written in words"),
        ("abcdefghijklmnopqrstuvwxyz", "too short, use at least 4 words"),
        ("renewaliqama shows error1021", "too short, use at least 4 words"),
        ("error 1021 when renewing\x00 iqama", "must not contain control characters"),
        ("error 1021 when renewing \u202eamaqi", "must not contain text-direction"),
        ("error 1021 when renewing iqama " * 200, "at most 4000 characters"),
    ],
)
def test_description_problems(text: str, start: str) -> None:
    problem = description_problem(text)
    assert problem is not None
    assert problem.startswith(start)


ZWSP, RLM, BOM, HANGUL_FILLER = "\u200b", "\u200f", "\ufeff", "\u3164"


@pytest.mark.parametrize(
    "text",
    [
        # 18 characters a reader sees, padded past 20 with ones nobody sees.
        "iqama error 1021 x" + ZWSP * 5,
        "iqama" + ZWSP + " error " + RLM * 3 + "1021" + BOM * 4 + " x",
        # Blanks between the words, however many and whatever kind, read as one space.
        "iqama " + ZWSP + " " + ZWSP + " error " + ZWSP + " 1021 x",
        # Blank letters are no words.
        "renew " + " ".join(HANGUL_FILLER * n for n in range(1, 6)),
    ],
    ids=["zero-width", "format marks", "blank runs", "blank letters"],
)
def test_the_minimum_counts_what_a_reader_sees(text: str) -> None:
    assert (description_problem(text) or "").startswith("too short"), description_problem(text)


def test_format_marks_typed_in_arabic_do_not_spoil_a_good_description() -> None:
    typed = RLM + "لا تظهر الصورة عند تجديد الجواز بعد الدفع" + RLM
    assert description_problem(typed) is None
    assert clean_text(typed, max_length=4000) == (typed, None)


# --- mobile numbers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0551234567", "+966551234567"),
        ("551234567", "+966551234567"),
        ("+966551234567", "+966551234567"),
        ("00966551234567", "+966551234567"),
        ("055 123 4567", "+966551234567"),
        ("055-123-4567", "+966551234567"),
        ("+966 55 123 4567", "+966551234567"),
        ("00966-55-123-4567", "+966551234567"),
        (" 0501234567 ", "+966501234567"),
    ],
)
def test_saudi_mobiles_are_normalized(raw: str, e164: str) -> None:
    assert normalize_mobile(raw) == e164
    assert mobile_problem(raw) is None


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("0112345678", "must be a mobile number, not a landline"),
        ("+966112345678", "must be a mobile number, not a landline"),
        ("0126543210", "must be a mobile number, not a landline"),
        ("+971501234567", "must be a Saudi number (+966)"),
        ("00447911123456", "must be a Saudi number (+966)"),
        ("+201001234567", "must be a Saudi number (+966)"),
        ("05512345", "must be a Saudi mobile number, 05XXXXXXXX or +9665XXXXXXXX"),
        ("055123456789", "must be a Saudi mobile number, 05XXXXXXXX or +9665XXXXXXXX"),
        ("055ABC4567", "must be a Saudi mobile number, 05XXXXXXXX or +9665XXXXXXXX"),
        ("0551234567 ext 1", "must be a Saudi mobile number, 05XXXXXXXX or +9665XXXXXXXX"),
        ("+", "must be a Saudi mobile number, 05XXXXXXXX or +9665XXXXXXXX"),
        ("", "required"),
    ],
)
def test_other_numbers_are_not_saudi_mobiles(raw: str, problem: str) -> None:
    assert normalize_mobile(raw) is None
    assert mobile_problem(raw) == problem


# --- identity and document numbers -----------------------------------------------------


def test_field_kinds() -> None:
    assert {
        "national_id",
        "iqama_number",
        "id_number",
        "border_number",
        "visa_number",
        "passport_number",
        "establishment_number",
        "date",
        "text",
        "choice",
        "nationality",
    } == FIELD_KINDS


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown field kind"):
        check_field("shoe_size", "42", today=TODAY)


@pytest.mark.parametrize(
    ("kind", "raw", "value", "problem"),
    [
        *[("national_id", number, number, None) for number in NATIONAL_IDS],
        ("national_id", " 1000000008 ", "1000000008", None),
        ("national_id", "1000000009", "1000000009", "check digit does not match"),
        ("national_id", "1000000080", "1000000080", "check digit does not match"),
        ("national_id", "2345678904", "2345678904", "must start with 1"),
        ("national_id", "100000000", "100000000", "must be 10 digits"),
        ("national_id", "10000000080", "10000000080", "must be 10 digits"),
        ("national_id", "10000x0008", "10000x0008", "must be 10 digits"),
        ("national_id", "1000 000008", "1000 000008", "must be 10 digits"),
        ("national_id", "1²00000008", "1²00000008", "must be 10 digits"),
        ("national_id", "", "", "required"),
        *[("iqama_number", number, number, None) for number in IQAMAS],
        ("iqama_number", "2345678905", "2345678905", "check digit does not match"),
        ("iqama_number", "1000000008", "1000000008", "must start with 2"),
        ("iqama_number", "234567890", "234567890", "must be 10 digits"),
        ("id_number", "1000000008", "1000000008", None),
        ("id_number", "2345678904", "2345678904", None),
        ("id_number", with_luhn("300000000"), with_luhn("300000000"), "must start with 1 or 2"),
        ("id_number", "2345678900", "2345678900", "check digit does not match"),
        ("border_number", "3123456789", "3123456789", None),
        ("border_number", "4000000000", "4000000000", None),
        ("border_number", "2123456789", "2123456789", "must start with 3 or 4"),
        ("border_number", "31234", "31234", "must be 10 digits"),
        ("visa_number", "6012345678", "6012345678", None),
        ("visa_number", "0123456789", "0123456789", None),
        ("visa_number", "12345", "12345", "must be 10 digits"),
        ("visa_number", "12345678901", "12345678901", "must be 10 digits"),
        ("establishment_number", "7001234567", "7001234567", None),
        ("establishment_number", "6001234567", "6001234567", "must start with 7"),
        ("establishment_number", "700123456", "700123456", "must be 10 digits"),
        ("passport_number", "a1234567", "A1234567", None),
        ("passport_number", "P12345", "P12345", None),
        ("passport_number", "123456789", "123456789", None),
        ("passport_number", " x9876543 ", "X9876543", None),
        ("passport_number", "ABCDEFGH", "ABCDEFGH", "must contain at least one digit"),
        ("passport_number", "A1234", "A1234", "must be 6 to 9 characters"),
        ("passport_number", "A123456789", "A123456789", "must be 6 to 9 characters"),
        ("passport_number", "A12-3456", "A12-3456", "must contain only Latin letters and digits"),
        ("passport_number", "A12 3456", "A12 3456", "must contain only Latin letters and digits"),
        ("passport_number", "Ж1234567", "Ж1234567", "must contain only Latin letters and digits"),
        ("passport_number", "ﬁ123456", "ﬁ123456", "must contain only Latin letters and digits"),
        ("passport_number", "", "", "required"),
    ],
)
def test_number_kinds(kind: str, raw: str, value: str, problem: str | None) -> None:
    assert check_field(kind, raw, today=TODAY) == (value, problem)


@pytest.mark.parametrize(
    ("kind", "ascii_value"),
    [
        ("national_id", "1000000008"),
        ("iqama_number", "2345678904"),
        ("id_number", "1054329873"),
        ("border_number", "3123456789"),
        ("visa_number", "6012345678"),
        ("establishment_number", "7001234567"),
        ("passport_number", "A1234567"),
        ("date", "2020-01-31"),
    ],
)
@pytest.mark.parametrize("digits", [ARABIC_INDIC, PERSIAN])
def test_other_scripts_digits_are_refused_everywhere_not_converted(
    kind: str, ascii_value: str, digits: dict[int, int]
) -> None:
    typed = ascii_value.translate(digits)
    assert typed != ascii_value
    assert check_field(kind, typed, today=TODAY) == (typed, FOREIGN_DIGITS)


@pytest.mark.parametrize("digits", [ARABIC_INDIC, PERSIAN])
def test_mobiles_in_other_scripts_digits_are_refused(digits: dict[int, int]) -> None:
    typed = "0551234567".translate(digits)
    assert normalize_mobile(typed) is None
    assert mobile_problem(typed) == FOREIGN_DIGITS


@pytest.mark.parametrize(
    ("text", "foreign"),
    [
        ("0123456789", False),
        ("", False),
        ("رقم", False),
        ("²³", False),  # superscripts are no decimal digits; the field patterns refuse them
        ("١", True),
        ("۴", True),
        ("१२३", True),  # Devanagari
        ("１２３", True),  # fullwidth
        ("12٣", True),
    ],
)
def test_foreign_digits(text: str, foreign: bool) -> None:
    assert foreign_digits(text) is foreign


@pytest.mark.parametrize(
    ("raw", "past_only", "value", "problem"),
    [
        ("2000-02-29", False, "2000-02-29", None),
        ("1900-01-01", True, "1900-01-01", None),
        ("2026-11-22", True, "2026-11-22", None),
        ("2026-11-23", False, "2026-11-23", None),
        ("2026-11-23", True, "2026-11-23", "must not be in the future"),
        ("2030-01-01", True, "2030-01-01", "must not be in the future"),
        ("2026-02-30", False, "2026-02-30", "not a valid date"),
        ("2023-02-29", False, "2023-02-29", "not a valid date"),
        ("2026-13-01", False, "2026-13-01", "not a valid date"),
        ("0000-01-01", False, "0000-01-01", "not a valid date"),
        ("1899-12-31", False, "1899-12-31", "must not be before 1900-01-01"),
        ("1299-12-30", False, "1299-12-30", "must not be before 1900-01-01"),
        # Hijri dates, as a Saudi ID card shows them: the field wants the Gregorian one.
        ("1446-06-10", True, "1446-06-10", GREGORIAN_ONLY),
        ("1405-02-30", True, "1405-02-30", GREGORIAN_ONLY),
        ("1300-01-01", False, "1300-01-01", GREGORIAN_ONLY),
        ("1500-12-29", False, "1500-12-29", GREGORIAN_ONLY),
        ("1501-01-01", False, "1501-01-01", "must not be before 1900-01-01"),
        ("22/11/2026", False, "22/11/2026", "must be a date as YYYY-MM-DD"),
        ("20261122", False, "20261122", "must be a date as YYYY-MM-DD"),
        ("2026-11-22T10:00", False, "2026-11-22T10:00", "must be a date as YYYY-MM-DD"),
        ("2026-1-2", False, "2026-1-2", "must be a date as YYYY-MM-DD"),
        (" ٢٠٢٠-٠١-٠١ ", True, "٢٠٢٠-٠١-٠١", FOREIGN_DIGITS),
        ("", True, "", "required"),
    ],
)
def test_dates(raw: str, past_only: bool, value: str, problem: str | None) -> None:
    assert check_field("date", raw, today=TODAY, past_only=past_only) == (value, problem)


def test_a_hijri_date_is_told_the_field_is_gregorian_in_both_languages() -> None:
    _, problem = check_field("date", "1446-06-10", today=TODAY)
    assert problem == "must be a Gregorian date (YYYY-MM-DD); Hijri dates are not taken"
    assert isinstance(problem, Bilingual)
    assert "ميلادي" in problem.ar
    assert "الهجرية" in problem.ar


@pytest.mark.parametrize(
    ("raw", "value", "problem"),
    [
        ("family", "family", None),
        (" business ", "business", None),
        ("Family", "Family", "not one of the allowed values"),
        ("tourism", "tourism", "not one of the allowed values"),
        ("", "", "required"),
    ],
)
def test_choices(raw: str, value: str, problem: str | None) -> None:
    options = frozenset({"family", "business"})
    assert check_field("choice", raw, today=TODAY, options=options) == (value, problem)


def test_choice_without_options_accepts_nothing() -> None:
    assert check_field("choice", "family", today=TODAY)[1] == "not one of the allowed values"


@pytest.mark.parametrize(
    ("raw", "value", "problem"),
    [
        ("SAU", "SAU", None),
        ("sau", "SAU", None),
        (" yem ", "YEM", None),
        ("Syr", "SYR", None),
        ("PSE", "PSE", None),
        ("SSD", "SSD", None),
        ("XXX", "XXX", "not a known country code"),
        ("ANT", "ANT", "not a known country code"),
        ("SA", "SA", "must be a three-letter country code"),
        ("SAUD", "SAUD", "must be a three-letter country code"),
        ("S1U", "S1U", "must be a three-letter country code"),
        ("ЅАU", "ЅАU", "must be a three-letter country code"),
        ("", "", "required"),
    ],
)
def test_nationalities(raw: str, value: str, problem: str | None) -> None:
    assert check_field("nationality", raw, today=TODAY) == (value, problem)


def test_nationality_codes_are_the_current_iso_list() -> None:
    assert len(NATIONALITY_CODES) == 249
    assert all(len(code) == 3 and code.isascii() and code.isupper() for code in NATIONALITY_CODES)
    assert {"SAU", "EGY", "IND", "PAK", "PHL", "BGD", "IDN", "SDN", "SSD"} <= NATIONALITY_CODES
    assert "ANT" not in NATIONALITY_CODES  # Netherlands Antilles, withdrawn in 2010


@pytest.mark.parametrize(
    ("raw", "max_length", "value", "problem"),
    [
        ("  the  employer\tname ", 200, "the employer name", None),
        ("", 200, "", "required"),
        (" \n\t ", 200, "", "required"),
        ("\u200b\u200f\ufeff", 200, "\u200b\u200f\ufeff", "required"),
        ("\u200b \u3164", 200, "\u200b \u3164", "required"),
        ("x" * 201, 200, "x" * 201, "at most 200 characters"),
        ("x" * 30, 20, "x" * 30, "at most 20 characters"),
        ("abc\u202edef", 200, "", "must not contain text-direction override characters"),
        ("abc\x00def", 200, "", "must not contain control characters"),
    ],
)
def test_text(raw: str, max_length: int, value: str, problem: str | None) -> None:
    assert check_field("text", raw, today=TODAY, max_length=max_length) == (value, problem)


VALID = {
    "national_id": "1000000008",
    "iqama_number": "2345678904",
    "id_number": "1000000008",
    "border_number": "3123456789",
    "visa_number": "6012345678",
    "establishment_number": "7001234567",
    "passport_number": "A1234567",
    "date": "2020-01-31",
    "text": "hello",
    "choice": "family",
    "nationality": "SAU",
}


@pytest.mark.parametrize("kind", sorted(FIELD_KINDS))
@pytest.mark.parametrize("hidden", ["\x00", "\x1b", "\u202e", "\u2067"])
def test_hidden_characters_are_refused_in_every_kind(kind: str, hidden: str) -> None:
    assert check_field(kind, VALID[kind], today=TODAY, options={"family"}) == (VALID[kind], None)
    typed = VALID[kind][:2] + hidden + VALID[kind][2:]
    assert check_field(kind, typed, today=TODAY, options={"family"})[1] is not None


# --- problems never repeat the input ----------------------------------------------------

MARKER = "Zq7MarkerUnique9931للاختبار"
MARKER_PARTS = ("Zq7", "Marker", "9931", "للاختبار", "zq7", "MARKER")
MARKED_INPUTS = [
    MARKER,
    f"  {MARKER}  ",
    MARKER * 200,
    f"{MARKER}\x00",
    f"{MARKER}\u202e",
    f"1{MARKER}",
    f"2026-{MARKER}",
    f"the site does not work {MARKER}",
]


def assert_no_echo(problem: str | None) -> None:
    assert problem is not None
    for part in MARKER_PARTS:
        assert part not in problem


@pytest.mark.parametrize("kind", sorted(FIELD_KINDS))
@pytest.mark.parametrize("raw", MARKED_INPUTS)
def test_field_problems_never_repeat_the_input(kind: str, raw: str) -> None:
    assert_no_echo(check_field(kind, raw, today=TODAY, max_length=10)[1])


@pytest.mark.parametrize("raw", MARKED_INPUTS)
def test_other_problems_never_repeat_the_input(raw: str) -> None:
    assert_no_echo(mobile_problem(raw))
    assert_no_echo(clean_text(raw, max_length=10)[1])
    assert_no_echo(description_problem(raw[:10]))
    assert_no_echo(description_problem(raw + "\x00"))
    assert_no_echo(description_problem(f"{raw} {'x' * 4000}"))


LATIN_ONLY = (
    "must be written in Latin letters, with only spaces, apostrophes (') and hyphens (-) besides"
)
ARABIC_ONLY = (
    "must be written in Arabic letters, with only spaces, apostrophes (') and hyphens (-) besides"
)


@pytest.mark.parametrize(
    ("script", "raw", "problem"),
    [
        ("latin", "Mohammed O'Neil Al-Qahtani", None),
        ("latin", "Mohammed O\u2019Neil", None),
        ("latin", "José Núñez", None),
        ("latin", "محمد عبدالله القحطاني", LATIN_ONLY),
        ("latin", "Mohammed محمد", LATIN_ONLY),
        ("latin", "Mohammed 2", LATIN_ONLY),
        ("latin", "Mohammed.", LATIN_ONLY),
        ("latin", "Мohammed", LATIN_ONLY),  # a Cyrillic М
        ("arabic", "محمد عبدالله القحطاني", None),
        ("arabic", "مُحَمَّد بن-علي القحطـــاني", None),  # harakat, a hyphen, tatweel
        ("arabic", "\u200fمحمد", None),  # a direction mark typed on a phone
        ("arabic", "Mohammed", ARABIC_ONLY),
        ("arabic", "محمد Ali", ARABIC_ONLY),
        ("arabic", "محمد ٢", ARABIC_ONLY),  # an Arabic-Indic digit is no letter
        ("arabic", "محمد، علي", ARABIC_ONLY),  # nor the Arabic comma
        ("arabic", "", "required"),
    ],
)
def test_a_text_takes_its_scripts_letters_only(script: str, raw: str, problem: str | None) -> None:
    assert check_field("text", raw, today=TODAY, script=script)[1] == problem


def test_a_script_problem_is_in_both_languages() -> None:
    _, problem = check_field("text", "محمد", today=TODAY, script="latin")
    assert isinstance(problem, Bilingual)
    assert "اللاتينية" in problem.ar


def test_an_unknown_script_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown script"):
        check_field("text", "Ali", today=TODAY, script="cyrillic")
