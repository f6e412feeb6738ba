"""Platform-wide limits on what any request may carry, checked before a handler runs.

Domain validation knows what each field means; this knows only what no field may ever hold:
control characters, noncharacters, strings and lists far past any real use. Refusing those
at the door means no handler, database or downstream call ever sees them, and a field the
domain forgot to cap still cannot fill a table or a log line. The limits are generous on
purpose: the domain's own, tighter limits give the precise message for what it checks.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import cast

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from tawasul_platform.i18n import CHARACTERS, Bilingual, Noun, at_most

MAX_STRING_CHARS = 10_000
MAX_REPEATED_ITEMS = 1_000
# A request that is wrong everywhere gets the first ones named, not a reply as big as itself.
MAX_VIOLATIONS = 20

# Tabs and line breaks are ordinary in free text; fields cannot be told apart by kind without
# annotating every proto, so they pass here and identifier validators refuse them.
_ALLOWED_CONTROLS = frozenset("\t\n\r")
# A map key is named in a field path only when it is a plain name: a path must neither echo
# arbitrary input nor grow with it.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")

CONTROL = Bilingual("must not contain control characters", "يجب ألا يحتوي على محارف تحكم")
NONCHARACTER = Bilingual(
    "must not contain Unicode noncharacters", "يجب ألا يحتوي على محارف يونيكود غير صالحة"
)
TOO_LONG = at_most(CHARACTERS, MAX_STRING_CHARS)
TOO_MANY = at_most(
    Noun("item", "items", "عنصر واحد", "عنصران", "عناصر", "عنصرًا", "عنصر"), MAX_REPEATED_ITEMS
)


def text_problem(text: str) -> Bilingual | None:
    """Why no field may hold `text`, or None; the problem never repeats the text.

    Unpaired surrogates never get this far: protobuf refuses a string that is not UTF-8
    while decoding, which the interceptor answers as a malformed request.
    """
    if len(text) > MAX_STRING_CHARS:
        return TOO_LONG
    if text.isprintable():
        # The common case, one pass in C.
        return None
    for char in text:
        if char.isprintable() or char in _ALLOWED_CONTROLS:
            continue
        # Not printable but allowed: format marks (U+200F, which typed Arabic carries),
        # unusual spaces, private use. Refused: C0/C1 controls and noncharacters.
        if unicodedata.category(char) == "Cc":
            return CONTROL
        if _noncharacter(ord(char)):
            return NONCHARACTER
    return None


# What shows nothing on its own: spaces and separators, controls, format marks (zero-width
# spaces, U+200F), unassigned and private-use code points, and marks drawn on a letter (the
# harakat of typed Arabic), with the letters some scripts leave blank (Hangul fillers, the
# blank Braille cell).
_UNSEEN_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"})
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def visible_length(text: str) -> int:
    """How many characters of `text` a reader sees: what a required text or a minimum length
    counts, so that blanks and zero-width characters cannot stand in for words."""
    return sum(
        1
        for char in text
        if char not in _BLANK_LETTERS and unicodedata.category(char) not in _UNSEEN_CATEGORIES
    )


def visible_text(text: str) -> str:
    """`text` as a reader sees it, for measuring a minimum: what shows nothing left out, and
    each run of blanks between what shows (spaces, line breaks, blank letters, whatever
    zero-width characters sit among them) one space. Never for storing: what was written is
    kept as it was written."""
    seen: list[str] = []
    gap = False
    for char in text:
        category = unicodedata.category(char)
        if char in _BLANK_LETTERS or category[0] == "Z" or char.isspace():
            gap = True
        elif category not in _UNSEEN_CATEGORIES:
            if gap and seen:
                seen.append(" ")
            seen.append(char)
            gap = False
    return "".join(seen)


def _noncharacter(point: int) -> bool:
    # U+FDD0…U+FDEF and the last two code points of every plane (U+FFFE, U+FFFF, U+1FFFE …).
    return 0xFDD0 <= point <= 0xFDEF or (point & 0xFFFE) == 0xFFFE


def message_violations(message: Message) -> dict[str, Bilingual]:
    """Field path → problem for every string and list in `message` past the platform limits.

    Paths read like the domain's: `contact.mobile`, `document_ids[3]`, `fields.national_id`.
    Bytes are not looked at (uploads stream chunks; their size is the transport's limit).
    """
    found: dict[str, Bilingual] = {}
    _walk(message, "", found)
    return found


# Only these can hold text. Bytes are never read: reading one copies it, and an upload's
# chunks are the largest thing a service receives.
_WALKED = frozenset({FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_MESSAGE})


def _walk(message: Message, prefix: str, found: dict[str, Bilingual]) -> None:
    # The stubs type these as either of protobuf's two descriptor classes; they are one.
    fields = cast("Sequence[FieldDescriptor]", message.DESCRIPTOR.fields)
    for field in fields:
        if len(found) >= MAX_VIOLATIONS:
            return
        if field.type not in _WALKED:
            continue
        singular_message = field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated
        if singular_message and not message.HasField(field.name):
            continue
        value = getattr(message, field.name)
        path = prefix + field.name
        if _is_map(field):
            _map(field, value, path, found)
        elif field.is_repeated:
            if len(value) > MAX_REPEATED_ITEMS:
                found[path] = TOO_MANY
                continue
            for index, item in enumerate(value):
                _value(field, item, f"{path}[{index}]", found)
        else:
            _value(field, value, path, found)


def _map(field: FieldDescriptor, entries: object, path: str, found: dict[str, Bilingual]) -> None:
    items = dict(entries)  # type: ignore[call-overload]
    if len(items) > MAX_REPEATED_ITEMS:
        found[path] = TOO_MANY
        return
    entry = field.message_type
    assert entry is not None  # a map field's entry type, checked by _is_map
    value_field = entry.fields_by_name["value"]
    for key, item in items.items():
        if isinstance(key, str):
            if problem := text_problem(key):
                found[path] = Bilingual(f"a key {problem}", f"مفتاح {problem.ar}")
                continue
            item_path = f"{path}.{key}" if _PLAIN_KEY.fullmatch(key) else path
        else:
            item_path = f"{path}[{key}]"
        _value(value_field, item, item_path, found)


def _value(field: FieldDescriptor, value: object, path: str, found: dict[str, Bilingual]) -> None:
    if len(found) >= MAX_VIOLATIONS:
        return
    if field.type == FieldDescriptor.TYPE_STRING:
        if isinstance(value, str) and (problem := text_problem(value)):
            found[path] = problem
    elif isinstance(value, Message):
        _walk(value, path + ".", found)


def _is_map(field: FieldDescriptor) -> bool:
    entry = field.message_type
    return field.is_repeated and entry is not None and entry.GetOptions().map_entry
