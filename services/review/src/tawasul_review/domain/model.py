"""A request as it sits in a department's queue, and what reviewers may do with it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tawasul_platform.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from tawasul_platform.identity import Principal, Role

MIN_REJECTION_MESSAGE = 10
MAX_MESSAGE = 2000


class State(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    DECIDED = "decided"
    # The beneficiary cancelled it before a decision: out of the queue, nothing to decide.
    WITHDRAWN = "withdrawn"


OPEN_STATES = frozenset({State.QUEUED, State.CLAIMED})


class Decision(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"


class Status(StrEnum):
    """The beneficiary-facing status each transition leads to."""

    UNDER_REVIEW = "under_review"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Contact:
    mobile: str
    email: str
    locale: str


@dataclass(frozen=True, order=True)
class QueuePosition:
    """Where an item stands in its queue: most followed-up first, then oldest first.

    `rank` is the negated priority, so that the natural order of positions is the queue's.
    """

    rank: int
    queued_at: datetime
    request_number: str


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    actor: str
    action: str
    note: str = ""


@dataclass(frozen=True)
class StatusChanged:
    item: WorkItem
    status: Status
    actor: str
    message: str
    at: datetime


@dataclass
class WorkItem:
    request_id: uuid.UUID
    request_number: str
    department: str
    queue: str
    sub_service_code: str
    description: str
    applicant_id: str
    document_ids: tuple[str, ...]
    contact: Contact
    state: State
    queued_at: datetime
    assignee: str = ""
    decision: Decision | None = None
    decision_message: str = ""
    # Raised by each follow-up of the beneficiary (seed 003): such items come first.
    priority: int = 0
    new_history: list[HistoryEntry] = field(default_factory=list, repr=False, compare=False)
    events: list[StatusChanged] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def enqueue(
        cls,
        *,
        request_id: uuid.UUID,
        request_number: str,
        department: str,
        queue: str,
        sub_service_code: str,
        description: str,
        applicant_id: str,
        document_ids: tuple[str, ...],
        contact: Contact,
        now: datetime,
    ) -> WorkItem:
        item = cls(
            request_id=request_id,
            request_number=request_number,
            department=department,
            queue=queue,
            sub_service_code=sub_service_code,
            description=description,
            applicant_id=applicant_id,
            document_ids=document_ids,
            contact=contact,
            state=State.QUEUED,
            queued_at=now,
        )
        item.new_history.append(HistoryEntry(now, "routing", "queued", queue))
        return item

    @property
    def position(self) -> QueuePosition:
        return QueuePosition(-self.priority, self.queued_at, self.request_number)

    def followed_up(self, *, count: int, message: str, now: datetime) -> None:
        """The beneficiary asked again: the item moves up its queue while it is open."""
        if self.state not in OPEN_STATES:
            return
        self.priority = max(self.priority, count)
        self.new_history.append(HistoryEntry(now, "applicant", "followed_up", message))

    def withdraw(self, *, reason: str, now: datetime) -> None:
        """The beneficiary cancelled: a decided item keeps its decision."""
        if self.state not in OPEN_STATES:
            return
        self.state = State.WITHDRAWN
        self.new_history.append(HistoryEntry(now, "applicant", "cancelled", reason))

    def ensure_visible_to(self, reviewer: Principal) -> None:
        if reviewer.role is not Role.REVIEWER or self.department not in reviewer.departments:
            raise PermissionDenied(f"not a reviewer of department {self.department!r}")

    def claim(self, reviewer: Principal, now: datetime) -> None:
        self.ensure_visible_to(reviewer)
        if self.state is State.CLAIMED and self.assignee == reviewer.subject:
            return
        if self.state is not State.QUEUED:
            holder = f" by {self.assignee}" if self.assignee else ""
            raise FailedPrecondition(f"request {self.request_number} is {self.state}{holder}")
        self.state = State.CLAIMED
        self.assignee = reviewer.subject
        self._record(StatusChanged(self, Status.UNDER_REVIEW, reviewer.subject, "", now), "claimed")

    def decide(self, reviewer: Principal, decision: Decision, message: str, now: datetime) -> None:
        self.ensure_visible_to(reviewer)
        if self.state is not State.CLAIMED:
            raise FailedPrecondition(
                f"request {self.request_number} is {self.state}; claim it before deciding"
            )
        if self.assignee != reviewer.subject:
            raise FailedPrecondition(f"request {self.request_number} is held by {self.assignee}")
        text = message.strip()
        if decision is Decision.REJECT and len(text) < MIN_REJECTION_MESSAGE:
            raise InvalidArgument(
                {
                    "message": f"a rejection tells the beneficiary why, at least "
                    f"{MIN_REJECTION_MESSAGE} characters"
                }
            )
        if len(text) > MAX_MESSAGE:
            raise InvalidArgument({"message": f"at most {MAX_MESSAGE} characters"})
        self.state = State.DECIDED
        self.decision = decision
        self.decision_message = text
        status = Status.ACCEPTED if decision is Decision.ACCEPT else Status.REJECTED
        self._record(StatusChanged(self, status, reviewer.subject, text, now), decision.value)

    def _record(self, event: StatusChanged, action: str) -> None:
        self.new_history.append(HistoryEntry(event.at, event.actor, action, event.message))
        self.events.append(event)
