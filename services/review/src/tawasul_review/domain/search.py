"""Searching requests as reviewers really type: pure rules, no I/O.

`normalise` is the one function applied both to what is indexed (names, description, public
messages) and to what is searched for, so that "أحمد", "احمد" and "إحمد" meet, as do
"فاطمة"/"فاطمه", "مصطفى"/"مصطفي", "عبد الله"/"عبدالله", "محـــمد"/"مُحَمَّد"/"محمد",
"٠٥٥١٢٣٤٥٦٧"/"0551234567", "Ahmed"/"AHMED", "Yılmaz"/"YILMAZ"/"yilmaz", and a word with
an invisible character pasted in it (a soft hyphen, a zero-width joiner) and without. A word
of a query is found as a substring of that text, except one holding a digit: `tokens` of the
text are what `whole` terms match.

`classify` tells what a query is (a request number, an ID, a mobile, or text), and
`number_candidates` the valid request numbers one typing mistake away from a number whose
check digit is missing or wrong (tawasul_platform.request_numbers, whose Damm check intake
issues numbers with: every single wrong digit and every swap of neighbours is caught, so the
candidates are few).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tawasul_platform.request_numbers import digits_typed, near_misses, parse_request_number

from tawasul_review.domain.model import HistoryEntry, State

# Alef with hamza above or below, madda, wasla: a bare alef.
_FOLD = str.maketrans(
    {
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ٲ": "ا",
        "ٳ": "ا",
        # Ta marbuta is written, and typed, as ha at a word's end.
        "ة": "ه",
        # Alef maqsura and the Persian/Urdu ya (the Urdu final ya too) are typed as ya.
        "ى": "ي",
        "ی": "ي",
        "ې": "ي",
        "ے": "ي",
        "ۓ": "ي",
        # Hamza on a seat: the seat.
        "ؤ": "و",
        "ئ": "ي",
        # Persian and Urdu kaf, heh and ta marbuta. NFKC leaves ۀ and ۂ composed: folded
        # here, not taken apart by the accents' NFKD below (into ە and ہ, left unfolded).
        "ک": "ك",
        "ہ": "ه",
        "ە": "ه",
        "ھ": "ه",
        "ۃ": "ه",
        "ۀ": "ه",
        "ۂ": "ه",
        # Tatweel (kashida) only stretches a word.
        "ـ": None,
        # Arabic-Indic and Persian digits.
        **{chr(0x0660 + d): str(d) for d in range(10)},
        **{chr(0x06F0 + d): str(d) for d in range(10)},
    }
)
# Latin letters with no accent to lose (a stroke, a ligature), lowercase: as English spells
# them, so "Yılmaz" meets "YILMAZ" and "Łukasz" "Lukasz". Folded after the accents and the
# case are gone, so that "Ø" and "ǿ" (an ø with an accent) are folded too.
_LATIN = str.maketrans(
    {"ı": "i", "ł": "l", "ø": "o", "đ": "d", "ð": "d", "æ": "ae", "œ": "oe", "þ": "th"}
)
# Harakat, tanween, shadda, sukun, superscript alef and the Quranic marks.
_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
# "عبد الله", "عبد الرحمن": the servant-of names are typed with and without the space.
_ABD = re.compile(r"(?<!\S)(عبد|ابو)\s+(?=\S)")
# Unicode's format characters (category Cf, as this interpreter's unicodedata has them; a
# test holds the two equal): one regular expression, where asking each character its category
# took a quarter of normalise's time on every text review indexes.
_FORMAT = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)
_NOT_WORD = re.compile(r"[^\w]+")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """The searchable form of a text: one spelling per word, lowercase, single-spaced.

    Used when indexing and when querying, never one without the other.
    """
    # Format characters (soft hyphen, zero-width joiners and spaces, direction marks) are
    # invisible inside a word pasted from a document: dropped, never a break between words.
    text = _FORMAT.sub("", text)
    text = unicodedata.normalize("NFKC", text)
    text = _MARKS.sub("", text.translate(_FOLD))
    # Latin letters lose their accents ("José" = "jose") and case.
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = _NOT_WORD.sub(" ", text.casefold().translate(_LATIN)).replace("_", " ")
    return _ABD.sub(r"\1", _SPACES.sub(" ", text).strip())


def searchable(*texts: str) -> str:
    """What is indexed of a request: its texts normalised, joined by a space."""
    return " ".join(n for n in (normalise(t) for t in texts) if n)


# What the beneficiary and the office say to each other in the open: searchable. Internal
# notes and the system's own entries are not.
PUBLIC_ACTIONS = frozenset(
    {"message", "information_requested", "accept", "reject", "answered", "followed_up"}
)


def public_texts(entries: list[HistoryEntry]) -> list[str]:
    """The public messages among history entries, in their order."""
    return [e.note for e in entries if e.action in PUBLIC_ACTIONS and not e.internal and e.note]


# --- what a query is ----------------------------------------------------------------------

MIN_TERM = 3
MAX_TERMS = 8
MAX_QUERY = 200

_PERSON = re.compile(r"[1-4][0-9]{9}")
_MOBILE = re.compile(r"(?:\+?966|00966|0)?(5[0-9]{8})")


class Kind(StrEnum):
    NUMBER = "number"
    PERSON_ID = "person_id"
    MOBILE = "mobile"
    TEXT = "text"


def _compact(raw: str) -> str:
    # normalise leaves words and single spaces: the spaces are what people group digits by.
    return normalise(raw).replace(" ", "").upper() if raw else ""


def request_number(raw: str) -> str | None:
    """The 8 or 9 digits of what looks like a request number ("TW" optional), or None."""
    return digits_typed(_compact(raw))


def number_candidates(digits: str) -> tuple[str, list[str]]:
    """The exact number typed (empty when its check fails) and the valid numbers one typing
    mistake away: a missing check digit, one wrong digit, or two neighbours swapped."""
    exact = parse_request_number(digits)
    return (exact, []) if exact else ("", near_misses(digits))


def person_id(raw: str) -> str | None:
    """A national ID (1…), iqama (2…), border (3…) or establishment (4…) number, or None."""
    text = _compact(raw)
    return text if _PERSON.fullmatch(text) else None


def mobile_key(raw: str) -> str:
    """The nine digits every spelling of a Saudi mobile shares ("5XXXXXXXX"); "" for others.

    "0551234567", "+966551234567", "00966551234567" and "٠٥٥١٢٣٤٥٦٧" have one key.
    """
    match = _MOBILE.fullmatch(_compact(raw))
    return match.group(1) if match else ""


def terms(raw: str) -> list[str]:
    """The words of a text query worth searching for: normalised, at least MIN_TERM long."""
    words = [w for w in normalise(raw).split(" ") if len(w) >= MIN_TERM]
    return list(dict.fromkeys(words))[:MAX_TERMS]


# Numbers (a passport, receipt or iqama number typed in the description) are matched whole:
# digits have a thousand trigrams between them, so a number's trigrams are in thousands of
# rows and the trigram index hands them all over to be rechecked (issue 15, P8).
_DIGITS = re.compile("[0-9]+")


def whole(term: str) -> bool:
    """Whether a query term is matched as a whole token (it holds a digit) rather than as a
    substring of the text: "1234567" finds "A1234567" and "رقم 1234567", never "91234567"."""
    return _DIGITS.search(term) is not None


def tokens(normalised: str) -> list[str]:
    """What `whole` terms are matched against in a normalised text: each word holding a digit
    and each run of digits in it, MIN_TERM long or more, once each."""
    found: dict[str, None] = {}
    for word in normalised.split(" "):
        if whole(word):
            found.update(dict.fromkeys([word, *_DIGITS.findall(word)]))
    return [t for t in found if len(t) >= MIN_TERM]


def classify(raw: str) -> Kind:
    """What a query most likely is, in the order a number is least ambiguous."""
    if request_number(raw) is not None and not _PERSON.fullmatch(_compact(raw)):
        return Kind.NUMBER
    if person_id(raw) is not None:
        return Kind.PERSON_ID
    if mobile_key(raw):
        return Kind.MOBILE
    return Kind.TEXT


# --- filters and pages ----------------------------------------------------------------------


class SlaState(StrEnum):
    """Where an open item stands against its SLA: due after the next working day, within it,
    or past due."""

    ON_TRACK = "on_track"
    DUE_SOON = "due_soon"
    BREACHED = "breached"


@dataclass(frozen=True)
class SearchPosition:
    """Where a page of results ends: newest submissions first, then by number."""

    submitted_at: datetime
    request_number: str


@dataclass(frozen=True)
class Criteria:
    """What a search asks the store for; every part narrows, none widens.

    `departments` is never empty: the caller's departments, or the one they named of theirs.
    """

    departments: frozenset[str]
    numbers: tuple[str, ...] = ()
    person_id: str = ""
    mobile_key: str = ""
    terms: tuple[str, ...] = ()
    sub_service_code: str = ""
    states: tuple[State, ...] = ()
    submitted_from: datetime | None = None
    submitted_before: datetime | None = None
    # Open items due after, and at or before, these instants (the SLA filter).
    due_after: datetime | None = None
    due_by: datetime | None = None
