"""Docs' domain: type detection by bytes, size limits, file names, who may read."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import pytest
from tawasul_docs.domain.model import (
    MAX_FILENAME,
    ContentType,
    Document,
    DocumentMetadata,
    Upload,
    detect_content_type,
    parse_document_id,
    sanitize_filename,
)
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.identity import Principal, Role

PDF = b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32 + b"\xff\xd9"
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 56 + b"This program cannot be run in DOS mode"


def collect(chunks: list[bytes], max_bytes: int = 1024) -> Upload:
    upload = Upload(max_bytes)
    for chunk in chunks:
        upload.add(chunk)
    return upload


def violations(exc: pytest.ExceptionInfo[InvalidArgument]) -> dict[str, str]:
    return exc.value.violations


@pytest.mark.parametrize(("data", "expected"), [(PDF, ContentType.PDF), (JPEG, ContentType.JPEG)])
def test_allowed_types_are_detected_from_their_magic_numbers(
    data: bytes, expected: ContentType
) -> None:
    assert detect_content_type(data) is expected


@pytest.mark.parametrize(
    "data",
    [EXE, b"PK\x03\x04zipfile", b"\x89PNG\r\n\x1a\n", b"hello %PDF-1.4", b"\xff\xd8", b"%PDF"],
)
def test_other_bytes_are_refused_on_content(data: bytes) -> None:
    with pytest.raises(InvalidArgument) as exc:
        detect_content_type(data)
    assert set(violations(exc)) == {"content"}


def test_a_pdf_declared_as_jpeg_is_stored_as_pdf() -> None:
    content = collect([PDF]).finish()
    document = Document.create(
        id=uuid.uuid4(),
        owner_id="1000000008",
        metadata=DocumentMetadata(filename="photo.jpg", declared_content_type="image/jpeg"),
        content=content,
        now=datetime.now(UTC),
    )
    assert document.content_type is ContentType.PDF


def test_an_exe_is_refused_from_its_first_bytes_before_the_rest_arrives() -> None:
    upload = Upload(1024)
    with pytest.raises(InvalidArgument) as exc:
        upload.add(EXE[:16])
    assert set(violations(exc)) == {"content"}


def test_type_is_detected_across_chunk_boundaries() -> None:
    content = collect([b"%P", b"D", b"F-1.4 rest of file"]).finish()
    assert content.content_type is ContentType.PDF


def test_a_tiny_file_is_still_checked_at_the_end() -> None:
    assert collect([b"\xff\xd8\xff"]).finish().content_type is ContentType.JPEG
    with pytest.raises(InvalidArgument):
        collect([b"%PD"]).finish()


def test_size_and_sha256_are_those_of_all_the_bytes() -> None:
    content = collect([PDF[:10], b"", PDF[10:]]).finish()
    assert content.size_bytes == len(PDF)
    assert content.sha256 == hashlib.sha256(PDF).hexdigest()
    assert content.data == PDF


def test_a_file_exactly_at_the_limit_is_accepted() -> None:
    data = PDF + b"\x00" * (100 - len(PDF))
    assert collect([data], max_bytes=100).finish().size_bytes == 100


def test_the_limit_is_enforced_by_the_chunk_that_crosses_it() -> None:
    upload = Upload(100)
    upload.add(PDF)
    upload.add(b"\x00" * (100 - len(PDF)))
    with pytest.raises(InvalidArgument) as exc:
        upload.add(b"\x00")
    assert set(violations(exc)) == {"chunk"}
    assert upload.size == 100


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(InvalidArgument) as exc:
        collect([b"", b""]).finish()
    assert set(violations(exc)) == {"chunk"}


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("passport.pdf", "passport.pdf"),
        ("C:\\Users\\me\\scan.pdf", "scan.pdf"),
        ("../../etc/passwd", "passwd"),
        ("  جواز   السفر.pdf ", "جواز السفر.pdf"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("bad\x00name\n.pdf", "badname.pdf"),
        ('a<b>:"c"|?*.pdf', "a_b___c____.pdf"),
        ("...", "document"),
        ("", "document"),
        (".hidden", "hidden"),
    ],
)
def test_file_names_are_sanitized(given: str, stored: str) -> None:
    assert sanitize_filename(given) == stored


def test_long_file_names_are_cut_to_the_limit_keeping_the_extension() -> None:
    name = sanitize_filename("ا" * 400 + ".pdf")
    assert len(name) == MAX_FILENAME
    assert name.endswith(".pdf")
    assert len(sanitize_filename("x" * 400)) == MAX_FILENAME


def test_document_ids_must_be_uuids() -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_document_id("../etc")
    assert set(violations(exc)) == {"document_id"}
    key = uuid.uuid4()
    assert parse_document_id(str(key)) == key


def test_the_owner_and_reviewers_may_read_others_may_not() -> None:
    content = collect([PDF]).finish()
    document = Document.create(
        id=uuid.uuid4(),
        owner_id="1000000008",
        metadata=DocumentMetadata(filename="a.pdf"),
        content=content,
        now=datetime.now(UTC),
    )
    assert document.object_key == f"documents/{document.id}"
    assert document.readable_by(Principal("1000000008", Role.CITIZEN))
    assert document.readable_by(Principal("E100", Role.REVIEWER))
    assert not document.readable_by(Principal("2000000007", Role.RESIDENT))
    assert not document.readable_by(Principal("7000000001", Role.ESTABLISHMENT))
