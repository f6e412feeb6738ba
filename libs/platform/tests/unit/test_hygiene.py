"""The platform's limits on any request: walked through every string, list and map."""

from __future__ import annotations

import tracemalloc

import pytest
from tawasul.common.v1 import common_pb2
from tawasul.docs.v1 import docs_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul.notify.v1 import notify_pb2
from tawasul_platform.hygiene import (
    CONTROL,
    MAX_REPEATED_ITEMS,
    MAX_STRING_CHARS,
    MAX_VIOLATIONS,
    NONCHARACTER,
    TOO_LONG,
    TOO_MANY,
    message_violations,
    text_problem,
    visible_length,
    visible_text,
)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain ASCII",
        "سطر أول\nسطر ثان\r\n\tبعد مسافة",
        "مرحبا\u200f بالعالم",  # a right-to-left mark, as phones type it
        "١٢٣ digits of any script are text here",
        "emoji 🙂 and a no-break\u00a0space",
        "x" * MAX_STRING_CHARS,
    ],
)
def test_ordinary_text_passes(text: str) -> None:
    assert text_problem(text) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("nul\x00inside", CONTROL),
        ("bell\x07", CONTROL),
        ("escape \x1b[31m", CONTROL),
        ("delete\x7f", CONTROL),
        ("c1 control\x85", CONTROL),
        ("عربي\x00", CONTROL),
        ("\ufffe", NONCHARACTER),
        ("text\uffff", NONCHARACTER),
        ("\ufdd0", NONCHARACTER),
        ("\U0001fffe plane one", NONCHARACTER),
        ("x" * (MAX_STRING_CHARS + 1), TOO_LONG),
    ],
)
def test_what_no_field_may_hold_is_named(text: str, problem: str) -> None:
    assert text_problem(text) == problem


@pytest.mark.parametrize(
    ("text", "seen"),
    [
        ("", 0),
        ("\u200b" * 10, 0),  # zero-width spaces
        (" \t\n\u00a0\u3000\u2028", 0),
        ("\u200e\u200f\u2060\ufeff\u061c\u180e", 0),  # direction and joining marks
        ("\u3164\u115f\uffa0\u2800", 0),  # letters drawn blank
        ("\u064e\u0651\u0301\u20dd", 0),  # marks with no letter to sit on
        ("\ue000\U000e0041", 0),  # private use, a tag
        ("Photo 2", 6),
        ("مَرْفُوضٌ", 5),  # harakat count with their letters, not apart
        ("\u200fالصورة غير واضحة", 14),
        ("١٢٣ 🙂", 4),
    ],
)
def test_only_what_a_reader_sees_is_counted(text: str, seen: int) -> None:
    assert visible_length(text) == seen


@pytest.mark.parametrize(
    ("text", "seen"),
    [
        ("", ""),
        ("\u200b" * 10, ""),
        ("  Photo \u200b\t \u200b\n\u3164 2\ufeff ", "Photo 2"),
        ("error\u200b1021", "error1021"),  # a zero-width space is no gap
        ("\u200fالصورة  غير\u00a0واضحة\u200f", "الصورة غير واضحة"),
    ],
)
def test_what_a_reader_sees_has_one_space_a_gap(text: str, seen: str) -> None:
    assert visible_text(text) == seen


def test_a_problem_never_repeats_the_text() -> None:
    secret = "1000000008\x00"
    found = message_violations(intake_pb2.SubmitRequestRequest(subject_id=secret))
    assert found == {"subject_id": CONTROL}
    assert "1000000008" not in repr(found)


def test_paths_name_nested_listed_and_mapped_fields() -> None:
    message = intake_pb2.SubmitRequestRequest(
        description="fine",
        contact=common_pb2.Contact(mobile="055\x00", email="ok@example.com"),
        document_ids=["a", "b", "c", "d\x01"],
        fields={"national_id": "1000000008\x00", "problem": "fine"},
    )
    assert message_violations(message) == {
        "contact.mobile": CONTROL,
        "document_ids[3]": CONTROL,
        "fields.national_id": CONTROL,
    }


def test_a_clean_message_has_no_violations() -> None:
    message = intake_pb2.SubmitRequestRequest(
        description="وصف\nمن سطرين",
        contact=common_pb2.Contact(mobile="0551234567"),
        document_ids=["a"] * MAX_REPEATED_ITEMS,
        fields={f"f{n}": "v" for n in range(10)},
    )
    assert message_violations(message) == {}


def test_map_keys_are_checked_and_named_only_when_plain() -> None:
    bad_key = intake_pb2.SubmitRequestRequest(fields={"name\x00": "value"})
    assert message_violations(bad_key) == {"fields": f"a key {CONTROL}"}
    # A key that is no plain name is not echoed in the path.
    odd_key = intake_pb2.SubmitRequestRequest(fields={"اسم الحقل": "\x00"})
    assert message_violations(odd_key) == {"fields": CONTROL}


def test_lists_and_maps_past_the_cap_are_refused_whole() -> None:
    many = notify_pb2.MarkInboxReadRequest(message_ids=["m"] * (MAX_REPEATED_ITEMS + 1))
    assert message_violations(many) == {"message_ids": TOO_MANY}
    wide = intake_pb2.SubmitRequestRequest(
        fields={f"f{n}": "v" for n in range(MAX_REPEATED_ITEMS + 1)}
    )
    assert message_violations(wide) == {"fields": TOO_MANY}


def test_bytes_are_not_text() -> None:
    chunk = docs_pb2.UploadDocumentRequest(chunk=b"\x00\x01\xff" * 10_000)
    assert message_violations(chunk) == {}
    metadata = docs_pb2.UploadDocumentRequest(
        metadata=docs_pb2.DocumentMetadata(filename="scan\x00.pdf")
    )
    assert message_violations(metadata) == {"metadata.filename": CONTROL}


def test_an_upload_chunk_is_not_copied_to_be_walked() -> None:
    # Reading a bytes field copies it; the walk must not double an upload's memory.
    chunk = docs_pb2.UploadDocumentRequest.FromString(
        docs_pb2.UploadDocumentRequest(chunk=b"x" * 1024 * 1024).SerializeToString()
    )
    tracemalloc.start()
    try:
        assert message_violations(chunk) == {}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_a_request_bad_everywhere_gets_the_first_few_named() -> None:
    message = notify_pb2.MarkInboxReadRequest(message_ids=["\x00"] * MAX_REPEATED_ITEMS)
    found = message_violations(message)
    assert len(found) == MAX_VIOLATIONS
    assert next(iter(found)) == "message_ids[0]"
