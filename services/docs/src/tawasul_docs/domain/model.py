"""Documents as the docs service knows them: checked by their bytes, scanned, owned by one
account."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from tawasul_platform.catalog import Catalog
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.i18n import Bilingual
from tawasul_platform.identity import Principal, Role

from tawasul_docs.domain.inspection import ACCEPTED, Inspection, Kind, stored_name


def parse_document_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidArgument(
            {"document_id": Bilingual("not a document id", "ليس معرّف مستند")}
        ) from None


@dataclass(frozen=True)
class DocumentMetadata:
    """What the channel says about the file: the name is cleaned, the type is verified."""

    filename: str
    declared_content_type: str = ""
    sub_service_code: str = ""
    document_kind: str = ""
    # The exact size the channel declares, 0 when it does not know it.
    size_bytes: int = 0


@dataclass(frozen=True)
class Placement:
    """A request in a department's queue, with the documents it holds (routing's word)."""

    request_id: uuid.UUID
    department: str
    document_ids: tuple[uuid.UUID, ...]
    # Routing's count of its decisions on the request, this one included; 0: from before
    # routing counted them, applied as it comes.
    sequence: int = 0

    def outdated_by(self, later: Placement) -> bool:
        """Whether `later` (of the same request) is a decision no later than this one (a dead
        letter replayed, a late one): it would put the request back where it was."""
        return 0 < later.sequence <= self.sequence

    def then(self, later: Placement) -> Placement:
        """Where the request is once `later` is applied after this (its documents aside)."""
        if self.outdated_by(later):
            return self
        return replace(later, sequence=max(self.sequence, later.sequence))


class State(StrEnum):
    QUARANTINED = "quarantined"
    CLEAN = "clean"
    INFECTED = "infected"


# gRPC's per-message cost is most of what receiving costs: 10 MiB in 64 KiB chunks arrived in
# 98 ms on the bench's machine, in 256 KiB chunks in 75 (docs' CPU per upload 98 -> 82 ms).
MAX_CHUNK = 256 * 1024


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    allowed: frozenset[Kind]


def limits_for(
    catalog: Catalog, metadata: DocumentMetadata, *, default_max_bytes: int
) -> UploadLimits:
    """The sub-service's document schema when the channel names it, else the general limits."""
    if not metadata.sub_service_code and not metadata.document_kind:
        return UploadLimits(default_max_bytes, ACCEPTED)
    sub_service = catalog.sub_services.get(metadata.sub_service_code[:100])
    if sub_service is None:
        raise InvalidArgument(
            {
                "metadata.sub_service_code": Bilingual(
                    "not a sub-service of the catalog", "ليست خدمة فرعية من الدليل"
                )
            }
        )
    spec = next((d for d in sub_service.documents if d.kind == metadata.document_kind), None)
    if spec is None:
        raise InvalidArgument(
            {
                "metadata.document_kind": Bilingual(
                    "not a document kind of this sub-service",
                    "ليس نوع مستند من مستندات هذه الخدمة الفرعية",
                )
            }
        )
    return UploadLimits(spec.max_bytes, frozenset(Kind(t) for t in spec.media_types))


def declared_size(metadata: DocumentMetadata) -> int | None:
    """The size the upload must have, when the channel declared one.

    One over the limit is refused where an undeclared one is, at the chunk that crosses it,
    not before the client has sent its bytes: grpc.aio's client reports a call that ended
    while it was still writing as INTERNAL instead of the server's status (grpc/grpc#36066),
    which a third of such early refusals met on the e2e stack.
    """
    if metadata.size_bytes < 0:
        raise InvalidArgument(
            {
                "metadata.size_bytes": Bilingual(
                    "must be the file's size in bytes, or 0", "يجب أن يكون حجم الملف بالبايت، أو 0"
                )
            }
        )
    return metadata.size_bytes or None


def quarantine_key(document_id: uuid.UUID) -> str:
    """Where uploads waited for the scanner until 2026-12-03; older rows may still point here."""
    return f"quarantine/{document_id}"


def clean_key(document_id: uuid.UUID) -> str:
    return f"documents/{document_id}"


@dataclass(frozen=True)
class Document:
    id: uuid.UUID
    owner_id: str
    filename: str
    content_type: Kind
    size_bytes: int
    sha256: str
    object_key: str
    created_at: datetime
    state: State = State.CLEAN
    document_kind: str = ""
    sub_service_code: str = ""

    @classmethod
    def create(
        cls,
        *,
        id: uuid.UUID,
        owner_id: str,
        metadata: DocumentMetadata,
        inspection: Inspection,
        now: datetime,
    ) -> Document:
        """A checked upload, in quarantine until the scanner finds it clean: the row's state
        keeps it from every reader, so its bytes are stored where they stay."""
        return cls(
            id=id,
            owner_id=owner_id,
            filename=stored_name(metadata.filename, inspection.kind),
            content_type=inspection.kind,
            size_bytes=inspection.size_bytes,
            sha256=inspection.sha256,
            object_key=clean_key(id),
            created_at=now,
            state=State.QUARANTINED,
            document_kind=metadata.document_kind[:50],
            sub_service_code=metadata.sub_service_code[:100],
        )

    def scanned(self, *, clean: bool) -> Document:
        """The scanner's verdict: clean becomes readable (one stored under quarantine/ by an
        earlier version moves out of it), infected loses its bytes (the row keeps the key it
        had, for the record)."""
        if clean:
            return replace(self, state=State.CLEAN, object_key=clean_key(self.id))
        return replace(self, state=State.INFECTED)

    def readable_by(self, principal: Principal, departments: frozenset[str]) -> bool:
        """The beneficiary who uploaded it, whatever its state; once it is clean, a reviewer
        of a department holding a request it is attached to (`departments`)."""
        if principal.role == Role.REVIEWER:
            return self.state is State.CLEAN and bool(departments & principal.departments)
        return principal.is_beneficiary and principal.subject == self.owner_id


class Change(StrEnum):
    STORED = "stored"
    REJECTED = "rejected"
    CLEAN = "clean"
    INFECTED = "infected"
    ATTACHED = "attached"
    REMOVED = "removed"


@dataclass(frozen=True)
class DocumentEvent:
    """A step of a document's life, published for whoever keeps its record."""

    change: Change
    document_id: uuid.UUID
    owner_id: str
    at: datetime
    content_type: str = ""
    size_bytes: int = 0
    sha256: str = ""
    document_kind: str = ""
    sub_service_code: str = ""
    request_id: uuid.UUID | None = None
    reason: str = ""

    @classmethod
    def of(
        cls,
        document: Document,
        change: Change,
        at: datetime,
        *,
        request_id: uuid.UUID | None = None,
        reason: str = "",
    ) -> DocumentEvent:
        return cls(
            change=change,
            document_id=document.id,
            owner_id=document.owner_id,
            at=at,
            content_type=document.content_type.value,
            size_bytes=document.size_bytes,
            sha256=document.sha256,
            document_kind=document.document_kind,
            sub_service_code=document.sub_service_code,
            request_id=request_id,
            reason=reason,
        )

    @classmethod
    def rejected(
        cls,
        *,
        document_id: uuid.UUID,
        owner_id: str,
        metadata: DocumentMetadata,
        size_bytes: int,
        reason: str,
        at: datetime,
    ) -> DocumentEvent:
        """An upload refused before it became a document: only what the channel said."""
        return cls(
            change=Change.REJECTED,
            document_id=document_id,
            owner_id=owner_id,
            at=at,
            size_bytes=size_bytes,
            document_kind=metadata.document_kind[:50],
            sub_service_code=metadata.sub_service_code[:100],
            reason=reason,
        )


@dataclass(frozen=True)
class DownloadLink:
    document: Document
    url: str
    expires_at: datetime
