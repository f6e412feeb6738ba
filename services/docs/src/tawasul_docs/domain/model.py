"""Documents as the docs service knows them: checked by their bytes, owned by one account."""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tawasul_platform.errors import InvalidArgument
from tawasul_platform.identity import Principal, Role

MAX_FILENAME = 255
DEFAULT_FILENAME = "document"
# Characters that mean something to file systems or shells; replaced, never stored.
_RESERVED = frozenset('/\\<>:"|?*')


class ContentType(StrEnum):
    PDF = "application/pdf"
    JPEG = "image/jpeg"


# The signature each allowed type starts with; the declared type is never trusted.
MAGIC_NUMBERS: tuple[tuple[bytes, ContentType], ...] = (
    (b"%PDF-", ContentType.PDF),
    (b"\xff\xd8\xff", ContentType.JPEG),
)
_LONGEST_MAGIC = max(len(magic) for magic, _ in MAGIC_NUMBERS)


def detect_content_type(head: bytes) -> ContentType:
    """The type of a file from its first bytes; InvalidArgument unless it is PDF or JPEG."""
    for magic, content_type in MAGIC_NUMBERS:
        if head.startswith(magic):
            return content_type
    raise InvalidArgument({"content": "only PDF or JPEG files, detected by content"})


def sanitize_filename(name: str) -> str:
    """A display name safe to store and to offer on download: no path, no control characters.

    Bidirectional overrides (U+202E …) are format characters and go too, so "fdp.exe" cannot be
    shown as "exe.pdf". At most MAX_FILENAME characters, keeping a short extension.
    """
    text = unicodedata.normalize("NFC", name)
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category.startswith("C"):
            continue
        kept.append(" " if category.startswith("Z") else "_" if char in _RESERVED else char)
    text = " ".join("".join(kept).split()).strip(". ")
    if not text:
        return DEFAULT_FILENAME
    if len(text) <= MAX_FILENAME:
        return text
    stem, dot, extension = text.rpartition(".")
    if dot and stem and 0 < len(extension) <= 16:
        return f"{stem[: MAX_FILENAME - len(extension) - 1].rstrip('. ')}.{extension}"
    return text[:MAX_FILENAME].rstrip(". ")


def parse_document_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidArgument({"document_id": "not a document id"}) from None


@dataclass(frozen=True)
class DocumentMetadata:
    """What the channel says about the file; informative only."""

    filename: str
    declared_content_type: str = ""


@dataclass(frozen=True)
class Content:
    """A complete, checked file."""

    data: bytes
    content_type: ContentType
    size_bytes: int
    sha256: str


class Upload:
    """Collects a file's chunks, refusing it as soon as it exceeds the limit or shows its type.

    The type is decided from the first bytes, so a disallowed file is refused without reading
    the rest of it.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self._data = bytearray()
        self._hash = hashlib.sha256()
        self._type: ContentType | None = None

    @property
    def size(self) -> int:
        return len(self._data)

    def add(self, chunk: bytes) -> None:
        if self.size + len(chunk) > self.max_bytes:
            raise InvalidArgument(
                {"chunk": f"the file exceeds the limit of {self.max_bytes} bytes"}
            )
        self._data += chunk
        self._hash.update(chunk)
        if self._type is None and self.size >= _LONGEST_MAGIC:
            self._type = detect_content_type(bytes(self._data[:_LONGEST_MAGIC]))

    def finish(self) -> Content:
        if not self._data:
            raise InvalidArgument({"chunk": "the file is empty"})
        content_type = self._type or detect_content_type(bytes(self._data))
        return Content(
            data=bytes(self._data),
            content_type=content_type,
            size_bytes=self.size,
            sha256=self._hash.hexdigest(),
        )


def object_key(document_id: uuid.UUID) -> str:
    return f"documents/{document_id}"


@dataclass(frozen=True)
class Document:
    id: uuid.UUID
    owner_id: str
    filename: str
    content_type: ContentType
    size_bytes: int
    sha256: str
    object_key: str
    created_at: datetime

    @classmethod
    def create(
        cls,
        *,
        id: uuid.UUID,
        owner_id: str,
        metadata: DocumentMetadata,
        content: Content,
        now: datetime,
    ) -> Document:
        return cls(
            id=id,
            owner_id=owner_id,
            filename=sanitize_filename(metadata.filename),
            content_type=content.content_type,
            size_bytes=content.size_bytes,
            sha256=content.sha256,
            object_key=object_key(id),
            created_at=now,
        )

    def readable_by(self, principal: Principal) -> bool:
        """The beneficiary who uploaded it, or any reviewer."""
        if principal.role == Role.REVIEWER:
            return True
        return principal.is_beneficiary and principal.subject == self.owner_id


@dataclass(frozen=True)
class DownloadLink:
    document: Document
    url: str
    expires_at: datetime
