"""What beneficiaries type into a request's fields, checked and normalized.

Pure functions: no I/O and no clock (today's date is passed in). A problem is a short
English phrase that says what is wrong and never repeats what was typed, so it can be
logged and shown back without leaking or reflecting the input.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from datetime import date

import phonenumbers
from tawasul_platform.hygiene import visible_length, visible_text
from tawasul_platform.i18n import CHARACTERS, Bilingual, Noun, at_most

from tawasul_intake.domain.countries import countries
from tawasul_intake.domain.identity import CHECK_DIGIT, TEN_DIGITS, luhn_valid

MIN_DESCRIPTION_CHARS = 20
MIN_DESCRIPTION_WORDS = 4
MAX_DESCRIPTION_CHARS = 4000
EARLIEST_DATE = date(1900, 1, 1)
# The years of Hijri dates people live by (1447 AH is 2025-26): a Saudi ID card shows the date
# of birth in Hijri, and one typed from it must be told the field wants the Gregorian date.
HIJRI_YEARS = range(1300, 1501)
GREGORIAN_ONLY = Bilingual(
    "must be a Gregorian date (YYYY-MM-DD); Hijri dates are not taken",
    "يجب أن يكون تاريخًا ميلاديًا (YYYY-MM-DD)؛ لا تُقبل التواريخ الهجرية",
)

FIELD_KINDS: frozenset[str] = frozenset(
    {
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
    }
)

# Arabic-Indic (U+0660…) and Extended Arabic-Indic / Persian (U+06F0…) digits: Arabic
# keyboards on phones type these, and they mean the same numbers.
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")

# Identifiers, numbers and codes are ASCII digits on the wire. Other scripts' digits are
# refused, not converted: the channel shows the person what to fix, and what is stored is
# exactly what was sent. (Python's \d, int() and str.isdigit() all accept them, so every
# validator here spells [0-9] or checks this first.)
FOREIGN_DIGITS = Bilingual(
    "must be typed with the digits 0-9, not Arabic-Indic or other digits",
    "يُكتب بالأرقام 0-9، لا بالأرقام الهندية (٠-٩) ولا غيرها",
)
REQUIRED = Bilingual("required", "مطلوب")
_WORDS = Noun("word", "words", "كلمة واحدة", "كلمتان", "كلمات", "كلمةً", "كلمة")


NOT_AN_OPTION = Bilingual("not one of the allowed values", "ليس من القيم المسموح بها")


def at_most_characters(limit: int) -> Bilingual:
    return at_most(CHARACTERS, limit)


def foreign_digits(text: str) -> bool:
    """True when `text` holds a decimal digit other than ASCII 0-9."""
    return not text.isascii() and any(c.isdecimal() and not c.isascii() for c in text)


def normalize_digits(text: str) -> str:
    """`text` with Arabic-Indic and Persian digits replaced by ASCII ones: for matching
    what people type in search, never for validation (which refuses them)."""
    return text.translate(_DIGITS)


# ---------------------------------------------------------------------------------------
# Free text

# Embeddings and overrides that reorder what a reviewer sees (the "Trojan Source" trick);
# marks such as U+200E/U+200F stay allowed, Arabic text typed on phones carries them.
_BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
_KEPT_CONTROLS = frozenset("\n\r\t")
_LINE_BREAKS = re.compile(r"\r\n|[\r\u2028\u2029]")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r" ?\n(?: ?\n)* ?")


def _forbidden_character(text: str) -> Bilingual | None:
    for char in text:
        if char in _KEPT_CONTROLS:
            continue
        category = unicodedata.category(char)
        if category == "Cc":
            return Bilingual("must not contain control characters", "يجب ألا يحتوي على محارف تحكم")
        if char in _BIDI_CONTROLS:
            return Bilingual(
                "must not contain text-direction override characters",
                "يجب ألا يحتوي على محارف تغيير اتجاه النص",
            )
        if category == "Cs":
            return Bilingual("contains invalid characters", "يحتوي على محارف غير صالحة")
    return None


def clean_text(text: str, *, max_length: int) -> tuple[str, Bilingual | None]:
    """(cleaned, problem) for free text; `cleaned` is only for use when problem is None.

    Text that could be disguised (control characters, direction overrides) is refused
    rather than silently repaired, and then `cleaned` is empty.
    """
    if problem := _forbidden_character(text):
        return "", problem
    cleaned = unicodedata.normalize("NFC", text)
    cleaned = _LINE_BREAKS.sub("\n", cleaned)
    cleaned = _HORIZONTAL_SPACE.sub(" ", cleaned)
    cleaned = _BLANK_LINES.sub("\n", cleaned).strip()
    if len(cleaned) > max_length:
        return cleaned, at_most_characters(max_length)
    return cleaned, None


# ---------------------------------------------------------------------------------------
# Descriptions

# Words that, alone or together, say only that something is wrong. A description made of
# nothing else gives a reviewer nothing to act on (the seeds' "the site does not work").
_FILLER_TEXT = """
    الموقع موقع النظام نظام التطبيق تطبيق الخدمة خدمة المنصة منصة الصفحة صفحة
    لا ما مو ماهو يعمل يشتغل شغال تشتغل تعمل اشتغل معطل عطل خلل خربان
    مشكلة مشاكل المشكلة عندي عندنا لدي يوجد فيه في هناك
    عاجل عاجلة ضروري مستعجل مساعدة المساعدة ساعدوني ساعدونا الرجاء أرجو رجاء من فضلك لو سمحت
    السلام عليكم مرحبا شكرا
    the a an this my site website system app application service page portal
    it is isnt not does doesnt do dont cant cannot wont working work works worked broken down
    i we have has there error
    help me us you please pls plz problem problems issue issues urgent urgently asap
    hi hello thanks thank and or
"""

# Harakat, dagger alef and tatweel vary freely in typed Arabic and carry no meaning here.
_ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u0640]")
_ARABIC_LETTERS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"})
_APOSTROPHES = re.compile("['\u2019\u02bc]")


def _words(text: str) -> list[str]:
    """Lower-cased words of `text`, punctuation and symbols taken as spaces."""
    text = _APOSTROPHES.sub("", text.casefold())
    text = _ARABIC_MARKS.sub("", text).translate(_ARABIC_LETTERS)
    spaced = "".join(" " if unicodedata.category(c)[0] in "PSZC" else c for c in text)
    return spaced.split()


_FILLER_WORDS = frozenset(_words(_FILLER_TEXT))


def _is_filler(word: str) -> bool:
    # Arabic joins "and" (و) to the next word: "والنظام", "وما".
    return word in _FILLER_WORDS or (word.startswith("و") and word[1:] in _FILLER_WORDS)


def description_problem(text: str) -> Bilingual | None:
    """Why `text` is not a precise enough description of the beneficiary's problem, or None."""
    cleaned, problem = clean_text(text, max_length=MAX_DESCRIPTION_CHARS)
    if problem:
        return problem
    precisely = Bilingual(
        "say what you were doing, what appeared (such as an error number) "
        "and which document or request it concerns",
        "اذكر ما كنت تفعله، وما ظهر لك (مثل رقم الخطأ)، والمستند أو الطلب المعني",
    )
    # Measured as a reader sees it: zero-width characters and blank runs stand in for nothing.
    seen = visible_text(cleaned)
    if len(seen) < MIN_DESCRIPTION_CHARS:
        least = CHARACTERS.count(MIN_DESCRIPTION_CHARS)
        return Bilingual(
            f"too short, use at least {least}: {precisely}",
            f"قصير جدًا، اكتب {least.ar} على الأقل: {precisely.ar}",
        )
    letters = {c for c in seen.casefold() if c.isalnum()}
    if not letters:
        return Bilingual(
            f"must be written in words: {precisely}", f"يجب أن يُكتب بكلمات: {precisely.ar}"
        )
    if len(letters) == 1:
        return Bilingual(
            f"repeats a single character: {precisely}", f"يكرر حرفًا واحدًا: {precisely.ar}"
        )
    words = _words(seen)
    if len(words) < MIN_DESCRIPTION_WORDS:
        least = _WORDS.count(MIN_DESCRIPTION_WORDS)
        return Bilingual(
            f"too short, use at least {least}: {precisely}",
            f"قصير جدًا، اكتب {least.ar} على الأقل: {precisely.ar}",
        )
    if len(set(words)) <= 2:
        return Bilingual(
            f"repeats the same words: {precisely}", f"يكرر الكلمات نفسها: {precisely.ar}"
        )
    if all(_is_filler(word) for word in words):
        return Bilingual(f"too general: {precisely}", f"عام جدًا: {precisely.ar}")
    return None


# ---------------------------------------------------------------------------------------
# Mobile numbers

# What a person types for a phone number; anything else (letters that phonenumbers would
# read as a vanity number, "ext." suffixes) is refused before parsing.
_PHONE_TYPED = re.compile(r"\+?[0-9][0-9 ()\-]{0,24}")
_MOBILE_FORM = Bilingual(
    "must be a Saudi mobile number, 05XXXXXXXX or +9665XXXXXXXX",
    "يجب أن يكون رقم جوال سعوديًا: 05XXXXXXXX أو +9665XXXXXXXX",
)
_SAUDI_CALLING_CODE = 966


def _mobile(raw: str) -> tuple[str | None, Bilingual | None]:
    text = raw.strip()
    if not text:
        return None, REQUIRED
    if foreign_digits(text):
        return None, FOREIGN_DIGITS
    if not _PHONE_TYPED.fullmatch(text):
        return None, _MOBILE_FORM
    try:
        number = phonenumbers.parse(text, "SA")
    except phonenumbers.NumberParseException:
        return None, _MOBILE_FORM
    if number.country_code != _SAUDI_CALLING_CODE:
        return None, Bilingual("must be a Saudi number (+966)", "يجب أن يكون رقمًا سعوديًا (+966)")
    if not phonenumbers.is_valid_number_for_region(number, "SA"):
        return None, _MOBILE_FORM
    if phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.MOBILE:
        return None, Bilingual(
            "must be a mobile number, not a landline", "يجب أن يكون رقم جوال، لا رقم هاتف ثابت"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def normalize_mobile(raw: str) -> str | None:
    """+9665XXXXXXXX for a valid Saudi mobile number in any usual typed form, else None."""
    return _mobile(raw)[0]


def mobile_problem(raw: str) -> Bilingual | None:
    """Why `raw` is not a valid Saudi mobile number, or None."""
    return _mobile(raw)[1]


# ---------------------------------------------------------------------------------------
# Identity and document numbers, dates, choices, nationalities

NATIONALITY_CODES: frozenset[str] = frozenset(countries())

# ASCII only: str.isdigit() also accepts superscripts and other scripts' digits.
_TEN_DIGITS = re.compile(r"[0-9]{10}")
_LATIN_ALNUM = re.compile(r"[A-Z0-9]+")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_THREE_LETTERS = re.compile(r"[A-Z]{3}")

# First digits of each ten-digit number; True where the last digit is a Luhn check digit.
_TEN_DIGIT_KINDS: dict[str, tuple[str, bool]] = {
    "national_id": ("1", True),
    "iqama_number": ("2", True),
    "id_number": ("12", True),
    "border_number": ("34", False),
    "visa_number": ("", False),
    "establishment_number": ("7", False),
}


def _ten_digit_problem(value: str, *, first_digits: str, luhn: bool) -> Bilingual | None:
    if not _TEN_DIGITS.fullmatch(value):
        return TEN_DIGITS
    if first_digits and value[0] not in first_digits:
        return Bilingual(
            "must start with " + " or ".join(first_digits),
            "يجب أن يبدأ بالرقم " + " أو ".join(first_digits),
        )
    if luhn and not luhn_valid(value):
        return CHECK_DIGIT
    return None


def _passport_problem(value: str) -> Bilingual | None:
    if not _LATIN_ALNUM.fullmatch(value):
        return Bilingual(
            "must contain only Latin letters and digits", "يجب أن يحتوي على حروف لاتينية وأرقام فقط"
        )
    if not 6 <= len(value) <= 9:
        return Bilingual("must be 6 to 9 characters", "يجب أن يتكون من 6 إلى 9 خانات")
    if not any(c.isdigit() for c in value):
        return Bilingual("must contain at least one digit", "يجب أن يحتوي على رقم واحد على الأقل")
    return None


def _date_problem(value: str, *, today: date, past_only: bool) -> Bilingual | None:
    if not _ISO_DATE.fullmatch(value):
        return Bilingual("must be a date as YYYY-MM-DD", "يجب أن يكون تاريخًا بالصيغة YYYY-MM-DD")
    # Before the calendar check: a Hijri month has a 30th day that February lacks.
    if int(value[:4]) in HIJRI_YEARS:
        return GREGORIAN_ONLY
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return Bilingual("not a valid date", "ليس تاريخًا صحيحًا")
    if day < EARLIEST_DATE:
        return Bilingual(
            f"must not be before {EARLIEST_DATE.isoformat()}",
            f"يجب ألا يكون قبل {EARLIEST_DATE.isoformat()}",
        )
    if past_only and day > today:
        return Bilingual("must not be in the future", "يجب ألا يكون في المستقبل")
    return None


# Besides its letters, a name takes spaces, apostrophes (O'Neil, as keyboards and phones type
# them) and hyphens (Al-Qahtani); invisible format characters (direction marks) are typed with
# Arabic on phones and show nothing. An Arabic name's harakat and tatweel are Arabic marks.
_NAME_PUNCTUATION = frozenset(" '\u2019\u02bc-\u2010")
_ALSO_ALLOWED = "with only spaces, apostrophes (') and hyphens (-) besides"
_SCRIPTS: dict[str, tuple[str, frozenset[str], Bilingual]] = {
    "latin": (
        "LATIN ",
        frozenset({"Lu", "Ll", "Lt", "Lm", "Lo"}),
        Bilingual(
            f"must be written in Latin letters, {_ALSO_ALLOWED}",
            "يجب أن يُكتب بالحروف اللاتينية، ولا يُقبل معها إلا المسافات والفواصل العليا (') "
            "والشرطات (-)",
        ),
    ),
    "arabic": (
        "ARABIC ",
        frozenset({"Lo", "Lm", "Mn"}),
        Bilingual(
            f"must be written in Arabic letters, {_ALSO_ALLOWED}",
            "يجب أن يُكتب بالحروف العربية، ولا يُقبل معها إلا المسافات والفواصل العليا (') "
            "والشرطات (-)",
        ),
    ),
}


def _script_problem(value: str, script: str) -> Bilingual | None:
    """Whether `value` is written in `script` only: its letters (Unicode names them by the
    script, "ARABIC-INDIC DIGIT" not), and the name punctuation above."""
    prefix, categories, problem = _SCRIPTS[script]
    for char in value:
        if char in _NAME_PUNCTUATION or unicodedata.category(char) == "Cf":
            continue
        if unicodedata.category(char) not in categories:
            return problem
        if not unicodedata.name(char, "").startswith(prefix):
            return problem
    return None


def _nationality_problem(value: str) -> Bilingual | None:
    if not _THREE_LETTERS.fullmatch(value):
        return Bilingual(
            "must be a three-letter country code", "يجب أن يكون رمز دولة من ثلاثة أحرف"
        )
    if value not in NATIONALITY_CODES:
        return Bilingual("not a known country code", "ليس رمز دولة معروفًا")
    return None


def _ascii_upper(value: str) -> str:
    # Only ASCII is upper-cased: "ﬁ" or "ı" must not turn into Latin letters and pass.
    return value.upper() if value.isascii() else value


def check_field(
    kind: str,
    raw: str,
    *,
    today: date,
    max_length: int = 200,
    options: Collection[str] = (),
    past_only: bool = False,
    script: str = "",
) -> tuple[str, Bilingual | None]:
    """(normalized value, problem) for one typed field of the kind named in FIELD_KINDS.

    An empty field's problem is "required"; whether that matters is the caller's business.
    A text's `script` ("latin" or "arabic", "" for any) is the only one its letters may be in.
    An unknown `kind` or `script` is a programming or catalog error, raised as ValueError.
    """
    if kind not in FIELD_KINDS:
        raise ValueError(f"unknown field kind {kind!r}")
    if script and script not in _SCRIPTS:
        raise ValueError(f"unknown script {script!r}")
    if kind == "text":
        value, problem = clean_text(raw, max_length=max_length)
        if problem or not visible_length(value):
            return value, problem or REQUIRED
        return value, _script_problem(value, script) if script else None
    value = raw.strip()
    if not value:
        return "", REQUIRED
    if foreign_digits(value):
        return value, FOREIGN_DIGITS
    if kind in _TEN_DIGIT_KINDS:
        first_digits, luhn = _TEN_DIGIT_KINDS[kind]
        return value, _ten_digit_problem(value, first_digits=first_digits, luhn=luhn)
    if kind == "passport_number":
        value = _ascii_upper(value)
        return value, _passport_problem(value)
    if kind == "date":
        return value, _date_problem(value, today=today, past_only=past_only)
    if kind == "choice":
        return value, None if value in options else NOT_AN_OPTION
    value = _ascii_upper(value)
    return value, _nationality_problem(value)
