"""Message templates: golden texts, bidirectional isolation, SMS lengths and cutting.

golden/ holds the exact render of sample_values(kind) for every kind × channel × locale
("{kind}.{channel}.{locale}.txt", e-mail subjects in "….subject.txt"), and in
golden/establishment/ those of the kinds said in Muqeem's words to an establishment, UTF-8
with the isolate characters written literally. After changing a template, rewrite them and read
the diff before committing it:

    TAWASUL_UPDATE_GOLDEN=1 uv run pytest services/notify/tests/unit/test_templates.py -q
"""

from __future__ import annotations

import os
import re
import unicodedata
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from jinja2 import Environment, meta
from tawasul_calendar import Locale as CalendarLocale
from tawasul_calendar import format_date
from tawasul_notify.domain.model import Channel, Locale
from tawasul_notify.domain.templates import (
    DOTS,
    ELLIPSIS,
    LRI,
    MAX_SMS_PARTS,
    PDI,
    PORTAL_WORDS,
    RLI,
    TEMPLATE_DIR,
    Kind,
    Rendered,
    TemplateValuesError,
    UnknownTemplate,
    channels_for,
    render,
    sample_values,
    sms_parts,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("TAWASUL_UPDATE_GOLDEN") == "1"
RIGHT_TO_LEFT = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
NUMBER = "TW482913578"
FREE_TEXT = ("note", "reason", "missing")
# The template vocabulary besides each kind's values.
TEMPLATE_GLOBALS = {"rlm"}
TEMPLATE_FILTERS = ("date", "time", "digits", "ltr", "isolate")

TEMPLATES = [
    (kind, channel, locale) for kind in Kind for channel in channels_for(kind) for locale in Locale
]
# The templates whose words depend on the portal the beneficiary follows the request in.
IN_PORTAL_WORDS = [case for case in TEMPLATES if PORTAL_WORDS in sample_values(case[0])]
WITH_FREE_TEXT = [
    (kind, name, locale)
    for kind in Kind
    for name in FREE_TEXT
    if name in sample_values(kind)
    for locale in Locale
]
# Realistic long texts: what a reviewer pastes into the note box, 2,000 characters.
SENTENCE = (
    "يرجى إرفاق صورة واضحة من صفحة البيانات في جواز السفر ومن هوية المقيم بصيغة PDF، "
    "مع خطاب من جهة العمل يوضح المهنة الحالية. "
)
LONG_TEXT = (SENTENCE * 30)[:2000]
LONG_MISSING = [f"المستند رقم {n}: صورة واضحة من الصفحة {n} من جواز السفر" for n in range(1, 50)]


def template_id(case: tuple[Kind, Channel, Locale]) -> str:
    kind, channel, locale = case
    return f"{kind}.{channel}.{locale}"


def isolates(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The text outside isolates, and each isolate's opener and content.

    Fails on an unbalanced or nested isolate, and on any embedding, override or first-strong
    isolate (FSI: a text's first letter is not its direction).
    """
    assert not re.search("[\u202a-\u202e\u2068]", text), f"embedding, override or FSI in {text!r}"
    outside: list[str] = []
    spans: list[tuple[str, str]] = []
    opener, content = "", ""
    for char in text:
        if char in (LRI, RLI):
            assert not opener, f"nested isolate in {text!r}"
            opener, content = char, ""
        elif char == PDI:
            assert opener, f"PDI without its isolate in {text!r}"
            spans.append((opener, content))
            opener = ""
        elif opener:
            content += char
        else:
            outside.append(char)
    assert not opener, f"isolate left open in {text!r}"
    return "".join(outside), spans


def isolate_of(text: str) -> str:
    """The isolate free text belongs in: right to left when most of its letters are Arabic,
    whatever script it starts with."""
    return RLI if len(RIGHT_TO_LEFT.findall(text)) > len(re.findall("[A-Za-z]", text)) else LRI


def texts(rendered: Rendered) -> list[str]:
    return [text for text in (rendered.subject, rendered.body) if text]


def free_texts(values: dict[str, object]) -> list[str]:
    found: list[str] = []
    for name in FREE_TEXT:
        value = values.get(name)
        if isinstance(value, str) and value:
            found.append(value)
        elif isinstance(value, list):
            found.extend(str(item) for item in value)
    return found


def golden_files(
    kind: Kind, channel: Channel, locale: Locale, *, establishment: bool = False
) -> dict[str, str]:
    """The renders of the samples; to an establishment (in Muqeem's words), in
    "establishment/" (apart: the e2e tier previews every file of golden/ itself)."""
    values, stem = sample_values(kind), f"{kind}.{channel}.{locale}"
    if establishment:
        values[PORTAL_WORDS], stem = True, f"establishment/{stem}"
    rendered = render(kind, channel, locale, values)
    files = {f"{stem}.txt": rendered.body}
    if channel is Channel.EMAIL:
        files[f"{stem}.subject.txt"] = rendered.subject
    return files


def check_golden(files: dict[str, str]) -> None:
    for name, text in files.items():
        path = GOLDEN / name
        if UPDATE_GOLDEN:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="")
        assert path.read_text(encoding="utf-8") == text, name


@pytest.mark.parametrize("case", TEMPLATES, ids=template_id)
def test_renders_of_sample_values_match_the_golden_texts(
    case: tuple[Kind, Channel, Locale],
) -> None:
    check_golden(golden_files(*case))


@pytest.mark.parametrize("case", IN_PORTAL_WORDS, ids=template_id)
def test_renders_to_an_establishment_match_the_golden_texts(
    case: tuple[Kind, Channel, Locale],
) -> None:
    check_golden(golden_files(*case, establishment=True))


def test_every_golden_file_belongs_to_a_template() -> None:
    expected = {name for case in TEMPLATES for name in golden_files(*case)}
    expected |= {
        name for case in IN_PORTAL_WORDS for name in golden_files(*case, establishment=True)
    }
    found = {path.relative_to(GOLDEN).as_posix() for path in GOLDEN.rglob("*") if path.is_file()}
    assert found == expected


# Absher's words for a request waiting on its beneficiary, and Muqeem's (SPEC §2: "returned to
# applicant", معاد لمقدم الطلب), in each channel's phrasing; and for one the office cancelled,
# the person off the account's record, and the worker off the establishment's sponsorship.
ABSHER_WORDS = {
    Kind.NEEDS_MORE_INFO: {
        Locale.AR: "بحاجة لإجراءات إضافية",
        Locale.EN: "needs additional action",
    },
    Kind.CANCELLED_OFF_RECORD: {
        Locale.AR: "مسجلًا على حسابك",
        Locale.EN: "no longer on your record",
    },
}
MUQEEM_WORDS = {
    Kind.NEEDS_MORE_INFO: {Locale.AR: "أُعيد طلبك رقم", Locale.EN: "returned to you"},
    Kind.CANCELLED_OFF_RECORD: {
        Locale.AR: "على كفالة منشأتك",
        Locale.EN: "no longer sponsored by your establishment",
    },
}


@pytest.mark.parametrize("case", IN_PORTAL_WORDS, ids=template_id)
def test_an_establishment_is_told_in_muqeems_words_and_everyone_else_in_abshers(
    case: tuple[Kind, Channel, Locale],
) -> None:
    kind, channel, locale = case
    for establishment, said, unsaid in (
        (True, MUQEEM_WORDS[kind], ABSHER_WORDS[kind]),
        (False, ABSHER_WORDS[kind], MUQEEM_WORDS[kind]),
    ):
        values = sample_values(kind) | {PORTAL_WORDS: establishment}
        rendered = render(kind, channel, locale, values)
        for text in texts(rendered):
            assert said[locale] in text, text
            assert unsaid[locale] not in text, text
            _, spans = isolates(text)
            if locale is Locale.AR:
                assert (LRI, NUMBER) in spans
            for line in filter(None, text.split("\n")):
                outside, _ = isolates(line)
                strong = [unicodedata.bidirectional(c) for c in outside]
                first = next((b for b in strong if b in ("L", "R", "AL")), "L")
                assert first in (("R", "AL") if locale is Locale.AR else ("L",)), line
        if channel is Channel.SMS:
            assert rendered.parts <= MAX_SMS_PARTS


def test_every_template_file_is_used_and_every_template_has_its_file() -> None:
    expected = {f"{kind}.{channel}.{locale}.j2" for kind, channel, locale in TEMPLATES}
    expected |= {
        f"{kind}.{channel}.{locale}.subject.j2"
        for kind, channel, locale in TEMPLATES
        if channel is Channel.EMAIL
    }
    assert {path.name for path in TEMPLATE_DIR.iterdir()} == expected


@pytest.mark.parametrize("case", TEMPLATES, ids=template_id)
def test_a_template_uses_exactly_its_kinds_values(case: tuple[Kind, Channel, Locale]) -> None:
    kind, channel, locale = case
    expected = set(sample_values(kind))
    parser = Environment()
    parser.filters.update(dict.fromkeys(TEMPLATE_FILTERS, str))
    body = (TEMPLATE_DIR / f"{kind}.{channel}.{locale}.j2").read_text(encoding="utf-8")
    used = meta.find_undeclared_variables(parser.parse(body)) - TEMPLATE_GLOBALS
    assert used == expected
    if channel is Channel.EMAIL:
        subject_path = TEMPLATE_DIR / f"{kind}.{channel}.{locale}.subject.j2"
        subject = subject_path.read_text(encoding="utf-8")
        assert meta.find_undeclared_variables(parser.parse(subject)) <= expected


def test_channels_by_kind() -> None:
    assert channels_for(Kind.ONE_TIME_CODE) == (Channel.SMS,)
    assert channels_for(Kind.SLA_BREACH) == (Channel.EMAIL, Channel.INAPP)
    assert channels_for(Kind.SLA_WARNING) == (Channel.EMAIL, Channel.INAPP)
    assert channels_for(Kind.REJECTED) == (Channel.SMS, Channel.EMAIL, Channel.INAPP)


@pytest.mark.parametrize("case", TEMPLATES, ids=template_id)
def test_rendered_fields_by_channel(case: tuple[Kind, Channel, Locale]) -> None:
    kind, channel, locale = case
    rendered = render(kind, channel, locale, sample_values(kind))
    assert rendered.body == rendered.body.strip()
    assert "\n\n\n" not in rendered.body
    if channel is Channel.SMS:
        assert rendered.subject == ""
        assert (rendered.encoding, rendered.parts) == sms_parts(rendered.body)
        assert rendered.parts <= MAX_SMS_PARTS
    else:
        assert (rendered.encoding, rendered.parts) == ("", 0)
        assert bool(rendered.subject) is (channel is Channel.EMAIL)
        assert "\n" not in rendered.subject


@pytest.mark.parametrize(
    "case", [case for case in TEMPLATES if case[2] is Locale.AR], ids=template_id
)
def test_arabic_keeps_numbers_codes_and_latin_in_isolates(
    case: tuple[Kind, Channel, Locale],
) -> None:
    kind, channel, locale = case
    values = sample_values(kind)
    names = ("number", "code", "assignee")
    tokens = [str(values[name]) for name in names if name in values]
    for text in texts(render(kind, channel, locale, values)):
        outside, spans = isolates(text)
        assert not re.search("[A-Za-z0-9]", outside), text
        if "number" in values:
            assert (LRI, NUMBER) in spans
        for token in tokens:
            assert token not in outside
            assert all(token not in content for opener, content in spans if opener != LRI)
    assert tokens


@pytest.mark.parametrize("case", TEMPLATES, ids=template_id)
def test_free_text_is_isolated_whole_in_every_render_of_the_samples(
    case: tuple[Kind, Channel, Locale],
) -> None:
    kind, channel, locale = case
    values = sample_values(kind)
    body = render(kind, channel, locale, values).body
    outside, spans = isolates(body)
    for text in free_texts(values):
        if locale is Locale.AR or RIGHT_TO_LEFT.search(text):
            assert (isolate_of(text), text) in spans
            assert text not in outside
        else:
            # Nothing to keep apart from in English; the marks would make an SMS UCS-2.
            assert text in outside
    assert ELLIPSIS not in body


@pytest.mark.parametrize("case", TEMPLATES, ids=template_id)
def test_every_line_reads_in_the_direction_of_its_language(
    case: tuple[Kind, Channel, Locale],
) -> None:
    kind, channel, locale = case
    expected = {"R", "AL"} if locale is Locale.AR else {"L"}
    for text in texts(render(kind, channel, locale, sample_values(kind))):
        for line in filter(None, text.split("\n")):
            outside, _ = isolates(line)
            # A line with no strong character outside isolates reads left to right (UAX #9 P3).
            strong = next(
                (
                    unicodedata.bidirectional(char)
                    for char in outside
                    if unicodedata.bidirectional(char) in ("L", "R", "AL")
                ),
                "L",
            )
            assert strong in expected, line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, ("gsm-7", 1)),
        ("a" * 161, ("gsm-7", 2)),
        ("a" * 306, ("gsm-7", 2)),
        ("a" * 307, ("gsm-7", 3)),
        ("Dear Renée, 100% @ £5!", ("gsm-7", 1)),
        # Extension characters take two septets.
        ("€" * 80, ("gsm-7", 1)),
        ("a" * 159 + "[", ("gsm-7", 2)),
        ("{}[]^~\\|" * 10, ("gsm-7", 1)),
        # An escape sequence is not split across parts.
        ("a" * 152 + "€" + "a" * 152, ("gsm-7", 3)),
        # Outside the GSM set: a curly apostrophe, a lower-case ç, Arabic.
        ("Reviewer’s note", ("ucs-2", 1)),
        ("façade", ("ucs-2", 1)),
        ("ا" * 70, ("ucs-2", 1)),
        ("ا" * 71, ("ucs-2", 2)),
        ("ا" * 134, ("ucs-2", 2)),
        ("ا" * 135, ("ucs-2", 3)),
        # An emoji is two UTF-16 code units.
        ("😀" * 35, ("ucs-2", 1)),
        ("😀" * 35 + "a", ("ucs-2", 2)),
        ("😀" * 33 + "a" * 68, ("ucs-2", 2)),
        ("😀" * 34 + "a" * 67, ("ucs-2", 3)),
        # The isolate characters count too.
        ("a" * 68 + RLI + PDI, ("ucs-2", 1)),
        ("a" * 69 + RLI + PDI, ("ucs-2", 2)),
    ],
)
def test_sms_parts(text: str, expected: tuple[str, int]) -> None:
    assert sms_parts(text) == expected


def test_arabic_is_ucs2() -> None:
    assert sms_parts("تم استلام طلبك.")[0] == "ucs-2"


def long_values(kind: Kind, name: str) -> dict[str, object]:
    values = sample_values(kind)
    values[name] = LONG_MISSING if name == "missing" else LONG_TEXT
    return values


def assert_cut(spans: list[tuple[str, str]], originals: list[str], mark: str) -> None:
    """Each free text is whole or a prefix of its original ending in `mark`; one at least is
    cut."""
    cut = 0
    for _, content in spans:
        if content == NUMBER or content in originals:
            continue
        assert content.endswith(mark), content
        assert any(text.startswith(content.removesuffix(mark)) for text in originals)
        cut += 1
    assert cut


@pytest.mark.parametrize("case", WITH_FREE_TEXT, ids=lambda case: f"{case[0]}.{case[1]}.{case[2]}")
def test_long_free_text_is_cut_to_fit_an_sms_but_not_an_email(
    case: tuple[Kind, str, Locale],
) -> None:
    kind, name, locale = case
    values = long_values(kind, name)
    sms = render(kind, Channel.SMS, locale, values)
    assert sms.parts <= MAX_SMS_PARTS
    assert render(kind, Channel.SMS, locale, values) == sms
    outside, spans = isolates(sms.body)
    assert ELLIPSIS not in outside
    assert NUMBER in sms.body
    if locale is Locale.AR:
        assert (LRI, NUMBER) in spans
    if "respond_by" in values:
        respond_by = values["respond_by"]
        assert isinstance(respond_by, date)
        assert format_date(respond_by, CalendarLocale(locale.value)) in sms.body
    assert_cut(spans, free_texts(values), ELLIPSIS if locale is Locale.AR else DOTS)

    email = render(kind, Channel.EMAIL, locale, values).body
    outside, email_spans = isolates(email)
    for text in free_texts(values):
        assert (isolate_of(text), text) in email_spans or (locale is Locale.EN and text in outside)


@pytest.mark.parametrize("channel", channels_for(Kind.NEEDS_MORE_INFO))
def test_the_arabic_deadline_is_the_same_day_as_the_english_one(channel: Channel) -> None:
    """The beneficiary may answer through the day named ("by" it, in English): Arabic says
    "no later than" that day, not "before" it, which would be the day before."""
    values = sample_values(Kind.NEEDS_MORE_INFO)
    respond_by = values["respond_by"]
    assert isinstance(respond_by, date)
    english = render(Kind.NEEDS_MORE_INFO, channel, Locale.EN, values).body
    assert f"by {format_date(respond_by, CalendarLocale.EN)}" in english
    arabic = render(Kind.NEEDS_MORE_INFO, channel, Locale.AR, values).body
    day = format_date(respond_by, CalendarLocale.AR)
    assert re.search(f"(في موعد أقصاه|حتى) (يوم )?{re.escape(day)}", arabic), arabic
    assert not re.search(f"قبل (يوم )?{re.escape(day)}", arabic), arabic


def test_every_free_text_is_cut_when_all_are_long() -> None:
    values = sample_values(Kind.NEEDS_MORE_INFO) | {"missing": LONG_MISSING, "note": LONG_TEXT}
    sms = render(Kind.NEEDS_MORE_INFO, Channel.SMS, Locale.AR, values)
    assert sms.parts <= MAX_SMS_PARTS
    _, spans = isolates(sms.body)
    *missing, note = [content for opener, content in spans if opener == RLI]
    assert note.endswith(ELLIPSIS)
    assert LONG_TEXT.startswith(note.removesuffix(ELLIPSIS))
    assert missing[-1].endswith(ELLIPSIS)
    assert all(item in LONG_MISSING for item in missing[:-1])


@pytest.mark.parametrize(
    ("locale", "text", "opener"),
    [
        # Arabic that starts with a Latin word or a request number still reads right to left.
        (Locale.AR, "PDF يرجى إرفاق صورة جواز السفر بصيغة واضحة", RLI),
        (Locale.AR, "TW48291357 هو رقم طلبك السابق ويرجى ذكره عند المراجعة", RLI),
        (Locale.EN, "PDF يرجى إرفاق صورة جواز السفر بصيغة واضحة", RLI),
        # English that starts with an Arabic word reads left to right, in either message.
        (Locale.AR, "الجواز expired before the request was filed", LRI),
        (Locale.EN, "الجواز expired before the request was filed", LRI),
    ],
)
def test_free_text_is_isolated_in_the_direction_of_most_of_its_letters(
    locale: Locale, text: str, opener: str
) -> None:
    values = sample_values(Kind.MESSAGE) | {"note": text}
    for channel in channels_for(Kind.MESSAGE):
        rendered = render(Kind.MESSAGE, channel, locale, values)
        _, spans = isolates(rendered.body)
        assert (opener, text) in spans, rendered.body
        if channel is Channel.SMS:
            assert (rendered.encoding, rendered.parts) == sms_parts(rendered.body)


def test_an_english_sms_of_latin_text_stays_gsm7_without_marks() -> None:
    note = "Please bring the original passport to the Riyadh office on Sunday"
    sms = render(Kind.MESSAGE, Channel.SMS, Locale.EN, {"number": NUMBER, "note": note})
    assert note in sms.body
    assert not re.search("[\u2066-\u2069]", sms.body)
    assert (sms.encoding, sms.parts) == ("gsm-7", 1)


def test_free_text_loses_extra_whitespace_and_directional_controls() -> None:
    values = sample_values(Kind.ACCEPTED) | {
        "note": "  تم تمديد\n\nالتأشيرة\u2069 لمدة \u202e90\u202c يومًا.  "
    }
    for channel in channels_for(Kind.ACCEPTED):
        _, spans = isolates(render(Kind.ACCEPTED, channel, Locale.EN, values).body)
        assert (RLI, "تم تمديد التأشيرة لمدة 90 يومًا.") in spans


@pytest.mark.parametrize("locale", Locale)
def test_optional_texts_leave_no_trace_when_empty(locale: Locale) -> None:
    values: dict[Kind, dict[str, object]] = {
        Kind.NEEDS_MORE_INFO: {"missing": [" ", ""], "respond_by": None, "note": ""},
        Kind.ACCEPTED: {"reason": "", "note": ""},
        Kind.REJECTED: {"reason": "", "note": "   "},
        Kind.CLOSED: {"reason": "", "note": ""},
    }
    for kind, empty in values.items():
        for channel in channels_for(kind):
            body = render(kind, channel, locale, sample_values(kind) | empty).body
            _, spans = isolates(body)
            assert spans == ([(LRI, NUMBER)] if locale is Locale.AR else []), body
            assert "\n\n\n" not in body
            assert not re.search(r":\s*$", body, re.MULTILINE), body


@pytest.mark.parametrize("locale", Locale)
def test_the_rejection_of_an_appeal_offers_no_second_one(locale: Locale) -> None:
    offers = {
        Locale.EN: ("appeal this decision", "may appeal it"),
        Locale.AR: ("التظلم من هذا القرار", "ولك التظلم منه"),
    }[locale]
    for appeal in (True, False):
        values = sample_values(Kind.REJECTED) | {"appeal": appeal}
        bodies = [
            render(Kind.REJECTED, c, locale, values).body for c in channels_for(Kind.REJECTED)
        ]
        assert [any(o in body for o in offers) for body in bodies] == [appeal] * len(bodies)
    final = render(Kind.REJECTED, Channel.EMAIL, locale, values).body
    assert ("cannot be appealed again" if locale is Locale.EN else "فلا يُقبل التظلم منه") in final


@pytest.mark.parametrize("locale", Locale)
def test_a_cancel_too_late_asks_to_disregard_only_a_cancellation_that_was_told(
    locale: Locale,
) -> None:
    disregard = "disregard" if locale is Locale.EN else "تجاهل"
    for told in (True, False):
        values = sample_values(Kind.CANCEL_TOO_LATE) | {"cancelled_told": told}
        bodies = [
            render(Kind.CANCEL_TOO_LATE, c, locale, values).body
            for c in channels_for(Kind.CANCEL_TOO_LATE)
        ]
        assert [disregard in body for body in bodies] == [told] * len(bodies), bodies


@pytest.mark.parametrize("locale", Locale)
def test_a_cancel_too_late_of_a_rejection_names_its_last_day_of_appeal_when_known(
    locale: Locale,
) -> None:
    """As the rejection does: the day when it is known, else "within the time allowed" (the
    SMS only offers the appeal)."""
    day = format_date(date(2026, 12, 16), CalendarLocale(locale.value))
    in_time_allowed = "within the time allowed" if locale is Locale.EN else "المدة المتاحة"
    for until in (date(2026, 12, 16), None):
        values = sample_values(Kind.CANCEL_TOO_LATE) | {"appeal_until": until}
        for channel in channels_for(Kind.CANCEL_TOO_LATE):
            body = render(Kind.CANCEL_TOO_LATE, channel, locale, values).body
            assert (day in body) == (until is not None), body
            if channel is not Channel.SMS:
                assert (in_time_allowed in body) == (until is None), body


def test_a_cancel_too_late_fits_its_sms_parts_whatever_its_last_day_of_appeal() -> None:
    """Nothing in it may be cut: its longest (the office's cancellation of a rejection, told,
    with the longest day of ten years) still fits."""
    values = sample_values(Kind.CANCEL_TOO_LATE) | {"office": True}
    first = date(2026, 1, 1).toordinal()
    days = [date.fromordinal(day) for day in range(first, first + 3653)]
    for locale in Locale:
        day = max(days, key=lambda d: len(format_date(d, CalendarLocale(locale.value))))
        rendered = render(Kind.CANCEL_TOO_LATE, Channel.SMS, locale, values | {"appeal_until": day})
        assert rendered.parts <= MAX_SMS_PARTS
        assert format_date(day, CalendarLocale(locale.value)) in rendered.body


def test_submitted_without_a_date_promises_the_working_days() -> None:
    values = sample_values(Kind.SUBMITTED) | {"due": None}
    arabic = render(Kind.SUBMITTED, Channel.SMS, Locale.AR, values).body
    english = render(Kind.SUBMITTED, Channel.SMS, Locale.EN, values).body
    assert arabic == (
        f"تم استلام طلبك رقم {LRI}{NUMBER}{PDI} في خدمة تواصل، وسيتم الرد خلال ٧ أيام عمل."
    )
    assert english == (
        f"Your Tawasul request {NUMBER} has been received; we will answer within 7 working days."
    )


def test_dates_are_in_both_calendars_and_times_in_riyadh() -> None:
    # 21:30 UTC is half past midnight of the next day in Riyadh.
    values = sample_values(Kind.SLA_BREACH) | {"due_at": datetime(2026, 12, 2, 21, 30, tzinfo=UTC)}
    arabic = render(Kind.SLA_BREACH, Channel.INAPP, Locale.AR, values).body
    english = render(Kind.SLA_BREACH, Channel.INAPP, Locale.EN, values).body
    assert "الخميس ٢٣ جمادى الآخرة ١٤٤٨ هـ الموافق ٣ ديسمبر ٢٠٢٦ م الساعة ٠٠:٣٠" in arabic
    assert "Thursday 23 Jumada al-Akhirah 1448 AH (3 December 2026) at 00:30" in english


@pytest.mark.parametrize(
    ("minutes", "arabic", "english"),
    [
        (1, "صالح لمدة دقيقة واحدة.", "valid for 1 minute."),
        (2, "صالح لمدة دقيقتين.", "valid for 2 minutes."),
        (5, "صالح لمدة ٥ دقائق.", "valid for 5 minutes."),
        (15, "صالح لمدة ١٥ دقيقة.", "valid for 15 minutes."),
    ],
)
def test_one_time_code_minutes_agree_with_their_number(
    minutes: int, arabic: str, english: str
) -> None:
    values = {"code": "731904", "minutes": minutes}
    assert arabic in render(Kind.ONE_TIME_CODE, Channel.SMS, Locale.AR, values).body
    assert english in render(Kind.ONE_TIME_CODE, Channel.SMS, Locale.EN, values).body


@pytest.mark.parametrize("kind", Kind)
def test_a_missing_value_is_named(kind: Kind) -> None:
    for name in sample_values(kind):
        values = sample_values(kind)
        del values[name]
        for channel in channels_for(kind):
            for locale in Locale:
                with pytest.raises(TemplateValuesError, match=f"missing '{name}'"):
                    render(kind, channel, locale, values)


def test_an_unexpected_value_is_named() -> None:
    values = sample_values(Kind.REJECTED) | {"reasons": "duplicate"}
    with pytest.raises(TemplateValuesError, match="unexpected 'reasons'"):
        render(Kind.REJECTED, Channel.SMS, Locale.AR, values)


def test_values_of_the_wrong_type_are_refused() -> None:
    with pytest.raises(TemplateValuesError, match="expected a date"):
        render(Kind.SUBMITTED, Channel.SMS, Locale.AR, {"number": NUMBER, "due": "2026-12-02"})
    naive = sample_values(Kind.SLA_BREACH) | {"due_at": datetime(2026, 12, 2, 11, 30)}
    with pytest.raises(TemplateValuesError, match="no time zone"):
        render(Kind.SLA_BREACH, Channel.EMAIL, Locale.EN, naive)
    with pytest.raises(TemplateValuesError, match="note must be text"):
        render(
            Kind.ACCEPTED, Channel.INAPP, Locale.EN, {"number": NUMBER, "reason": "", "note": None}
        )


@pytest.mark.parametrize(
    ("kind", "channel"),
    [
        (Kind.ONE_TIME_CODE, Channel.EMAIL),
        (Kind.ONE_TIME_CODE, Channel.INAPP),
        (Kind.SLA_BREACH, Channel.SMS),
        (Kind.SLA_WARNING, Channel.SMS),
    ],
)
def test_a_kind_on_a_channel_it_is_not_sent_on_is_unknown(kind: Kind, channel: Channel) -> None:
    with pytest.raises(UnknownTemplate, match=f"{kind} is not sent by {channel}"):
        render(kind, channel, Locale.AR, sample_values(kind))
