"""Routing decisions: which department queue a request goes to, and by which rule."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from tawasul_platform.catalog import Catalog
from tawasul_platform.errors import InvalidArgument


@dataclass(frozen=True)
class IncomingRequest:
    """What routing learns of a submitted request, passed on to review unchanged."""

    request_id: uuid.UUID
    request_number: str
    sub_service_code: str
    description: str
    applicant_id: str
    document_ids: tuple[str, ...]
    mobile: str
    email: str
    locale: str


@dataclass
class Decision:
    request: IncomingRequest
    department: str
    queue: str
    rule: str
    decided_at: datetime
    events: list[RequestRouted] = field(default_factory=list, repr=False, compare=False)


@dataclass(frozen=True)
class RequestRouted:
    decision: Decision


def queue_of(department: str) -> str:
    return f"{department}.default"


def decide(request: IncomingRequest, catalog: Catalog, now: datetime) -> Decision:
    """The catalog names each sub-service's department; its default queue takes the request."""
    sub_service = catalog.sub_services.get(request.sub_service_code)
    if sub_service is None:
        raise InvalidArgument({"sub_service_code": f"not in catalog: {request.sub_service_code}"})
    decision = Decision(
        request=request,
        department=sub_service.department,
        queue=queue_of(sub_service.department),
        rule=f"catalog.v{catalog.version}:{sub_service.code}",
        decided_at=now,
    )
    decision.events.append(RequestRouted(decision))
    return decision
