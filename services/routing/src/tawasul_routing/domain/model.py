"""Routing decisions: which department queue a request goes to, at which priority, and why.

A request gets one decision when it is submitted, one more for every transfer, and one more
when the beneficiary's follow-ups or answers raise its priority; the latest is where it is
now. Each decision raises a RequestRouted event for review.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from tawasul_platform.errors import InvalidArgument, Unavailable

from tawasul_routing.domain.rules import Attributes, RoutingRules


@dataclass(frozen=True)
class IncomingRequest:
    """What routing keeps of a submitted request: enough to pass it on to review unchanged
    and to route it again on a transfer."""

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
    # As submitted, with what the beneficiary's answers replaced since.
    fields: Mapping[str, str]
    applicant_kind: str
    subject_nationality: str
    channel: str
    # Passed on to review, which searches by them.
    subject_name_ar: str = ""
    subject_name_en: str = ""
    # The rejected request this one corrects, if any: its reviewer reads why (SPEC §2).
    cites_request_number: str = ""
    # The follow-ups counted when the request was last decided on (0 until one is).
    follow_up_count: int = 0
    # The department intake filed it under (catalog v`catalog_version`'s): where it goes if
    # routing's catalog has dropped its sub-service since.
    department_code: str = ""

    def attributes(self) -> Attributes:
        return Attributes(
            sub_service_code=self.sub_service_code,
            applicant_kind=self.applicant_kind,
            subject_nationality=self.subject_nationality,
            channel=self.channel,
            fields=self.fields,
            follow_up_count=self.follow_up_count,
        )


@dataclass(frozen=True)
class FollowUp:
    """The beneficiary asked after the request again; `count` includes this time."""

    request_id: uuid.UUID
    count: int


@dataclass(frozen=True)
class Answer:
    """The beneficiary answered an information request; `fields` replace the request's (as
    review merges them), so rules on field values see the answer."""

    request_id: uuid.UUID
    fields: Mapping[str, str]


@dataclass(frozen=True)
class Transfer:
    """A reviewer sent the request to another department; `reason` is their internal note.
    `sequence`: review's count of the status changes it published for the request, this one
    included (0: from before review counted them). `catalog_version`: the catalog review
    checked the department against (0: from before review stated it)."""

    request_id: uuid.UUID
    to_department: str
    reason: str
    sequence: int = 0
    catalog_version: int = 0

    def known(self, rules: RoutingRules) -> bool:
        """Whether the catalog has the department."""
        return self.to_department in rules.catalog.departments

    def check(self, rules: RoutingRules) -> None:
        """Refuses a department the catalog does not have: retrying cannot help. Unless
        review checked it against a newer catalog (review runs it ahead of routing in a
        deploy): Unavailable, so that the consumer holds the transfer until routing runs it
        too, instead of dead-lettering it and leaving review's item transferred for good."""
        if self.known(rules):
            return
        v = rules.catalog.version
        if self.catalog_version > v:
            raise Unavailable(
                f"transfer of request {self.request_id} to {self.to_department} was checked"
                f" against catalog v{self.catalog_version}, whose department routing's catalog"
                f" v{v} lacks: held until routing runs the newer one"
            )
        raise InvalidArgument({"transfer_to_department": f"not a department of catalog v{v}"})


@dataclass
class Decision:
    request: IncomingRequest
    # 1 at submission, one more for each transfer or raised priority.
    sequence: int
    department: str
    queue: str
    priority: int
    rule: str
    decided_at: datetime
    transfer_reason: str = ""
    transferred_from: str = ""
    # The highest sequence of review's status changes applied to the request (a transfer's):
    # a transfer with one no higher, replayed or late, is older than where the request is.
    status_sequence: int = 0
    events: list[RequestRouted] = field(default_factory=list, repr=False, compare=False)

    def transfer(self, transfer: Transfer, rules: RoutingRules, now: datetime) -> Decision | None:
        """The next decision: the target department's queue, unless one of its rules says
        otherwise; named `transfer:<from>-><to>`, with the rule that decided, if one did. None
        for a transfer older than one applied already (a dead letter replayed, a late one):
        it would send the request back to where it was."""
        if transfer.sequence and transfer.sequence <= self.status_sequence:
            return None
        transfer.check(rules)
        to = transfer.to_department
        route = rules.route(self.request.attributes(), department=to)
        rule = f"transfer:{self.department}->{to}"
        decision = Decision(
            request=self.request,
            sequence=self.sequence + 1,
            department=route.department,
            queue=route.queue,
            priority=route.priority,
            rule=rule if route.by_default else f"{rule}+{route.rule}",
            decided_at=now,
            transfer_reason=transfer.reason,
            transferred_from=self.department,
            status_sequence=max(self.status_sequence, transfer.sequence),
        )
        decision.events.append(RequestRouted(decision))
        return decision

    def followed_up(
        self, follow_up: FollowUp, rules: RoutingRules, now: datetime
    ) -> Decision | None:
        """The next decision when the follow-ups raise the priority under the rules of the
        department the request is in; None when they do not (or a stale count arrives). A
        follow-up hurries a request, it never moves it: the queue stays."""
        if follow_up.count <= self.request.follow_up_count:
            return None
        request = replace(self.request, follow_up_count=follow_up.count)
        return self._hurried(request, "follow-up", rules, now)

    def answered(self, answer: Answer, rules: RoutingRules, now: datetime) -> Decision | None:
        """The next decision when the fields the answer replaces raise the priority under the
        rules of the department the request is in; None when they do not. As with a
        follow-up the queue stays: review holds the request where it is while it waits."""
        fields = {**self.request.fields, **answer.fields}
        if fields == self.request.fields:
            return None
        return self._hurried(replace(self.request, fields=fields), "answer", rules, now)

    def _hurried(
        self, request: IncomingRequest, cause: str, rules: RoutingRules, now: datetime
    ) -> Decision | None:
        """`request`, changed by the beneficiary, at the priority the rules now give it where
        it is, named `<cause>+<the rule that gave it>`; None unless that is higher. A
        transfer's reason and origin stay: the request is still where that transfer put it."""
        route = rules.route(request.attributes(), department=self.department)
        if route.priority <= self.priority:
            return None
        decision = Decision(
            request=request,
            sequence=self.sequence + 1,
            department=self.department,
            queue=self.queue,
            priority=route.priority,
            rule=f"{cause}+{route.prioritised_by}",
            decided_at=now,
            transfer_reason=self.transfer_reason,
            transferred_from=self.transferred_from,
            status_sequence=self.status_sequence,
        )
        decision.events.append(RequestRouted(decision))
        return decision


@dataclass(frozen=True)
class RequestRouted:
    decision: Decision


def decide(request: IncomingRequest, rules: RoutingRules, now: datetime) -> Decision:
    """The first decision: the rules over the catalog's sub-service → department default.

    A sub-service routing's catalog lacks is one a newer catalog has (intake runs it ahead of
    routing in a deploy): Unavailable, so that the consumer holds the request until routing
    runs it too, instead of dead-lettering it. Else the catalog has dropped it since the
    request was filed: it goes to the department it was filed under, named
    `catalog-dropped:<code>` (with `+` and the rule when one decided)."""
    code = request.sub_service_code
    dropped = code not in rules.catalog.sub_services
    if dropped and request.catalog_version > rules.catalog.version:
        raise Unavailable(
            f"request {request.request_id} was filed under catalog v{request.catalog_version},"
            f" whose sub-service {code} routing's catalog v{rules.catalog.version} lacks:"
            " held until routing runs the newer one"
        )
    route = rules.route(request.attributes(), filed_under=request.department_code)
    rule = route.rule
    if dropped:
        rule = f"catalog-dropped:{code}" + ("" if route.by_default else f"+{route.rule}")
    decision = Decision(
        request=request,
        sequence=1,
        department=route.department,
        queue=route.queue,
        priority=route.priority,
        rule=rule,
        decided_at=now,
    )
    decision.events.append(RequestRouted(decision))
    return decision
