"""Docs' domain: file names, the limits an upload gets, a document's life and who may read it."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tawasul_devstack.journey import sample_pdf
from tawasul_docs.domain.inspection import ACCEPTED, Inspection, Kind, inspect_file
from tawasul_docs.domain.model import (
    MAX_CHUNK,
    Document,
    DocumentMetadata,
    State,
    UploadLimits,
    clean_key,
    limits_for,
    parse_document_id,
    quarantine_key,
)
from tawasul_docs.domain.names import DEFAULT_FILENAME, MAX_FILENAME, sanitize_filename
from tawasul_platform.catalog import Catalog, load_catalog
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.identity import Principal, Role

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OWNER_ID = "1000000008"
OWNER = Principal(OWNER_ID, Role.CITIZEN)
REVIEWER = Principal("E1001", Role.REVIEWER, frozenset({"passports"}))
MiB = 1024 * 1024
PROBLEM = "passports.issue-renewal-problem"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


# --- file names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("passport.pdf", "passport.pdf"),
        # Paths, Windows' or POSIX', are stripped to their last part.
        ("C:\\Users\\me\\scan.pdf", "scan.pdf"),
        ("../../etc/passwd", "passwd"),
        ("dir/sub\\file.png", "file.png"),
        ("folder/", DEFAULT_FILENAME),
        # Blanks of any kind collapse to one space, and the ends are trimmed.
        ("  جواز   السفر.pdf ", "جواز السفر.pdf"),
        ("name\u00a0with\u3000spaces.png", "name with spaces.png"),
        # Control and format characters go: a right-to-left override cannot disguise an .exe.
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("a\u200bb\u2066c.pdf", "abc.pdf"),
        ("bad\x00name\n.pdf", "badname.pdf"),
        ("tab\there.pdf", "tabhere.pdf"),
        # Characters file systems and shells give a meaning to are replaced.
        ('a<b>:"c"|?*.pdf', "a_b___c____.pdf"),
        # Composed forms are stored once, composed.
        ("e\u0301te\u0301.pdf", "\u00e9t\u00e9.pdf"),
        # Nothing left, or only dots: the default name.
        ("...", DEFAULT_FILENAME),
        ("", DEFAULT_FILENAME),
        ("\u202e\u200b", DEFAULT_FILENAME),
        (".hidden", "hidden"),
        ("trailing. . .", "trailing"),
    ],
)
def test_file_names_are_sanitized(given: str, stored: str) -> None:
    assert sanitize_filename(given) == stored


def test_long_file_names_are_cut_to_the_limit_keeping_the_extension() -> None:
    arabic = sanitize_filename("ا" * 400 + ".pdf")
    assert arabic == "ا" * (MAX_FILENAME - 4) + ".pdf"
    assert sanitize_filename("x" * 400) == "x" * MAX_FILENAME
    # The cut stem loses the dots and blanks it would end with.
    assert sanitize_filename("a" * 248 + ". . . .jpeg") == "a" * 248 + ".jpeg"


def test_a_long_suffix_is_no_extension_and_is_cut_like_the_rest() -> None:
    name = "x" * 300 + "." + "y" * 20
    assert sanitize_filename(name) == "x" * MAX_FILENAME


def test_a_name_at_the_limit_is_kept_whole() -> None:
    name = "n" * (MAX_FILENAME - 4) + ".pdf"
    assert sanitize_filename(name) == name


# --- limits -------------------------------------------------------------------------------------


def test_without_a_sub_service_the_general_limit_and_pdf_or_jpeg_apply(catalog: Catalog) -> None:
    """SPEC §2: attachments are PDF or JPG; a PNG is no attachment, whatever it is for."""
    limits = limits_for(catalog, DocumentMetadata("a.pdf"), default_max_bytes=3 * MiB)
    assert limits == UploadLimits(3 * MiB, frozenset({Kind.PDF, Kind.JPEG}))


def test_a_sub_services_document_kind_gives_its_size_and_types(catalog: Catalog) -> None:
    photo = DocumentMetadata("me.jpg", sub_service_code=PROBLEM, document_kind="photo")
    assert limits_for(catalog, photo, default_max_bytes=1) == UploadLimits(
        5 * MiB, frozenset({Kind.JPEG})
    )
    supporting = dataclasses.replace(photo, document_kind="supporting_document")
    assert limits_for(catalog, supporting, default_max_bytes=1) == UploadLimits(
        10 * MiB, frozenset({Kind.PDF, Kind.JPEG})
    )


def test_no_document_of_the_catalog_takes_a_png(catalog: Catalog) -> None:
    for sub_service in catalog.sub_services.values():
        for spec in sub_service.documents:
            metadata = DocumentMetadata("p.png", "", sub_service.code, spec.kind)
            limits = limits_for(catalog, metadata, default_max_bytes=1)
            assert Kind.PNG not in limits.allowed, (sub_service.code, spec.kind)


def test_every_document_kind_of_the_catalog_gets_its_own_limits(catalog: Catalog) -> None:
    seen = 0
    for code, sub_service in catalog.sub_services.items():
        for spec in sub_service.documents:
            metadata = DocumentMetadata("f", sub_service_code=code, document_kind=spec.kind)
            limits = limits_for(catalog, metadata, default_max_bytes=7)
            assert limits.max_bytes == spec.max_bytes
            assert {kind.value for kind in limits.allowed} == spec.media_types
            seen += 1
    assert seen >= 16


@pytest.mark.parametrize(
    ("sub_service", "kind", "field"),
    [
        ("passports.no-such-thing", "photo", "metadata.sub_service_code"),
        ("", "photo", "metadata.sub_service_code"),
        (PROBLEM, "passport_scan", "metadata.document_kind"),
        (PROBLEM, "", "metadata.document_kind"),
        # A kind of another sub-service is not one of this one's.
        (PROBLEM, "police_report", "metadata.document_kind"),
        # Codes are compared whole, not by prefix.
        ("passports.issue-renewal-problem-x", "photo", "metadata.sub_service_code"),
    ],
)
def test_an_unknown_sub_service_or_kind_is_refused_on_its_field(
    catalog: Catalog, sub_service: str, kind: str, field: str
) -> None:
    metadata = DocumentMetadata("a.pdf", sub_service_code=sub_service, document_kind=kind)
    with pytest.raises(InvalidArgument) as caught:
        limits_for(catalog, metadata, default_max_bytes=MiB)
    assert list(caught.value.violations) == [field]


def test_chunks_are_at_most_256_kib() -> None:
    assert MAX_CHUNK == 256 * 1024


# --- documents ----------------------------------------------------------------------------------


def an_inspection(kind: Kind = Kind.PDF, data: bytes = b"%PDF-1.4 ...") -> Inspection:
    return Inspection(
        kind=kind,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        pages=1 if kind is Kind.PDF else None,
        width=None if kind is Kind.PDF else 64,
        height=None if kind is Kind.PDF else 48,
    )


def a_document(
    *,
    filename: str = "a.pdf",
    kind: Kind = Kind.PDF,
    owner_id: str = OWNER_ID,
    sub_service_code: str = "",
    document_kind: str = "",
) -> Document:
    return Document.create(
        id=uuid.uuid4(),
        owner_id=owner_id,
        metadata=DocumentMetadata(
            filename, sub_service_code=sub_service_code, document_kind=document_kind
        ),
        inspection=an_inspection(kind),
        now=NOW,
    )


def test_a_new_document_waits_in_quarantine_where_it_stays_under_a_key_of_its_id(
    tmp_path: Path,
) -> None:
    data = sample_pdf("Tawasul")
    path = tmp_path / "upload"
    path.write_bytes(data)
    inspection = inspect_file(path, declared_type="", max_bytes=MiB, allowed=ACCEPTED)
    key = uuid.uuid4()
    document = Document.create(
        id=key,
        owner_id=OWNER_ID,
        metadata=DocumentMetadata(
            "../../صور/scan.exe",
            declared_content_type="application/pdf",
            sub_service_code=PROBLEM,
            document_kind="supporting_document",
        ),
        inspection=inspection,
        now=NOW,
    )
    assert document == Document(
        id=key,
        owner_id=OWNER_ID,
        filename="scan.pdf",
        content_type=Kind.PDF,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        object_key=f"documents/{key}",
        created_at=NOW,
        state=State.QUARANTINED,
        document_kind="supporting_document",
        sub_service_code=PROBLEM,
    )
    assert quarantine_key(key) == f"quarantine/{key}"
    assert clean_key(key) == f"documents/{key}"


@pytest.mark.parametrize(
    ("filename", "kind", "stored"),
    [
        ("photo", Kind.JPEG, "photo.jpg"),
        ("photo.png", Kind.JPEG, "photo.jpg"),
        ("صورة.JPG", Kind.PNG, "صورة.png"),
        ("Report v1.2", Kind.PDF, "Report v1.2.pdf"),
        ("invoice\u202efdp.exe", Kind.PDF, "invoicefdp.pdf"),
        ("", Kind.PDF, "document.pdf"),
    ],
)
def test_the_stored_name_carries_the_extension_of_the_detected_type(
    filename: str, kind: Kind, stored: str
) -> None:
    document = a_document(filename=filename, kind=kind)
    assert (document.filename, document.content_type) == (stored, kind)


def test_a_long_name_is_stored_at_most_at_the_limit_with_the_detected_extension() -> None:
    document = a_document(filename="ا" * 400 + ".exe", kind=Kind.PNG)
    assert len(document.filename) == MAX_FILENAME
    assert document.filename.endswith("ا.png")


def test_a_clean_verdict_makes_the_document_readable_where_it_is() -> None:
    document = a_document()
    clean = document.scanned(clean=True)
    assert clean == dataclasses.replace(document, state=State.CLEAN)
    assert clean.object_key == f"documents/{document.id}"
    assert document.state is State.QUARANTINED  # the original is unchanged


def test_a_clean_verdict_moves_a_legacy_document_out_of_quarantine() -> None:
    document = a_document()
    legacy = dataclasses.replace(document, object_key=f"quarantine/{document.id}")
    assert legacy.scanned(clean=True) == dataclasses.replace(
        document, state=State.CLEAN, object_key=f"documents/{document.id}"
    )


def test_an_infected_verdict_keeps_the_key_it_had_for_the_record() -> None:
    document = a_document()
    infected = document.scanned(clean=False)
    assert infected == dataclasses.replace(document, state=State.INFECTED)
    assert infected.object_key == f"documents/{document.id}"


def every_state(document: Document) -> tuple[Document, Document, Document]:
    return document, document.scanned(clean=True), document.scanned(clean=False)


def test_the_owner_reads_their_document_in_every_state() -> None:
    quarantined = a_document()
    for document in every_state(quarantined):
        assert document.readable_by(OWNER, frozenset())


def test_a_reviewer_reads_a_document_only_once_it_is_clean() -> None:
    quarantined = a_document()
    held = frozenset({"passports"})
    assert not quarantined.readable_by(REVIEWER, held)
    assert quarantined.scanned(clean=True).readable_by(REVIEWER, held)
    assert not quarantined.scanned(clean=False).readable_by(REVIEWER, held)
    # Clean, but held by no request of the reviewer's departments.
    assert not quarantined.scanned(clean=True).readable_by(REVIEWER, frozenset({"visas"}))
    assert not quarantined.scanned(clean=True).readable_by(REVIEWER, frozenset())


def test_a_reviewer_holding_the_owners_number_is_still_a_reviewer() -> None:
    quarantined = a_document()
    assert not quarantined.readable_by(Principal(OWNER_ID, Role.REVIEWER), frozenset())


@pytest.mark.parametrize(
    "stranger",
    [
        Principal("1000000016", Role.CITIZEN),
        Principal("2000000007", Role.RESIDENT),
        Principal("7000000001", Role.ESTABLISHMENT),
    ],
)
def test_another_beneficiary_never_reads_it(stranger: Principal) -> None:
    quarantined = a_document()
    for document in every_state(quarantined):
        assert not document.readable_by(stranger, frozenset({"passports"}))


def test_document_ids_must_be_uuids() -> None:
    for raw in ("../etc", "", "1", f"{uuid.uuid4()}x"):
        with pytest.raises(InvalidArgument) as caught:
            parse_document_id(raw)
        assert caught.value.violations == {"document_id": "not a document id"}
    key = uuid.uuid4()
    assert parse_document_id(str(key)) == key
