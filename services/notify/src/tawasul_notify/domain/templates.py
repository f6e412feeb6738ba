"""Message texts: one Jinja template file per kind × channel × locale (SPEC §6 item 10).

The files are in tawasul_notify/templates/, named "{kind}.{channel}.{locale}.j2", with an
e-mail's subject in "{kind}.email.{locale}.subject.j2". Templates have these filters:

- `date`: a date (or an aware datetime, taken in Riyadh) in Hijri and Gregorian together;
- `time`: an aware datetime's Riyadh time, HH:MM;
- `digits`: a number in the locale's digits (Arabic-Indic in Arabic, as the dates are);
- `ltr`: a left-to-right token (request number, code, employee id, department code) in
  LRI … PDI, so that an Arabic text keeps its characters in order;
- `isolate`: free text written by people (note, reason, missing items) in RLI … PDI when
  its right-to-left letters outnumber its left-to-right ones, else in LRI … PDI, so that it
  neither takes nor gives direction to the text around it and reads in its own (in English
  only text with right-to-left letters: the marks would make an SMS UCS-2). Not FSI: that
  takes the direction of the first letter, and an Arabic note that starts with a Latin word
  ("PDF يرجى إرفاق…") would read left to right, its words in the wrong order;

and the global `rlm`, which starts an Arabic line that begins with free text: text inside an
isolate does not count when a line's direction is decided. Blocks are trimmed: a line that
holds only a block tag leaves nothing behind, and `+%}` keeps the newline after a tag that
ends a line of text.

A beneficiary is told in the words of the portal they follow their request in: Absher
(citizens and residents) or, for an establishment, Muqeem, which says "returned to applicant"
where Absher says "needs additional action" (SPEC §2). The kinds whose words differ take the
value `establishment` (PORTAL_WORDS).

An SMS must fit MAX_SMS_PARTS parts: when it does not, its free text is cut (ending in "…",
in English "...": "…" would make it UCS-2) until it does; request numbers, dates and codes
are never cut. E-mail and in-app texts are not cut.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import partial
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from tawasul_calendar import RIYADH, format_date
from tawasul_calendar import Locale as CalendarLocale

from tawasul_notify.domain.model import Channel, Locale

TEMPLATE_DIR = Path(__file__).parent.parent / "templates"
MAX_SMS_PARTS = 3

LRI = "\u2066"  # LEFT-TO-RIGHT ISOLATE
RLI = "\u2067"  # RIGHT-TO-LEFT ISOLATE
PDI = "\u2069"  # POP DIRECTIONAL ISOLATE
RLM = "\u200f"  # RIGHT-TO-LEFT MARK
ELLIPSIS = "…"
# Where an English SMS's free text is cut: "…" is no GSM-7 character.
DOTS = "..."
# Letters of the scripts written right to left (Hebrew to NKo, and Arabic's presentation forms).
_RIGHT_TO_LEFT = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")

# Embeddings, overrides and isolates inside a value could leave the text's isolates
# unbalanced or reorder the words around them, so values lose them.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

# GSM 03.38: the basic set (the escape code aside) takes one septet, the printable
# characters of the extension table two (escape + code).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€")
# Units (septets or UTF-16 code units) in a single-part message, and in each part of a
# multipart one (the rest carries the concatenation header).
_GSM_SINGLE, _GSM_PART = 160, 153
_UCS2_SINGLE, _UCS2_PART = 70, 67


class Kind(StrEnum):
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    NEEDS_MORE_INFO = "needs_more_info"
    # The beneficiary's answer is back with review, and when the office now expects to answer.
    ANSWER_RECEIVED = "answer_received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    # An accepted request's transaction carried out by its department.
    PROCESSED = "processed"
    TRANSFERRED = "transferred"
    CANCELLED = "cancelled"
    # Cancelled by the office, not the beneficiary: the registry no longer has the person it
    # is about on the account's record, and a request for them was filed from another account.
    CANCELLED_OFF_RECORD = "cancelled_off_record"
    CLOSED = "closed"
    # An answer given by its deadline reached review after it had closed the request.
    REOPENED = "reopened"
    # A cancellation that reached review after its outcome (accepted, rejected, closed).
    CANCEL_TOO_LATE = "cancel_too_late"
    FOLLOWED_UP = "followed_up"
    # The beneficiary's appeal of a rejection is back with review, for another reviewer.
    APPEAL_RECEIVED = "appeal_received"
    # A reviewer's message to the beneficiary; the request's status has not changed.
    MESSAGE = "message"
    ONE_TIME_CODE = "one_time_code"
    # Half or three quarters of a request's time used: to whoever holds it, or, held by no
    # one, to its department's supervisors.
    SLA_WARNING = "sla_warning"
    SLA_BREACH = "sla_breach"


@dataclass(frozen=True)
class Rendered:
    subject: str  # e-mail only, else ""
    body: str
    encoding: str  # SMS only: "gsm-7" or "ucs-2"; else ""
    parts: int  # SMS only: the number of SMS parts; else 0


class UnknownTemplate(LookupError):
    """A kind that is not sent on that channel."""


class TemplateValuesError(ValueError):
    """Values that a template cannot be rendered with."""


# The values each kind is rendered with; a missing or unexpected name is refused, so that a
# caller's typo fails loudly instead of vanishing from the text.
_VARIABLES: dict[Kind, frozenset[str]] = {
    Kind.SUBMITTED: frozenset({"number", "due"}),
    Kind.UNDER_REVIEW: frozenset({"number"}),
    Kind.NEEDS_MORE_INFO: frozenset({"number", "missing", "respond_by", "note", "establishment"}),
    Kind.ANSWER_RECEIVED: frozenset({"number", "due"}),
    # `reason`: the catalog's, when the reviewer named one (an acceptance may, need not).
    Kind.ACCEPTED: frozenset({"number", "reason", "note"}),
    Kind.PROCESSED: frozenset({"number", "note"}),
    # `appeal`: whether one may still be made (not against an appeal's own decision);
    # `appeal_until`: the last day it may be, when the event says (else "within the time
    # allowed").
    Kind.REJECTED: frozenset({"number", "reason", "note", "appeal", "appeal_until"}),
    Kind.TRANSFERRED: frozenset({"number"}),
    Kind.CANCELLED: frozenset({"number"}),
    # `establishment`: the person is a worker the establishment no longer sponsors.
    Kind.CANCELLED_OFF_RECORD: frozenset({"number", "establishment"}),
    Kind.CLOSED: frozenset({"number", "reason", "note"}),
    Kind.REOPENED: frozenset({"number", "due"}),
    # `office`: the cancellation was the office's (the person off the account's record), not
    # the beneficiary's own; `cancelled_told`: notify told them the request was cancelled, and
    # asks them to disregard that (not a message they never had); `appeal_until`: as for
    # REJECTED, the rejection's (the restatement does not carry it: handlers.take).
    Kind.CANCEL_TOO_LATE: frozenset(
        {"number", "outcome", "appeal", "appeal_until", "office", "cancelled_told"}
    ),
    Kind.FOLLOWED_UP: frozenset({"number", "count"}),
    Kind.APPEAL_RECEIVED: frozenset({"number", "due"}),
    Kind.MESSAGE: frozenset({"number", "note"}),
    Kind.ONE_TIME_CODE: frozenset({"code", "minutes"}),
    Kind.SLA_WARNING: frozenset({"number", "department", "due_at", "percent", "assignee"}),
    Kind.SLA_BREACH: frozenset({"number", "department", "due_at", "assignee"}),
}
# Whether an establishment filed the request: its messages then say it in Muqeem's words.
PORTAL_WORDS = "establishment"
# Text written by people: isolated, whitespace collapsed, and what an SMS may cut.
_FREE_TEXT = frozenset({"note", "reason", "missing"})

_SAMPLE_NUMBER = "TW482913578"
_SAMPLE_NOTE = "يرجى إرفاقها بصيغة PDF."
_SAMPLES: dict[Kind, dict[str, object]] = {
    Kind.SUBMITTED: {"number": _SAMPLE_NUMBER, "due": date(2026, 12, 2)},
    Kind.UNDER_REVIEW: {"number": _SAMPLE_NUMBER},
    Kind.NEEDS_MORE_INFO: {
        "number": _SAMPLE_NUMBER,
        "missing": ["صورة جواز السفر", "خطاب جهة العمل"],
        "respond_by": date(2026, 12, 9),
        "note": _SAMPLE_NOTE,
        "establishment": False,
    },
    Kind.ANSWER_RECEIVED: {"number": _SAMPLE_NUMBER, "due": date(2026, 12, 14)},
    Kind.ACCEPTED: {
        "number": _SAMPLE_NUMBER,
        "reason": "تم تصحيح البيانات في السجل",
        "note": "تم تمديد التأشيرة لمدة 90 يومًا.",
    },
    Kind.PROCESSED: {
        "number": _SAMPLE_NUMBER,
        "note": "جواز السفر جاهز للاستلام من مكتب الجوازات في الرياض.",
    },
    Kind.REJECTED: {
        "number": _SAMPLE_NUMBER,
        "reason": "The attachments are unclear or unreadable",
        "note": _SAMPLE_NOTE,
        "appeal": True,
        "appeal_until": date(2026, 12, 16),
    },
    Kind.TRANSFERRED: {"number": _SAMPLE_NUMBER},
    Kind.CANCELLED: {"number": _SAMPLE_NUMBER},
    Kind.CANCELLED_OFF_RECORD: {"number": _SAMPLE_NUMBER, "establishment": False},
    Kind.CLOSED: {
        "number": _SAMPLE_NUMBER,
        "reason": "لم تصل المعلومات المطلوبة في الموعد المحدد",
        "note": "",
    },
    Kind.REOPENED: {"number": _SAMPLE_NUMBER, "due": date(2026, 12, 14)},
    Kind.CANCEL_TOO_LATE: {
        "number": _SAMPLE_NUMBER,
        "outcome": "rejected",
        "appeal": True,
        "appeal_until": date(2026, 12, 16),
        "office": False,
        "cancelled_told": True,
    },
    Kind.FOLLOWED_UP: {"number": _SAMPLE_NUMBER, "count": 2},
    Kind.APPEAL_RECEIVED: {"number": _SAMPLE_NUMBER, "due": date(2026, 12, 14)},
    Kind.MESSAGE: {
        "number": _SAMPLE_NUMBER,
        "note": "يرجى مراجعة مكتب الجوازات في الرياض يوم الأحد ومعك أصل جواز السفر.",
    },
    Kind.ONE_TIME_CODE: {"code": "731904", "minutes": 5},
    Kind.SLA_WARNING: {
        "number": _SAMPLE_NUMBER,
        "department": "خدمات المقيمين داخل المملكة",
        "due_at": datetime(2026, 12, 2, 11, 30, tzinfo=UTC),
        "percent": 75,
        "assignee": "E1001",
    },
    Kind.SLA_BREACH: {
        "number": _SAMPLE_NUMBER,
        "department": "خدمات المقيمين داخل المملكة",
        "due_at": datetime(2026, 12, 2, 11, 30, tzinfo=UTC),
        "assignee": "E1001",
    },
}


def channels_for(kind: Kind) -> tuple[Channel, ...]:
    if kind is Kind.ONE_TIME_CODE:
        # Said once, to the registered mobile only.
        return (Channel.SMS,)
    if kind in (Kind.SLA_WARNING, Kind.SLA_BREACH):
        # Staff work at their desks; there is no mobile to send to.
        return (Channel.EMAIL, Channel.INAPP)
    return (Channel.SMS, Channel.EMAIL, Channel.INAPP)


def variables(kind: Kind) -> frozenset[str]:
    """The names the kind's templates take: render refuses others."""
    return _VARIABLES[kind]


def sample_values(kind: Kind) -> dict[str, object]:
    """Realistic values for `kind`, for previews and golden tests (a fresh copy each time)."""
    return {
        name: list(value) if isinstance(value, list) else value
        for name, value in _SAMPLES[kind].items()
    }


def render(kind: Kind, channel: Channel, locale: Locale, values: Mapping[str, object]) -> Rendered:
    """The message of `kind` on `channel` in `locale`.

    UnknownTemplate when `kind` is not sent on `channel`; TemplateValuesError when a value
    is missing, unexpected or of the wrong type, or when an SMS would not fit even with each
    free text cut to "…".
    """
    if channel not in channels_for(kind):
        raise UnknownTemplate(f"{kind} is not sent by {channel}")
    expected = _VARIABLES[kind]
    missing, unexpected = expected - values.keys(), values.keys() - expected
    if missing or unexpected:
        problems = [f"missing {name!r}" for name in sorted(missing)]
        problems += [f"unexpected {name!r}" for name in sorted(unexpected)]
        raise TemplateValuesError(f"{kind} values: {', '.join(problems)}")
    cleaned = {
        name: _free_text(name, value) if name in _FREE_TEXT else value
        for name, value in values.items()
    }
    environment = _ENVIRONMENTS[locale]
    stem = f"{kind}.{channel}.{locale}"
    body = environment.get_template(f"{stem}.j2")
    if channel is Channel.SMS:
        return _fit_sms(body, cleaned, DOTS if locale is Locale.EN else ELLIPSIS)
    subject = (
        _text(environment.get_template(f"{stem}.subject.j2"), cleaned)
        if channel is Channel.EMAIL
        else ""
    )
    return Rendered(subject=subject, body=_text(body, cleaned), encoding="", parts=0)


def sms_parts(text: str) -> tuple[str, int]:
    """The encoding an SMS needs ("gsm-7" or "ucs-2") and how many parts it takes.

    A character never straddles two parts (a gateway does not split an escape sequence or a
    surrogate pair), so a multipart message may need a part more than its length suggests.
    """
    if all(char in _GSM_BASIC or char in _GSM_EXTENSION for char in text):
        encoding, single, per_part = "gsm-7", _GSM_SINGLE, _GSM_PART
        units = [2 if char in _GSM_EXTENSION else 1 for char in text]
    else:
        encoding, single, per_part = "ucs-2", _UCS2_SINGLE, _UCS2_PART
        units = [2 if ord(char) > 0xFFFF else 1 for char in text]
    if sum(units) <= single:
        return encoding, 1
    parts, used = 1, 0
    for size in units:
        if used + size > per_part:
            parts, used = parts + 1, 0
        used += size
    return encoding, parts


def _fit_sms(template: Template, values: dict[str, object], mark: str) -> Rendered:
    """The SMS with its free text cut (ending in `mark`) to the longest length at which it
    fits."""
    fit = _sms(template, values)
    if fit.parts <= MAX_SMS_PARTS:
        return fit
    fit = _sms(template, _shortened(values, 1, mark))
    if fit.parts > MAX_SMS_PARTS:
        raise TemplateValuesError(
            f"{template.name} does not fit {MAX_SMS_PARTS} SMS parts even with its free text cut"
        )
    # Binary search between a limit that fits and one that does not (the full text).
    fits, too_long = 1, max(_length(values[name]) for name in _FREE_TEXT & values.keys())
    while too_long - fits > 1:
        limit = (fits + too_long) // 2
        candidate = _sms(template, _shortened(values, limit, mark))
        if candidate.parts <= MAX_SMS_PARTS:
            fits, fit = limit, candidate
        else:
            too_long = limit
    return fit


def _sms(template: Template, values: Mapping[str, object]) -> Rendered:
    body = _text(template, values)
    encoding, parts = sms_parts(body)
    return Rendered(subject="", body=body, encoding=encoding, parts=parts)


def _text(template: Template, values: Mapping[str, object]) -> str:
    return template.render(values).strip()


def _shortened(values: dict[str, object], limit: int, mark: str) -> dict[str, object]:
    """Each free-text value cut to `limit` characters (a list: its items together)."""
    shortened = dict(values)
    for name in _FREE_TEXT & values.keys():
        value = values[name]
        if isinstance(value, str):
            shortened[name] = _cut(value, limit, mark)
        elif isinstance(value, list):
            shortened[name] = _cut_items(value, limit, mark)
    return shortened


def _cut(text: str, limit: int, mark: str) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - len(mark), 0)].rstrip() + mark


def _cut_items(items: list[str], limit: int, mark: str) -> list[str]:
    """The items that fit `limit`, the first one that does not cut; the rest are dropped."""
    kept: list[str] = []
    room = limit
    for item in items:
        if len(item) > room:
            kept.append(_cut(item, room, mark))
            break
        kept.append(item)
        room -= len(item)
    return kept


def _length(value: object) -> int:
    if isinstance(value, list):
        return sum(len(item) for item in value)
    return len(str(value))


def _free_text(name: str, value: object) -> str | list[str]:
    if isinstance(value, str):
        return _plain(value)
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        # A blank item would show as an empty line or a stray separator.
        return [text for text in map(_plain, value) if text]
    raise TemplateValuesError(f"{name} must be text or a list of texts, not {value!r}")


def _plain(text: str) -> str:
    return " ".join(_BIDI_CONTROLS.sub("", text).split())


def _ltr(value: object) -> str:
    return f"{LRI}{_plain(str(value))}{PDI}"


def _isolate(value: object, *, locale: Locale) -> str:
    text = _plain(str(value))
    if not text:
        return ""
    # Left-to-right text in an English message has nothing to keep apart from, and the marks
    # would make a GSM-7 SMS UCS-2: 67 characters a part instead of 153.
    if locale is Locale.EN and not _RIGHT_TO_LEFT.search(text):
        return text
    return f"{_opener(text)}{text}{PDI}"


def _opener(text: str) -> str:
    """The isolate that reads `text` in the direction of most of its letters."""
    kinds = [unicodedata.bidirectional(char) for char in text]
    right_to_left = sum(kind in ("R", "AL") for kind in kinds)
    return RLI if right_to_left > kinds.count("L") else LRI


def _digits(value: object, *, locale: Locale) -> str:
    text = str(value)
    return text.translate(_ARABIC_INDIC) if locale is Locale.AR else text


def _date(value: object, *, locale: Locale) -> str:
    if isinstance(value, datetime):
        day = _riyadh(value).date()
    elif isinstance(value, date):
        day = value
    else:
        raise TemplateValuesError(f"expected a date, not {value!r}")
    return format_date(day, CalendarLocale(locale.value))


def _time(value: object, *, locale: Locale) -> str:
    if not isinstance(value, datetime):
        raise TemplateValuesError(f"expected a datetime, not {value!r}")
    return _digits(f"{_riyadh(value):%H:%M}", locale=locale)


def _riyadh(instant: datetime) -> datetime:
    if instant.utcoffset() is None:
        raise TemplateValuesError(f"{instant.isoformat()} has no time zone")
    return instant.astimezone(RIYADH)


def _environment(locale: Locale) -> Environment:
    # One environment per locale, so that `date`, `time` and `digits` know the language
    # without a reserved name among the caller's values.
    environment = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        undefined=StrictUndefined,
        autoescape=False,  # plain texts, not HTML
        keep_trailing_newline=False,
        # Package data: it does not change while the process runs, so no stat per render.
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        date=partial(_date, locale=locale),
        time=partial(_time, locale=locale),
        digits=partial(_digits, locale=locale),
        ltr=_ltr,
        isolate=partial(_isolate, locale=locale),
    )
    environment.globals["rlm"] = RLM
    return environment


_ENVIRONMENTS = {locale: _environment(locale) for locale in Locale}
