"""Routing decisions: which department queue a request goes to, at which priority, and why.

Each decision raises a RequestRouted event for review.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from tawasul_routing.domain.rules import Attributes, RoutingRules


@dataclass(frozen=True)
class IncomingRequest:
    """What routing keeps of a submitted request: enough to pass it on to review unchanged."""

    request_id: uuid.UUID
    request_number: str
    sub_service_code: str
    description: str
    applicant_id: str
    document_ids: tuple[str, ...]
    mobile: str
    email: str
    locale: str
    submitted_at: datetime
    catalog_version: int
    subject_id: str
    fields: Mapping[str, str]
    applicant_kind: str
    subject_nationality: str
    channel: str

    def attributes(self) -> Attributes:
        # Routing does not hear of follow-ups, so its own decisions count none.
        return Attributes(
            sub_service_code=self.sub_service_code,
            applicant_kind=self.applicant_kind,
            subject_nationality=self.subject_nationality,
            channel=self.channel,
            fields=self.fields,
        )


@dataclass
class Decision:
    request: IncomingRequest
    department: str
    queue: str
    priority: int
    rule: str
    decided_at: datetime
    events: list[RequestRouted] = field(default_factory=list, repr=False, compare=False)


@dataclass(frozen=True)
class RequestRouted:
    decision: Decision


def decide(request: IncomingRequest, rules: RoutingRules, now: datetime) -> Decision:
    """The first decision: the rules over the catalog's sub-service → department default."""
    route = rules.route(request.attributes())
    decision = Decision(
        request=request,
        department=route.department,
        queue=route.queue,
        priority=route.priority,
        rule=route.rule,
        decided_at=now,
    )
    decision.events.append(RequestRouted(decision))
    return decision
