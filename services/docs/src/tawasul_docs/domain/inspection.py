"""What a stored file really is, decided from its bytes on disk, never from what the client says.

An upload is spooled to a temporary file while it streams to object storage; an `Inspector` is
fed its bytes as they arrive and, once the file is whole, either describes it (`Inspection`) or
refuses it (`Refused`, a field and a short reason that never echoes the file's content);
`inspect_file` does the same for a file already on disk. The checks, cheapest first:

1. size: not empty, not over the limit;
2. the first 1024 bytes: no ZIP local header, no HTML or script markers, and a known signature
   at byte 0 (a PDF header found later than byte 0 is a polyglot, refused);
3. the detected type is allowed for the sub-service, and the declared type (if any) matches;
4. one streaming pass over the whole file: SHA-256, and a scan for forbidden PDF names
   (JavaScript, launch actions, embedded files, rich media, XFA, encryption) or, in an image,
   for a PDF header;
5. a parse made for the type: pypdf (strict) for a PDF, whose objects are all walked for the
   same forbidden names; Pillow for an image, with a pixel limit against decompression bombs,
   and a walk of the image's framing (JPEG markers, PNG chunks) so that a truncated image or
   data hidden after its end is refused.

Memory: the streaming pass and the framing walks read fixed-size chunks, and Pillow reads an
image's headers, not its pixels, so an image costs a few hundred KB whatever its size. pypdf is
given the open file (given the path, it would first read the whole file into memory), but it
keeps every object it parses, stream data included: a PDF's inspection holds up to about the
file's size (at most max_bytes), and what its compressed object streams and cross-reference
streams decode to, which `pdf_reader` holds to max_bytes as well: compressed, a file has pypdf
parse no more than an uncompressed one of the limit could. (What pypdf builds of it can take
some 30 times its size: 5 million numbers in a 10 MiB file hold 300 MB.) Nothing here changes
global state (Pillow's MAX_IMAGE_PIXELS, warning filters, pypdf's limits, which are set in a
context variable), so it is safe in a worker thread.

pypdf and Pillow are imported by the first file of their kind, not with this module: pypdf
alone holds 6 MiB of every docs process, which a replica given only images, or none yet, does
not need. An import in a worker thread is safe: a second thread waits on the module's lock until
the first has finished it (Pillow registers each plugin as it is imported).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from tawasul_platform.errors import InvalidArgument
from tawasul_platform.i18n import Bilingual

from tawasul_docs.domain.names import DEFAULT_FILENAME, MAX_FILENAME, sanitize_filename

if TYPE_CHECKING:
    from pypdf import PdfReader
    from pypdf.generic import IndirectObject, PdfObject


class Kind(StrEnum):
    PDF = "application/pdf"
    JPEG = "image/jpeg"
    # No longer accepted (SPEC §2: PDF or JPG), but documents stored before 2026-12-07 may be
    # PNGs, still read and downloaded; an upload detected as one is refused by name.
    PNG = "image/png"


# What any upload may be; a sub-service's document may take fewer.
ACCEPTED: Final = frozenset({Kind.PDF, Kind.JPEG})
EXTENSIONS: Final[dict[Kind, str]] = {Kind.PDF: "pdf", Kind.JPEG: "jpg", Kind.PNG: "png"}
_LABELS: Final[dict[Kind, str]] = {Kind.PDF: "PDF", Kind.JPEG: "JPEG", Kind.PNG: "PNG"}
# The names the seeds give the accepted types («بصيغة PDF أو JPG»), in this order.
_ACCEPTED_NAMES: Final[dict[Kind, str]] = {Kind.PDF: "PDF", Kind.JPEG: "JPG"}
# Declared types that name a detected kind under another spelling.
_DECLARED_ALIASES: Final[dict[str, str]] = {"image/jpg": Kind.JPEG.value}

# Fields of the refusals, as the client sees them.
CONTENT = "content"
DECLARED_CONTENT_TYPE = "declared_content_type"
SIZE = "size"

HEAD_BYTES = 1024  # where readers look for a signature, and where polyglots show themselves
CHUNK_BYTES = 64 * 1024
MAX_PIXELS = 50_000_000  # an A4 page at 600 dpi is about 35 megapixels
# Bytes allowed after a PNG's IEND, a JPEG's final EOI or a PDF's last %%EOF: padding only.
TRAILING_TOLERANCE = 64
_PADDING = frozenset(b"\x00\t\n\r\f \xff")
MAX_PDF_OBJECTS = 100_000
# Entries over all the cross-reference streams, free ones and those of earlier revisions
# included: a few revisions that each list every object still pass.
_MAX_XREF_ENTRIES = 4 * MAX_PDF_OBJECTS
_MAX_NESTING = 64

_PDF_HEADER = re.compile(rb"%PDF-(?:1\.[0-9]|2\.0)(?![0-9])")
_PDF_MAGIC = b"%PDF-"
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ZIP_LOCAL_HEADER = b"PK\x03\x04"
# A ZIP is read from its end: its directory's last record sits in the last 64 KiB (its
# comment at most 65,535 bytes), wherever its files are, a PDF's stream say.
_ZIP_END = b"PK\x05\x06"
_ZIP_END_WITHIN = 22 + 65_535
_MARKUP = (b"<html", b"<head", b"<body", b"<script", b"<!doctype", b"<iframe", b"<svg", b"<?php")


class Refused(InvalidArgument):
    """The file is not accepted: `field` says which input is wrong, `reason` why, briefly.

    An InvalidArgument, so the entrypoints answer INVALID_ARGUMENT with {field: reason}.
    """

    def __init__(self, field: str, reason: Bilingual) -> None:
        self.field = field
        self.reason = reason
        super().__init__({field: reason})


@dataclass(frozen=True)
class Inspection:
    kind: Kind
    size_bytes: int
    sha256: str
    pages: int | None
    width: int | None
    height: int | None


class _Threat(Enum):
    """What a PDF may carry that is refused, in the order refusals are reported."""

    ENCRYPTED = Bilingual("the PDF is encrypted", "ملف PDF مشفر")
    JAVASCRIPT = Bilingual("the PDF contains JavaScript", "ملف PDF يحتوي على JavaScript")
    LAUNCH = Bilingual("the PDF contains a launch action", "ملف PDF يحتوي على أمر تشغيل")
    EMBEDDED = Bilingual("the PDF contains embedded files", "ملف PDF يحتوي على ملفات مضمّنة")
    RICH_MEDIA = Bilingual("the PDF contains rich media", "ملف PDF يحتوي على وسائط تفاعلية")
    XFA = Bilingual("the PDF contains an XFA form", "ملف PDF يحتوي على نموذج XFA")
    REACHES_OUT = Bilingual(
        "the PDF reaches out to another file or address by itself when opened",
        "ملف PDF يتصل بملف أو عنوان آخر تلقائيًا عند فتحه",
    )


# PDF names looked for in the raw bytes, after #xx escapes are decoded. The long ones are
# searched everywhere, compressed stream data included: they are too long to occur there by
# chance. The short ones would (a 10 MB scan holds "/JS" about once by chance), so they count
# only outside stream data, where the file is PDF syntax; a /JS key always sits in an action
# whose /S is /JavaScript, which the long search and the object walk see anyway.
_RAW_NAMES: Final[dict[bytes, _Threat]] = {
    b"JavaScript": _Threat.JAVASCRIPT,
    b"Launch": _Threat.LAUNCH,
    b"EmbeddedFiles": _Threat.EMBEDDED,
    b"EmbeddedFile": _Threat.EMBEDDED,
    b"GoToE": _Threat.EMBEDDED,
    b"RichMedia": _Threat.RICH_MEDIA,
    b"RichMediaExecute": _Threat.RICH_MEDIA,
    b"RichMediaContent": _Threat.RICH_MEDIA,
    b"RichMediaSettings": _Threat.RICH_MEDIA,
    b"Encrypt": _Threat.ENCRYPTED,
}
_RAW_SHORT_NAMES: Final[dict[bytes, _Threat]] = {
    b"JS": _Threat.JAVASCRIPT,
    b"XFA": _Threat.XFA,
}
_NAME_LIMIT = 127  # longer names are none of the above, even fully #-escaped
# A name's characters after its '/': up to one past _NAME_LIMIT.
_NAME_BODY = re.compile(rb"[^\x00\t\n\f\r /<>\[\](){}%]{0,128}")
_BEFORE_STREAM = frozenset(b" \t\n\x0b\x0c\r>")  # PDF whitespace, or the end of a dictionary
_END, _STREAM, _NAME = "end", "stream", "name"
_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_RAW_MARGIN = 256  # bytes held back at a chunk's end so that no token is cut in two
_ENTROPY_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

# The same threats in pypdf's object model (names decoded, as pypdf gives them).
_KEY_THREATS: Final[dict[str, _Threat]] = {
    "/JS": _Threat.JAVASCRIPT,
    "/JavaScript": _Threat.JAVASCRIPT,
    "/EmbeddedFiles": _Threat.EMBEDDED,
    "/EF": _Threat.EMBEDDED,
    "/RichMediaContent": _Threat.RICH_MEDIA,
    "/RichMediaSettings": _Threat.RICH_MEDIA,
    "/XFA": _Threat.XFA,
    "/Encrypt": _Threat.ENCRYPTED,
}
_VALUE_THREATS: Final[dict[tuple[str, str], _Threat]] = {
    ("/S", "/JavaScript"): _Threat.JAVASCRIPT,
    ("/S", "/Launch"): _Threat.LAUNCH,
    ("/S", "/GoToE"): _Threat.EMBEDDED,
    ("/S", "/RichMediaExecute"): _Threat.RICH_MEDIA,
    ("/Type", "/EmbeddedFile"): _Threat.EMBEDDED,
    ("/Subtype", "/FileAttachment"): _Threat.EMBEDDED,
    ("/Subtype", "/RichMedia"): _Threat.RICH_MEDIA,
}
_VALUE_KEYS = frozenset(key for key, _ in _VALUE_THREATS)
# Actions that reach another file or a server (a Windows reader sends its user's NTLM hash to
# a UNC path; a form posted to a URL tells its server the file was opened): refused where
# the file runs them by itself (/OpenAction, /AA), not on a button a person presses.
_REACHING_ACTIONS = frozenset({"/GoToR", "/SubmitForm", "/ImportData", "/URI"})
_AUTO_RUN_KEYS = frozenset({"/OpenAction", "/AA"})


def inspect_file(
    path: Path, *, declared_type: str, max_bytes: int, allowed: frozenset[Kind]
) -> Inspection:
    """Describes the file at `path`, or raises Refused; reads it in chunks, never whole."""
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size == 0:
            raise Refused(CONTENT, _EMPTY)
        if size > max_bytes:
            raise Refused(SIZE, _larger_than(max_bytes))
        inspector = Inspector(declared_type=declared_type, max_bytes=max_bytes, allowed=allowed)
        for chunk in _chunks(file):
            inspector.feed(chunk)
        return inspector.finish(file)


class Inspector:
    """`inspect_file` fed the bytes as they arrive: checks 2 to 4 run on each chunk (a refusal
    comes as soon as its bytes do), the parse of step 5 on the whole file at the end."""

    def __init__(self, *, declared_type: str, max_bytes: int, allowed: frozenset[Kind]) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self._declared_type = declared_type
        self._max_bytes = max_bytes
        self._allowed = allowed
        self._kind: Kind | None = None
        self._head = b""  # the first bytes, until there are HEAD_BYTES to detect the type by
        self._size = 0
        self._digest = hashlib.sha256()
        self._raw: _RawPdfScan | None = None
        self._tail = b""  # for an image: the last bytes of the previous chunk, for a split header
        self._pdf_inside = False

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._max_bytes:  # the file grew while it was read
            raise Refused(SIZE, _larger_than(self._max_bytes))
        if self._kind is None:
            self._head += chunk
            if len(self._head) < HEAD_BYTES:
                return
            chunk, self._head = self._head, b""
            self._detect(chunk[:HEAD_BYTES])
        self._stream(chunk)

    def finish(self, file: IO[bytes]) -> Inspection:
        """The whole file, fed already: the parse made for its type."""
        if self._size == 0:
            raise Refused(CONTENT, _EMPTY)
        kind = self._kind
        if kind is None:  # shorter than HEAD_BYTES
            head, self._head = self._head, b""
            kind = self._detect(head)
            self._stream(head)
        if self._pdf_inside:
            raise Refused(
                CONTENT,
                Bilingual(
                    "an image with a PDF inside is not accepted", "لا تُقبل صورة بداخلها ملف PDF"
                ),
            )
        sha256 = self._digest.hexdigest()
        file.seek(max(0, self._size - _ZIP_END_WITHIN))
        if _ZIP_END in file.read(_ZIP_END_WITHIN):
            raise Refused(CONTENT, _ZIP)
        if self._raw is not None:
            pages = _check_pdf(file, self._size, self._raw.finish(), self._max_bytes)
            return Inspection(kind, self._size, sha256, pages=pages, width=None, height=None)
        width, height = _check_image(file, kind, self._size)
        return Inspection(kind, self._size, sha256, pages=None, width=width, height=height)

    def _detect(self, head: bytes) -> Kind:
        kind = _detect(head)
        if kind not in self._allowed:
            names = [name for k, name in _ACCEPTED_NAMES.items() if k in self._allowed]
            raise Refused(
                CONTENT,
                Bilingual(
                    f"{_LABELS[kind]} files are not accepted here: only {' or '.join(names)}",
                    f"ملفات {_LABELS[kind]} غير مقبولة هنا: تُقبل ملفات {' أو '.join(names)} فقط",
                ),
            )
        _check_declared(self._declared_type, kind)
        self._kind = kind
        self._raw = _RawPdfScan() if kind is Kind.PDF else None
        return kind

    def _stream(self, chunk: bytes) -> None:
        """SHA-256, and the threats seen in the raw bytes, one chunk at a time."""
        self._digest.update(chunk)
        if self._raw is not None:
            self._raw.feed(chunk)
        else:
            self._pdf_inside = self._pdf_inside or _PDF_MAGIC in self._tail + chunk
            self._tail = chunk[-(len(_PDF_MAGIC) - 1) :]


def stored_name(filename: str, kind: Kind) -> str:
    """The cleaned display name, carrying the extension of the detected type.

    "scan.exe" detected as PDF is "scan.pdf"; "photo" detected as JPEG is "photo.jpg". Only a
    short ASCII suffix with a letter counts as an extension, so "Report v1.2" keeps its "2".
    """
    name = sanitize_filename(filename)
    stem, dot, extension = name.rpartition(".")
    if dot and stem and _looks_like_extension(extension):
        name = stem.rstrip(". ")
    wanted = EXTENSIONS[kind]
    name = name[: MAX_FILENAME - len(wanted) - 1].rstrip(". ") or DEFAULT_FILENAME
    return f"{name}.{wanted}"


def _looks_like_extension(text: str) -> bool:
    return (
        0 < len(text) <= 10
        and text.isascii()
        and text.isalnum()
        and any(char.isalpha() for char in text)
    )


def _detect(head: bytes) -> Kind:
    if _ZIP_LOCAL_HEADER in head:
        raise Refused(CONTENT, _ZIP)
    lowered = head.lower()
    if any(marker in lowered for marker in _MARKUP):
        raise Refused(
            CONTENT,
            Bilingual(
                "HTML or script content is not accepted", "محتوى HTML أو البرامج النصية غير مقبول"
            ),
        )
    if head.startswith(_PDF_MAGIC):
        if not _PDF_HEADER.match(head):
            raise Refused(
                CONTENT,
                Bilingual(
                    "the PDF header names no known version", "ترويسة ملف PDF لا تذكر إصدارًا معروفًا"
                ),
            )
        return Kind.PDF
    if head.startswith(_JPEG_MAGIC):
        return Kind.JPEG
    if head.startswith(_PNG_MAGIC):
        return Kind.PNG
    if _PDF_MAGIC in head:
        raise Refused(
            CONTENT,
            Bilingual(
                "data before the PDF header is not accepted", "لا تُقبل بيانات قبل ترويسة ملف PDF"
            ),
        )
    raise Refused(
        CONTENT,
        Bilingual(
            "only PDF or JPG files, detected by content",
            "تُقبل ملفات PDF أو JPG فقط، بحسب محتواها",
        ),
    )


def _check_declared(declared_type: str, kind: Kind) -> None:
    declared = declared_type.split(";", 1)[0].strip().lower()
    if not declared:
        return
    if _DECLARED_ALIASES.get(declared, declared) != kind.value:
        raise Refused(
            DECLARED_CONTENT_TYPE,
            Bilingual(
                f"the declared type does not match the content, which is {_LABELS[kind]}",
                f"النوع المعلن لا يطابق المحتوى، وهو {_LABELS[kind]}",
            ),
        )


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    while chunk := file.read(CHUNK_BYTES):
        yield chunk


class _RawPdfScan:
    """Forbidden names in a PDF's raw bytes, fed chunk by chunk.

    Holds back the last _RAW_MARGIN bytes of each chunk unless a token ends before them, so a
    token cut by a chunk boundary is seen whole in the next round, and each byte is tokenised
    once (which keeps the inside-a-stream state right).
    """

    def __init__(self) -> None:
        self._pending = b""
        self._in_stream = False
        self.threats: set[_Threat] = set()

    def feed(self, chunk: bytes) -> None:
        self._scan(self._pending + chunk, final=False)

    def finish(self) -> set[_Threat]:
        self._scan(self._pending, final=True)
        self._pending = b""
        return self.threats

    def _scan(self, data: bytes, *, final: bool) -> None:
        safe = len(data) if final else max(0, len(data) - _RAW_MARGIN)
        resume = safe
        for start, end, kind in _raw_tokens(data):
            if end > safe and not final:
                resume = min(start, safe)
                break
            if kind == _END:
                self._in_stream = False
            elif kind == _STREAM:
                self._in_stream = True
            else:
                self._name(data[start + 1 : end])
        self._pending = data[resume:]

    def _name(self, raw_name: bytes) -> None:
        if len(raw_name) > _NAME_LIMIT:
            return
        name = _NAME_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw_name)
        threat = _RAW_NAMES.get(name)
        if threat is None and not self._in_stream:
            threat = _RAW_SHORT_NAMES.get(name)
        if threat is not None:
            self.threats.add(threat)


def _raw_tokens(data: bytes) -> Iterator[tuple[int, int, str]]:
    """(start, end, kind) of each token, left to right, none inside another: `endstream`; a
    `stream` keyword after whitespace or '>' and before an end of line; a '/' and the name
    after it, of at most 128 characters.

    Found with bytes.find, which skips the bytes between tokens in C at memchr's speed; a
    regular expression tries each of those bytes (about 20 ms for 10 MiB with no tokens).
    """
    position = 0
    slash = data.find(b"/")
    keyword = _keyword(data, data.find(b"stream"), 0)
    while slash >= 0 or keyword is not None:
        if keyword is None or 0 <= slash < keyword[0]:
            name = _NAME_BODY.match(data, slash + 1)
            token = (slash, name.end() if name else slash + 1, _NAME)
        else:
            token = keyword
        yield token
        position = token[1]
        if slash < position:
            slash = data.find(b"/", position)
        if keyword is not None and keyword[0] < position:
            keyword = _keyword(data, data.find(b"stream", keyword[0] + 1), position)


def _keyword(data: bytes, found: int, position: int) -> tuple[int, int, str] | None:
    """The first `endstream` or `stream` token that starts at `position` or after, given the
    first occurrence of b"stream" that may belong to one (`found`, -1 for none)."""
    while found >= 0:
        if found >= 3 and data[found - 3 : found] == b"end":
            if found - 3 >= position:
                return found - 3, found + 6, _END
        elif found >= 1 and found - 1 >= position and data[found - 1] in _BEFORE_STREAM:
            after = found + 6
            if data[after : after + 2] == b"\r\n":
                return found - 1, after + 2, _STREAM
            if data[after : after + 1] in (b"\n", b"\r"):
                return found - 1, after + 1, _STREAM
        found = data.find(b"stream", found + 1)
    return None


def _check_pdf(file: IO[bytes], size: int, raw_threats: set[_Threat], max_bytes: int) -> int:
    """Page count of a PDF whose header, cross-reference and trailer pypdf reads strictly."""
    file.seek(max(0, size - HEAD_BYTES))
    tail = file.read(HEAD_BYTES)
    end = tail.rfind(b"%%EOF")
    if end < 0 or not _is_padding(tail[end + len(b"%%EOF") :]):
        raise Refused(
            CONTENT,
            Bilingual(
                "the PDF is truncated or has data after its end",
                "ملف PDF ناقص أو فيه بيانات بعد نهايته",
            ),
        )
    file.seek(0)
    from pypdf.errors import LimitReachedError

    from tawasul_docs.domain.pdf_reader import open_pdf

    threats: set[_Threat] = set()
    try:
        # Object streams hold only the document's structure: pages' content, images and fonts
        # are in other streams, which inspection never decodes.
        with open_pdf(file, budget=max_bytes, max_xref_entries=_MAX_XREF_ENTRIES) as reader:
            if reader.is_encrypted:
                raise Refused(CONTENT, _Threat.ENCRYPTED.value)
            threats = _object_threats(reader)
            pages = len(reader.pages)
    except Refused:
        raise
    except LimitReachedError:  # mostly a stream past the budget, or pypdf's limits on counts
        raise Refused(
            CONTENT, Bilingual("the PDF expands too much", "ملف PDF يتضخم كثيرًا عند فك ضغطه")
        ) from None
    except Exception:  # pypdf raises many kinds on a broken file; all mean the same here
        raise Refused(
            CONTENT,
            Bilingual(
                "not a readable PDF (header, cross-reference or trailer)",
                "ليس ملف PDF مقروءًا (الترويسة أو جدول الإحالات أو الخاتمة)",
            ),
        ) from None
    for threat in _Threat:
        if threat in threats or threat in raw_threats:
            raise Refused(CONTENT, threat.value)
    if pages < 1:
        raise Refused(CONTENT, Bilingual("the PDF has no pages", "ملف PDF بلا صفحات"))
    return pages


def _object_threats(reader: PdfReader) -> set[_Threat]:
    """Threats in the trailer, everything reachable from it, and every other listed object.

    Reachable objects are the catalog (Names tree, OpenAction, AA, AcroForm), the pages (their
    AA, annotations and the annotations' actions) and all they refer to; one that is listed but
    cannot be read makes the file unreadable. A reference to an object that no table lists is
    null, as the PDF standard says (7.3.10), once pypdf has searched the bytes for it. The other
    listed objects, which nothing refers to (left from an earlier revision, or packed in a
    compressed object stream where the raw scan cannot see), are read where they can be;
    entries at offset 0 are skipped, macOS' Quartz writes deleted objects that way.
    """
    from pypdf.generic import IndirectObject

    listed = {
        (number, generation)
        for generation, table in reader.xref.items()
        for number, offset in table.items()
        if offset
    }
    listed |= {(number, 0) for number in reader.xref_objStm}
    if len(listed) > MAX_PDF_OBJECTS:
        raise Refused(CONTENT, _TOO_MANY_OBJECTS)
    walk = _Walk(reader, listed)
    walk.visit(reader.trailer, strict=True)
    for number, generation in sorted(listed):
        walk.visit(IndirectObject(number, generation, reader), strict=False)
    return walk.threats


class _Walk:
    """Every object met once, without recursion; direct objects nested at most _MAX_NESTING."""

    def __init__(self, reader: PdfReader, listed: set[tuple[int, int]]) -> None:
        self._reader = reader
        self._listed = listed
        self._visited: set[tuple[int, int]] = set()
        self.threats: set[_Threat] = set()

    def _resolve(self, reference: IndirectObject, *, strict: bool) -> PdfObject | None:
        try:
            return reference.get_object()
        except Exception as error:
            from pypdf.errors import LimitReachedError

            # A limit reached is a refusal, never an object skipped.
            if isinstance(error, LimitReachedError) or (
                strict and (reference.idnum, reference.generation) in self._listed
            ):
                raise
            return None

    def visit(self, root: PdfObject, *, strict: bool) -> None:
        from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

        stack: list[tuple[PdfObject | None, int]] = [(root, 0)]
        while stack:
            item, depth = stack.pop()
            if isinstance(item, IndirectObject):
                key = (item.idnum, item.generation)
                if key in self._visited:
                    continue
                self._visited.add(key)
                if len(self._visited) > MAX_PDF_OBJECTS:
                    raise Refused(CONTENT, _TOO_MANY_OBJECTS)
                item, depth = self._resolve(item, strict=strict), 0
            if depth > _MAX_NESTING:
                raise Refused(
                    CONTENT,
                    Bilingual(
                        "the PDF nests its objects too deeply",
                        "ملف PDF تتداخل فيه العناصر بعمق زائد",
                    ),
                )
            if isinstance(item, DictionaryObject):
                for key_name, value in dict.items(item):
                    self._check(str(key_name), value, strict=strict)
                    if str(key_name) in _AUTO_RUN_KEYS:
                        self._check_auto_run(value, strict=strict)
                    if isinstance(value, (DictionaryObject, ArrayObject, IndirectObject)):
                        stack.append((value, depth + 1))
            elif isinstance(item, ArrayObject):
                stack.extend(
                    (value, depth + 1)
                    for value in list(item)
                    if isinstance(value, (DictionaryObject, ArrayObject, IndirectObject))
                )

    def _check_auto_run(self, value: PdfObject, *, strict: bool) -> None:
        """The actions a file runs by itself: an /OpenAction's, each of an /AA's triggers',
        and those they chain to with /Next."""
        from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

        def resolved(item: PdfObject | None) -> PdfObject | None:
            return self._resolve(item, strict=strict) if isinstance(item, IndirectObject) else item

        first = resolved(value)
        if not isinstance(first, DictionaryObject):
            return  # an /OpenAction that is a destination: a page to show, no action
        # An action has its type (/S); an /AA maps each trigger to one.
        pending = [first] if "/S" in first else list(first.values())
        for _ in range(MAX_PDF_OBJECTS):
            if not pending:
                return
            item = resolved(pending.pop())
            if isinstance(item, ArrayObject):  # a /Next of several
                pending.extend(item)
            elif isinstance(item, DictionaryObject):
                if str(item.get("/S")) in _REACHING_ACTIONS:
                    self.threats.add(_Threat.REACHES_OUT)
                if "/Next" in item:
                    pending.append(item["/Next"])

    def _check(self, key: str, value: PdfObject, *, strict: bool) -> None:
        threat = _KEY_THREATS.get(key)
        if threat is not None:
            self.threats.add(threat)
        if key == "/URI" and str(value).strip().lower().startswith("javascript:"):
            self.threats.add(_Threat.JAVASCRIPT)
        if key in _VALUE_KEYS:
            from pypdf.generic import IndirectObject

            name = (
                self._resolve(value, strict=strict) if isinstance(value, IndirectObject) else value
            )
            threat = _VALUE_THREATS.get((key, str(name)))
            if threat is not None:
                self.threats.add(threat)


def _check_image(file: IO[bytes], kind: Kind, size: int) -> tuple[int, int]:
    """Width and height of a JPEG or PNG that Pillow decodes, whole and with nothing after it."""
    # Both plugins imported by name: registered before the first open, whichever thread it is.
    from PIL import Image, JpegImagePlugin, PngImagePlugin  # noqa: F401

    label = _LABELS[kind]
    not_plain = Refused(
        CONTENT, Bilingual(f"not a plain {label} image", f"ليست صورة {label} عادية")
    )
    file.seek(0)
    try:
        with Image.open(file, formats=[label]) as image:
            # A JPEG whose index (MPF) lists further pictures after it: an Ultra HDR photo's
            # gain map, a camera's preview. Every viewer shows the first.
            multi = kind is Kind.JPEG and image.format == "MPO"
            pictures = int(getattr(image, "n_frames", 1)) if multi else 1
            if (image.format != label and pictures == 1) or pictures > _MAX_PICTURES:
                raise not_plain
            width, height = image.size
            if width < 1 or height < 1:
                raise Refused(CONTENT, _undecodable(label))
            if width * height > MAX_PIXELS:
                raise Refused(CONTENT, _too_large())
            image.verify()
    except Refused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Refused(CONTENT, _too_large()) from None
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError… on a broken image
        raise Refused(CONTENT, _undecodable(label)) from None
    end = _jpeg_end(file) if kind is Kind.JPEG else _png_end(file, size)
    # Each further picture a whole JPEG right after the one before: nothing else may follow.
    for _ in range(pictures - 1):
        file.seek(end or 0)
        if end is None or file.read(2) != b"\xff\xd8":
            raise not_plain
        end = _jpeg_end(file, start=end)
    if end is None:
        raise Refused(CONTENT, Bilingual(f"the {label} image is truncated", f"صورة {label} ناقصة"))
    file.seek(end)
    trailing = file.read(TRAILING_TOLERANCE + 1)
    if not _is_padding(trailing):
        raise Refused(
            CONTENT,
            Bilingual(
                f"data after the end of the {label} image is not accepted",
                f"لا تُقبل بيانات بعد نهاية صورة {label}",
            ),
        )
    return width, height


# Pictures a JPEG's index may list, its own included (Ultra HDR: two; a camera's MPO: a few).
_MAX_PICTURES = 4


def _too_large() -> Bilingual:
    most = MAX_PIXELS // 1_000_000
    return Bilingual(
        f"the image is too large: at most {most} megapixels",
        f"الصورة كبيرة جدًا: {most} ميجابكسل على الأكثر",
    )


def _malformed(label: str) -> Bilingual:
    return Bilingual(f"not a well-formed {label} image", f"ليست صورة {label} سليمة البنية")


def _undecodable(label: str) -> Bilingual:
    return Bilingual(f"not a decodable {label} image", f"ليست صورة {label} يمكن قراءتها")


def _larger_than(max_bytes: int) -> Bilingual:
    return Bilingual(
        f"the file is larger than {max_bytes} bytes", f"الملف أكبر من {max_bytes} بايت"
    )


_EMPTY = Bilingual("the file is empty", "الملف فارغ")
_ZIP = Bilingual("ZIP archives are not accepted", "ملفات ZIP غير مقبولة")
_TOO_MANY_OBJECTS = Bilingual("the PDF has too many objects", "ملف PDF فيه عناصر كثيرة جدًا")


def _is_padding(data: bytes) -> bool:
    return len(data) <= TRAILING_TOLERANCE and all(byte in _PADDING for byte in data)


class _Reader:
    """Sequential reads over a file through a fixed-size buffer, with skips by seeking."""

    def __init__(self, file: IO[bytes], start: int) -> None:
        self._file = file
        self._offset = start  # file offset of self._buffer[0]
        self._buffer = b""
        self._position = 0
        file.seek(start)

    @property
    def offset(self) -> int:
        return self._offset + self._position

    def _fill(self, count: int) -> bool:
        if len(self._buffer) - self._position >= count:
            return True
        self._offset += self._position
        self._buffer = self._buffer[self._position :]
        self._position = 0
        while len(self._buffer) < count:
            chunk = self._file.read(CHUNK_BYTES)
            if not chunk:
                return False
            self._buffer += chunk
        return True

    def read(self, count: int) -> bytes | None:
        if not self._fill(count):
            return None
        data = self._buffer[self._position : self._position + count]
        self._position += count
        return data

    def skip(self, count: int) -> None:
        target = self.offset + count
        if target <= self._offset + len(self._buffer):
            self._position = target - self._offset
        else:
            self._file.seek(target)
            self._offset, self._buffer, self._position = target, b"", 0

    def find_marker(self) -> bool:
        """Moves to the next JPEG marker in entropy-coded data: 0xFF then neither 0x00 (a
        stuffed byte), 0xFF (fill) nor RST0-7. False at the end of the file."""
        while True:
            found = _ENTROPY_MARKER.search(self._buffer, self._position)
            if found is not None:
                self._position = found.start()
                return True
            # Keep the last byte: it may be a 0xFF whose next byte is in the next chunk.
            self._position = max(self._position, len(self._buffer) - 1)
            if not self._fill(len(self._buffer) - self._position + 1):
                return False


def _jpeg_end(file: IO[bytes], start: int = 0) -> int | None:
    """Offset just past the EOI that ends the JPEG (whose SOI is at `start`) main image, or
    None if there is none.

    Walks the marker segments from SOI (skipping APPn payloads, so an EXIF thumbnail's own EOI
    is not taken for the image's) and, after each SOS, the entropy-coded data.
    """
    reader = _Reader(file, start + len(b"\xff\xd8"))
    while True:
        prefix = reader.read(1)
        if prefix is None:
            return None
        if prefix != b"\xff":
            raise Refused(CONTENT, _malformed("JPEG"))
        marker = reader.read(1)
        while marker == b"\xff":
            marker = reader.read(1)
        if marker is None:
            return None
        code = marker[0]
        if code == 0xD9:
            return reader.offset
        if 0xD0 <= code <= 0xD7 or code == 0x01:
            continue
        if code in (0x00, 0xD8):
            raise Refused(CONTENT, _malformed("JPEG"))
        length = reader.read(2)
        if length is None:
            return None
        count = int.from_bytes(length, "big")
        if count < 2:
            raise Refused(CONTENT, _malformed("JPEG"))
        reader.skip(count - 2)
        if code == 0xDA and not reader.find_marker():
            return None


def _png_end(file: IO[bytes], size: int) -> int | None:
    """Offset just past the IEND chunk's CRC, or None if the chunks stop before it."""
    reader = _Reader(file, len(_PNG_MAGIC))
    while True:
        header = reader.read(8)
        if header is None:
            return None
        length = int.from_bytes(header[:4], "big")
        if length > 0x7FFFFFFF:
            raise Refused(CONTENT, _malformed("PNG"))
        reader.skip(length + 4)  # data and CRC, which Pillow's verify has checked
        if header[4:] == b"IEND":
            return reader.offset if reader.offset <= size else None
