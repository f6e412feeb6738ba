"""Docs' wire events: a document's steps on tawasul.documents.events.v1."""

from __future__ import annotations

from tawasul.events.v1 import events_pb2
from tawasul_platform.events import OutgoingEvent, envelope
from tawasul_platform.topics import DOCUMENT_EVENTS

from tawasul_docs.domain.model import Change, DocumentEvent

CHANGE_TO_WIRE = {
    Change.STORED: events_pb2.DOCUMENT_CHANGE_STORED,
    Change.REJECTED: events_pb2.DOCUMENT_CHANGE_REJECTED,
    Change.CLEAN: events_pb2.DOCUMENT_CHANGE_CLEAN,
    Change.INFECTED: events_pb2.DOCUMENT_CHANGE_INFECTED,
    Change.ATTACHED: events_pb2.DOCUMENT_CHANGE_ATTACHED,
    Change.REMOVED: events_pb2.DOCUMENT_CHANGE_REMOVED,
}


def to_event(event: DocumentEvent) -> OutgoingEvent:
    request_id = "" if event.request_id is None else str(event.request_id)
    return envelope(
        topic=DOCUMENT_EVENTS,
        event_type="tawasul.documents.changed",
        producer="docs",
        request_id=request_id,
        occurred_at=event.at,
        key=str(event.document_id),
        fill=events_pb2.Envelope(
            document_changed=events_pb2.DocumentChanged(
                document_id=str(event.document_id),
                change=CHANGE_TO_WIRE[event.change],
                owner_id=event.owner_id,
                content_type=event.content_type,
                size_bytes=event.size_bytes,
                sha256=event.sha256,
                document_kind=event.document_kind,
                sub_service_code=event.sub_service_code,
                request_id=request_id,
                reason=event.reason,
            )
        ),
    )
