"""A request as it sits in a department's queue, and what reviewers may do with it.

The state machine (every other move is refused):

    queued ──claim──► claimed ──accept/reject──► decided
      ▲   ◄─release / lapse─┘ │ └──request information──► waiting ──answer──► claimed | queued
      │                       └──transfer──► transferred ──routed again──► queued (new dept)
      └────────────────────────────────────────────── waiting ──deadline──► closed
    closed ──an answer given by the deadline, arriving after it──► claimed | queued
    decided (rejected) ──appealed by the beneficiary──► queued, for another reviewer
    decided (accepted) ──the department carried out the transaction──► processed
    queued | claimed | waiting | transferred ──cancelled by the beneficiary──► withdrawn
                                             (or by the office: the person off the record)

The SLA clock starts at submission, pauses while the request waits on the beneficiary, stops
when the request is decided or withdrawn (an appeal runs on a clock of its own: see
tawasul_platform.appeals), and raises alerts at 50 %, 75 % and 100 % of the time (the last a
breach).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from tawasul_calendar import Sla, SlaClock, WorkingCalendar
from tawasul_platform import appeals
from tawasul_platform.errors import FailedPrecondition, InvalidArgument, NotFound
from tawasul_platform.hygiene import visible_length
from tawasul_platform.i18n import CHARACTERS, Bilingual, Noun, at_most
from tawasul_platform.identity import Principal, Role

# A message's problems, for the reviewer who typed it, in either language.
REQUIRED = Bilingual("required", "مطلوب")
CONTROLS = Bilingual("control characters are not allowed", "لا يُسمح بمحارف التحكم")
# An item outside the reviewer's departments does not exist for them.
NOT_IN_YOUR_DEPARTMENTS = Bilingual(
    "no such request in your departments", "لا يوجد هذا الطلب في الأقسام التي تعمل فيها"
)
ITEMS = Noun("item", "items", "بند واحد", "بندان", "بنود", "بندًا", "بند")
MIN_REJECTION_MESSAGE = 10
MAX_MESSAGE = 2000
MAX_MISSING = 20
SLA_MARKS = (50, 75, 100)
# An answer given by its deadline may still be on its way from intake when the deadline
# passes; the sweep closes the request this long after it, so that such an answer rarely
# finds it closed (and reopens it when it does).
ANSWER_IN_FLIGHT = timedelta(minutes=2)


class State(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    DECIDED = "decided"
    # The beneficiary cancelled it before a decision: out of the queue, nothing to decide.
    WITHDRAWN = "withdrawn"
    WAITING = "waiting_on_applicant"
    TRANSFERRED = "transferred"
    CLOSED = "closed"
    # Accepted, and the department carried out the transaction: nothing more to do.
    PROCESSED = "processed"


# What a refusal calls each state, in Arabic: "الطلب TW… <this>".
_STATE_AR = {
    State.QUEUED: "في قائمة الانتظار",
    State.CLAIMED: "مُسنَد",
    State.DECIDED: "بُتَّ فيه",
    State.WITHDRAWN: "مُلغى",
    State.WAITING: "بانتظار رد المستفيد",
    State.TRANSFERRED: "محال إلى قسم آخر",
    State.CLOSED: "مغلق",
    State.PROCESSED: "تمت معالجته",
}


def _request_is(
    number: str, state: State, holder: str = "", then: str = "", then_ar: str = ""
) -> Bilingual:
    """A refusal naming the request's state (and holder): "request TW… is closed"."""
    held = f" by {holder}" if holder else ""
    if holder and state is State.CLAIMED:
        held_ar = f" إلى {holder}"
    else:
        held_ar = f" (المراجع {holder})" if holder else ""
    ar = f"الطلب {number} {_STATE_AR[state]}{held_ar}{then_ar}"
    return Bilingual(f"request {number} is {state}{held}{then}", ar)


# In a queue, where reviewers see and take it.
OPEN_STATES = frozenset({State.QUEUED, State.CLAIMED})
# Still the office's to finish: the beneficiary may cancel, follow-ups count.
UNFINISHED = frozenset({State.QUEUED, State.CLAIMED, State.WAITING, State.TRANSFERRED})


class Decision(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"


class Status(StrEnum):
    """The beneficiary-facing status each transition leads to."""

    UNDER_REVIEW = "under_review"
    NEEDS_MORE_INFO = "needs_more_info"
    RETURNED_BY_APPLICANT = "returned_by_applicant"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    PROCESSED = "processed"
    CLOSED = "closed"
    TRANSFERRED = "transferred"
    # Published only to restate a cancellation a closure overtook (`WorkItem.withdraw`):
    # intake took the cancellation itself.
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Contact:
    mobile: str
    email: str
    locale: str


@dataclass(frozen=True)
class Missing:
    """One thing the beneficiary must still provide: a document kind, a field, or other."""

    kind: str
    name: str
    description: str


@dataclass(frozen=True)
class Reason:
    """A canned reason for a decision (the reason catalog), in both languages."""

    code: str
    ar: str
    en: str
    decisions: frozenset[Decision]


# A message sent again this soon, word for word, is the reviewer's retry of one whose reply
# was lost: the beneficiary would be texted twice.
MESSAGE_RESENT = timedelta(minutes=10)

# Why the sweep closes a request: no reviewer decides it, so it is in no reason catalog.
NO_ANSWER = Reason(
    "no-answer",
    "لم تصل المعلومات المطلوبة في الموعد المحدد",
    "The information asked for was not received by its deadline",
    frozenset(),
)


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
    internal: bool = False


MAX_NAMES = 6
MAX_NAME = 200


def names_of(subject: Sequence[str], fields: Mapping[str, str]) -> tuple[str, ...]:
    """What a request is searched by its names for: the subject's names, and any name the
    sub-service's fields carry (a worker's, a dependent's, a corrected name)."""
    named = [*subject, *(value for key, value in sorted(fields.items()) if "name" in key)]
    return tuple(dict.fromkeys(n.strip()[:MAX_NAME] for n in named if n.strip()))[:MAX_NAMES]


@dataclass(frozen=True)
class Receipt:
    """Notify's report of a message sent about a request (`cause`: the event it told of)."""

    event_id: str
    request_id: uuid.UUID
    at: datetime
    channel: str
    status: str
    cause: str


@dataclass(frozen=True)
class StatusChanged:
    """What the beneficiary's side learns; `internal_note` stays with the office."""

    item: WorkItem
    status: Status
    actor: str
    message: str
    at: datetime
    reason: Reason | None = None
    missing: tuple[Missing, ...] = ()
    respond_by: datetime | None = None
    transfer_to: str = ""
    # A transfer's: the version of the catalog `transfer_to` was checked against, so that a
    # routing running an older one waits for it rather than refusing a department it lacks.
    catalog_version: int = 0
    internal_note: str = ""
    due_at: datetime | None = None
    # An answer given in time, applied after the sweep closed the request: the beneficiary
    # was told it closed.
    reopened: bool = False
    # The outcome restated for a cancellation that came after it: the beneficiary was told
    # the request was cancelled.
    cancel_too_late: bool = False
    # The status the beneficiary was last told, restated to carry a reviewer's message.
    reviewer_message: bool = False
    # A decision of the beneficiary's appeal: none lies against it.
    decides_appeal: bool = False
    # A rejection that may be appealed: until when, by intake's rule (which intake computes
    # from this event's time, the decision's), so that the beneficiary is told the date.
    appeal_until: datetime | None = None
    # The request's count of status changes published, this one included (WorkItem.announce):
    # consumers skip one no later than one they applied (a dead letter replayed, a late one).
    sequence: int = 0


@dataclass(frozen=True)
class SlaCrossed:
    item: WorkItem
    percent: int
    due_at: datetime
    at: datetime
    # The department's supervisors: on a breach, and on a warning when no one holds the item.
    supervisors: tuple[str, ...] = ()


Event = StatusChanged | SlaCrossed


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
    clock: SlaClock
    assignee: str = ""
    decision: Decision | None = None
    decision_message: str = ""
    reason_code: str = ""
    # Raised by each follow-up of the beneficiary (seed 003): such items come first.
    priority: int = 0
    claimed_until: datetime | None = None
    # Who asked for information, to get the answer back.
    last_holder: str = ""
    missing: tuple[Missing, ...] = ()
    respond_by: datetime | None = None
    public_status: Status | None = None
    # The last SLA mark alerted (0, 50, 75, 100) and when the next one falls (None: none).
    sla_alerted: int = 0
    sla_next_at: datetime | None = None
    due_at: datetime | None = None
    # While an appeal: the reviewer who rejected, who may not decide it again (four-eyes).
    appeal_of: str = ""
    # The person the request is about, and their names as the request carried them (Arabic,
    # Latin): what reviewers search by, with the applicant's ID and mobile.
    subject_id: str = ""
    names: tuple[str, ...] = ()
    # The sub-service's fields (iqama, visa, passport numbers …), as the request carried
    # them and the answers to information requests corrected them.
    fields: dict[str, str] = field(default_factory=dict)
    # The rejected request this one corrects, if any (SPEC §2: filed anew, linked to it).
    cites_request_number: str = ""
    # How many status changes were published for the request: the last one's sequence.
    status_sequence: int = 0
    # Where the latest of routing's decisions applied stands (0, 0: none stamped yet): the
    # sequence of the transfer it answered (RequestRouted.transfer_sequence), then routing's
    # count. A decision no later is older than where the item is (a dead letter replayed, a
    # late one); review's count of transfers orders them first, as routing's is numbered again
    # when a restore of its database is replayed.
    routed_transfer: int = 0
    routed_sequence: int = 0
    # The idempotency key of the ClaimNext that claimed it, while that claim lasts: the same
    # call sent again by its holder answers this item (`claim_next`).
    claim_key: str = ""
    new_history: list[HistoryEntry] = field(default_factory=list, repr=False, compare=False)
    events: list[Event] = field(default_factory=list, repr=False, compare=False)
    # The names as stored, once an answer changed them: the store writes the new ones and
    # indexes those added.
    renamed_from: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

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
        submitted_at: datetime | None = None,
        sla: Sla | None = None,
        priority: int = 0,
        subject_id: str = "",
        names: tuple[str, ...] = (),
        fields: dict[str, str] | None = None,
        cites_request_number: str = "",
        routed_sequence: int = 0,
        routed_transfer: int = 0,
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
            clock=SlaClock(started_at=submitted_at or now, sla=sla or Sla.days(7)),
            priority=priority,
            subject_id=subject_id or applicant_id,
            names=tuple(n for n in names if n),
            fields=dict(fields or {}),
            cites_request_number=cites_request_number,
            routed_sequence=routed_sequence,
            routed_transfer=routed_transfer,
        )
        item.new_history.append(HistoryEntry(now, "routing", "queued", queue))
        return item

    @property
    def position(self) -> QueuePosition:
        return QueuePosition(-self.priority, self.queued_at, self.request_number)

    # --- who may see and act -------------------------------------------------------------

    def ensure_visible_to(self, reviewer: Principal) -> None:
        """An item outside the reviewer's departments does not exist for them."""
        if reviewer.role is not Role.REVIEWER or self.department not in reviewer.departments:
            raise NotFound(NOT_IN_YOUR_DEPARTMENTS)

    def _ensure_holder(self, reviewer: Principal, now: datetime, lease: timedelta) -> None:
        self.ensure_visible_to(reviewer)
        if self.state is not State.CLAIMED:
            # A decision sent again (its reply lost) finds it decided: nothing to claim.
            first = self.state in UNFINISHED
            raise FailedPrecondition(
                _request_is(
                    self.request_number,
                    self.state,
                    then="; claim it first" if first else " already",
                    then_ar="؛ استلمه أولًا" if first else " بالفعل",
                )
            )
        if self.assignee != reviewer.subject:
            raise FailedPrecondition(
                Bilingual(
                    f"request {self.request_number} is held by {self.assignee}",
                    f"الطلب {self.request_number} مُسنَد إلى {self.assignee}",
                )
            )
        self.claimed_until = now + lease

    # --- the reviewer's actions ----------------------------------------------------------

    def claim(self, reviewer: Principal, now: datetime, lease: timedelta) -> None:
        self.ensure_visible_to(reviewer)
        self._four_eyes(reviewer.subject)
        if self.state is State.CLAIMED and self.assignee == reviewer.subject:
            self.claimed_until = now + lease
            return
        if self.state is not State.QUEUED:
            raise FailedPrecondition(_request_is(self.request_number, self.state, self.assignee))
        self._hold(reviewer.subject, now, lease, "claimed")

    def _four_eyes(self, reviewer_id: str) -> None:
        if self.appeal_of and reviewer_id == self.appeal_of:
            raise FailedPrecondition(
                Bilingual(
                    f"request {self.request_number} is an appeal of your own decision: another"
                    " reviewer decides it",
                    f"الطلب {self.request_number} تظلُّمٌ من قرارك أنت: يبتّ فيه مراجع آخر",
                )
            )

    def assign(self, reviewer_id: str, now: datetime, lease: timedelta, *, by: str) -> None:
        """A queue's push assignment or a supervisor gives the item to a reviewer."""
        if self.state not in OPEN_STATES:
            raise FailedPrecondition(_request_is(self.request_number, self.state))
        self._four_eyes(reviewer_id)
        self.state = State.QUEUED
        self.assignee = ""
        self._hold(reviewer_id, now, lease, "assigned", by=by)

    def unassign(self, now: datetime, *, by: str) -> None:
        if self.state not in OPEN_STATES:
            raise FailedPrecondition(_request_is(self.request_number, self.state))
        self._to_queue(now, by, "reassigned_to_queue")

    def appeal(self, *, reason: str, now: datetime, calendar: WorkingCalendar) -> bool:
        """The beneficiary appealed a rejection: back in the queue, for another reviewer, on
        the appeal's own SLA clock (intake tells its due date), whose marks are alerted anew."""
        if self.state is not State.DECIDED or self.decision is not Decision.REJECT:
            return False
        self.appeal_of = self.assignee
        self.decision = None
        self.decision_message = ""
        self.reason_code = ""
        self.priority += 1
        self.clock = appeals.appeal_clock(calendar, self.clock, now)
        self.sla_alerted = 0
        self._to_queue(now, "applicant", "appealed", reason)
        return True

    def release(self, reviewer: Principal, now: datetime, lease: timedelta) -> None:
        self._ensure_holder(reviewer, now, lease)
        self._to_queue(now, reviewer.subject, "released")

    def lapse(self, now: datetime) -> bool:
        """The holder went idle past the lease: back to the queue. False if it was renewed."""
        if self.state is not State.CLAIMED or self.claimed_until is None:
            return False
        if self.claimed_until > now:
            return False
        self._to_queue(now, "system", "claim_lapsed", note=self.assignee)
        return True

    def note(self, reviewer: Principal, text: str, now: datetime, lease: timedelta) -> None:
        """An internal note; any reviewer of the department may leave one."""
        self.ensure_visible_to(reviewer)
        body = _text("text", text, required=True)
        if self.state is State.CLAIMED and self.assignee == reviewer.subject:
            self.claimed_until = now + lease
        self.new_history.append(HistoryEntry(now, reviewer.subject, "note", body, internal=True))

    def quality_checked(self, by: str, verdict: str, note: str, now: datetime) -> None:
        """The four-eyes check of its decision, on its record for the office: who checked it,
        the verdict and why (a disagreement says)."""
        said = f"{verdict}: {note}" if note else verdict
        self.new_history.append(HistoryEntry(now, by, "quality_checked", said, internal=True))

    def message(
        self,
        reviewer: Principal,
        text: str,
        now: datetime,
        lease: timedelta,
        calendar: WorkingCalendar,
        history: Sequence[HistoryEntry] = (),
    ) -> None:
        """A message to the beneficiary. The same one sent by the same reviewer within
        MESSAGE_RESENT of its first (a retry whose reply was lost) is not sent again."""
        self._ensure_holder(reviewer, now, lease)
        body = _text("text", text, required=True)
        if any(
            (h.actor, h.action, h.note) == (reviewer.subject, "message", body)
            and now - h.at <= MESSAGE_RESENT
            for h in history
        ):
            return
        status = self.public_status or Status.UNDER_REVIEW
        self._publish(
            status, reviewer.subject, body, now, calendar, action="message", reviewer_message=True
        )

    def decide(
        self,
        reviewer: Principal,
        decision: Decision,
        message: str,
        reason: Reason | None,
        now: datetime,
        calendar: WorkingCalendar,
    ) -> None:
        self._ensure_holder(reviewer, now, timedelta(0))
        self._four_eyes(reviewer.subject)
        text = _text("message", message, required=False)
        if decision is Decision.REJECT and visible_length(text) < MIN_REJECTION_MESSAGE:
            raise InvalidArgument(
                {
                    "message": Bilingual(
                        f"a rejection tells the beneficiary why, at least "
                        f"{MIN_REJECTION_MESSAGE} characters",
                        "يُبيَّن للمستفيد سبب الرفض في"
                        f" {CHARACTERS.count(MIN_REJECTION_MESSAGE).ar} على الأقل",
                    )
                }
            )
        if decision is Decision.REJECT and reason is None:
            raise InvalidArgument(
                {
                    "reason_code": Bilingual(
                        "a rejection names a reason from ListReasons",
                        "يُذكر للرفض سببٌ من قائمة الأسباب (ListReasons)",
                    )
                }
            )
        if reason is not None and decision not in reason.decisions:
            raise InvalidArgument(
                {
                    "reason_code": Bilingual(
                        f"not a reason to {decision.value}",
                        "ليس سببًا للقبول" if decision is Decision.ACCEPT else "ليس سببًا للرفض",
                    )
                }
            )
        self.state = State.DECIDED
        self.decision = decision
        self.decision_message = text
        self.reason_code = reason.code if reason else ""
        self.claimed_until = None
        self.sla_next_at = None
        self._stop_clock(now)
        status = Status.ACCEPTED if decision is Decision.ACCEPT else Status.REJECTED
        appealable = status is Status.REJECTED and not self.appeal_of
        self._publish(
            status,
            reviewer.subject,
            text,
            now,
            calendar,
            action=decision.value,
            reason=reason,
            decides_appeal=bool(self.appeal_of),
            appeal_until=appeals.appeal_until(calendar, now) if appealable else None,
        )
        if reason is not None:
            # The canned why, kept on the record: an appeal clears it from the item.
            self.new_history.append(
                HistoryEntry(now, reviewer.subject, f"{decision.value}_reason", reason.code, True)
            )

    def mark_processed(
        self,
        reviewer: Principal,
        message: str,
        now: datetime,
        calendar: WorkingCalendar,
        history: Sequence[HistoryEntry] = (),
    ) -> None:
        """The department carried out the accepted request's transaction: any reviewer of it
        marks it processed, with an optional message the beneficiary is told with it. The same
        message again on a request processed so (a retry whose reply was lost) changes
        nothing; an appeal no longer lies against it, nor does one against the acceptance."""
        self.ensure_visible_to(reviewer)
        text = _text("message", message, required=False)
        if self.state is State.PROCESSED:
            if any((h.action, h.note) == ("processed", text) for h in history):
                return
            raise FailedPrecondition(
                Bilingual(
                    f"request {self.request_number} was marked processed already",
                    f"سبق تسجيل معالجة الطلب {self.request_number}",
                )
            )
        if self.state is not State.DECIDED or self.decision is not Decision.ACCEPT:
            now_is = "rejected" if self.decision is Decision.REJECT else self.state
            raise FailedPrecondition(
                Bilingual(
                    f"request {self.request_number} is {now_is}: only an accepted request"
                    " is processed",
                    f"الطلب {self.request_number} غير مقبول: لا تُسجَّل إلا معالجة طلب مقبول",
                )
            )
        self.state = State.PROCESSED
        # The clock stopped at the decision: its due date is the decision's, not moved out by
        # the time the transaction took.
        self._publish(
            Status.PROCESSED,
            reviewer.subject,
            text,
            now,
            calendar,
            action="processed",
            reschedule=False,
        )

    def request_information(
        self,
        reviewer: Principal,
        missing: tuple[Missing, ...],
        message: str,
        respond_by: datetime,
        now: datetime,
        calendar: WorkingCalendar,
    ) -> None:
        self._ensure_holder(reviewer, now, timedelta(0))
        if not missing:
            raise InvalidArgument(
                {
                    "missing": Bilingual(
                        "list at least one thing the beneficiary must add",
                        "اذكر أمرًا واحدًا على الأقل يلزم المستفيدَ تقديمه",
                    )
                }
            )
        if len(missing) > MAX_MISSING:
            raise InvalidArgument({"missing": at_most(ITEMS, MAX_MISSING)})
        text = _text("message", message, required=False)
        self.state = State.WAITING
        self.last_holder = self.assignee
        self.assignee = ""
        self.claimed_until = None
        self.missing = missing
        self.respond_by = respond_by
        self.clock = self.clock.pause(max(now, self.clock.resumed_at))
        self._publish(
            Status.NEEDS_MORE_INFO,
            reviewer.subject,
            text,
            now,
            calendar,
            action="information_requested",
            missing=missing,
            respond_by=respond_by,
        )

    def answered(
        self,
        *,
        message: str,
        holder_available: bool,
        now: datetime,
        lease: timedelta,
        calendar: WorkingCalendar,
        answered_at: datetime | None = None,
        document_ids: tuple[str, ...] = (),
        fields: dict[str, str] | None = None,
    ) -> bool:
        """The beneficiary answered (at `answered_at`, applied `now`), with documents that
        join the request's and fields that replace its: back to the reviewer who asked if
        they can take it. Intake takes answers only by the deadline, so one that arrives after
        the sweep closed the request for want of it reopens the request."""
        given = answered_at or now
        reopens = (
            self.state is State.CLOSED and self.respond_by is not None and given <= self.respond_by
        )
        if self.state is not State.WAITING and not reopens:
            return False
        self.clock = self.clock.resume(max(given, self.clock.paused_since or given))
        self.missing = ()
        self.respond_by = None
        self.document_ids = tuple(dict.fromkeys((*self.document_ids, *document_ids)))
        self._correct(fields or {})
        self.new_history.append(HistoryEntry(given, "applicant", "answered", message))
        if reopens:
            self.new_history.append(
                HistoryEntry(now, "system", "reopened", "answered by the deadline")
            )
        if holder_available and self.last_holder:
            self._hold(self.last_holder, now, lease, "returned_to_holder", announce=False)
        else:
            self._to_queue(now, "system", "returned_to_queue")
        self._publish(
            Status.RETURNED_BY_APPLICANT,
            "applicant",
            "",
            now,
            calendar,
            action="",
            reopened=reopens,
            promise=True,
        )
        return True

    def _correct(self, fields: dict[str, str]) -> None:
        """The answer's fields replace the request's, and the names follow them as routing
        made them: the names no field held are the subject's, kept. A subject's name spelt as
        a name field's old value cannot be told from it and goes with it from `names` (the
        search index keeps it)."""
        fielded = names_of((), self.fields)
        self.fields = {**self.fields, **fields}
        names = names_of([n for n in self.names if n not in fielded], self.fields)
        if names != self.names:
            if self.renamed_from is None:
                self.renamed_from = self.names
            self.names = names

    def expire(self, now: datetime, calendar: WorkingCalendar) -> bool:
        """No answer by the deadline: the request closes (SPEC §4)."""
        if (
            self.state is not State.WAITING
            or self.respond_by is None
            or self.respond_by + ANSWER_IN_FLIGHT > now
        ):
            return False
        self.state = State.CLOSED
        self.sla_next_at = None
        self._publish(
            Status.CLOSED,
            "system",
            "",
            now,
            calendar,
            action="closed",
            reason=NO_ANSWER,
            # The deadline it closed at: intake keeps a cancellation made by it.
            respond_by=self.respond_by,
        )
        return True

    def transfer(
        self,
        reviewer: Principal,
        department: str,
        reason: str,
        now: datetime,
        calendar: WorkingCalendar,
        *,
        catalog_version: int,
    ) -> None:
        """`catalog_version`: that of the catalog that has `department` (the caller checked)."""
        self._ensure_holder(reviewer, now, timedelta(0))
        why = _text("reason", reason, required=True)
        if department == self.department:
            raise InvalidArgument(
                {
                    "department_code": Bilingual(
                        "already this request's department", "هذا هو قسم الطلب الحالي"
                    )
                }
            )
        self.state = State.TRANSFERRED
        self.assignee = ""
        self.claimed_until = None
        self._publish(
            Status.TRANSFERRED,
            reviewer.subject,
            "",
            now,
            calendar,
            action="transferred",
            transfer_to=department,
            catalog_version=catalog_version,
            internal_note=why,
        )

    def rerouted(
        self,
        *,
        department: str,
        queue: str,
        priority: int,
        now: datetime,
        sequence: int = 0,
        transfer_sequence: int = 0,
    ) -> bool:
        """Routing placed the request again: in its new department's queue after a transfer,
        or, where it is, at a higher priority (the beneficiary's follow-ups). A transfer always
        names another department, so a decision for this one is never a transfer's, even one
        routing made while a transfer was on its way to it; and as a priority only rises, an
        older one changes nothing, so none is skipped (a raise routing numbered again after a
        restore still counts).

        False for a decision elsewhere no later than one applied (`transfer_sequence`, then
        `sequence`: a dead letter replayed, a late one): it would move the item back. So a
        transferred item moves on the decision answering its transfer, which names that
        transfer's sequence, whatever routing's count. 0: from before routing counted them,
        applied as it comes."""
        place = (transfer_sequence, sequence)
        later = place > (self.routed_transfer, self.routed_sequence)
        if department == self.department:
            if later:
                self.routed_transfer, self.routed_sequence = place
            if self.state in UNFINISHED and priority > self.priority:
                self.priority = priority
                self.new_history.append(
                    HistoryEntry(now, "routing", "prioritised", f"priority {priority}")
                )
            return True
        if sequence and not later:
            return False
        if later:
            self.routed_transfer, self.routed_sequence = place
        if self.state is not State.TRANSFERRED:
            return True
        self.department = department
        self.queue = queue
        self.priority = max(self.priority, priority)
        self.state = State.QUEUED
        self.queued_at = now
        self.new_history.append(HistoryEntry(now, "routing", "queued", queue))
        return True

    # --- the beneficiary's side ----------------------------------------------------------

    def followed_up(self, *, message: str, now: datetime) -> None:
        """The beneficiary asked again, on the record while the item is open. Whether that
        moves it up its queue is routing's rules' to say (`rerouted`)."""
        if self.state not in UNFINISHED:
            return
        self.new_history.append(HistoryEntry(now, "applicant", "followed_up", message))

    def withdraw(self, *, reason: str, now: datetime, by_office: bool = False) -> None:
        """The beneficiary cancelled (at `now`, as intake took it), or the office did for them
        (`by_office`: the person is off the account's record, and another account filed for
        them), which the history records as the system's doing: a decided item, or one
        closed for want of an answer when the cancellation came after the deadline, keeps
        its outcome. The cancellation came too late, which its history records; the outcome
        is published again for the beneficiary, who was told the request was cancelled
        (intake's tracking took the outcome when it arrived). One made by the deadline was in
        time, whatever closure overtook it on its way here: the item is withdrawn, and the
        beneficiary, told it closed, is told it was cancelled (intake kept the cancellation)."""
        actor = "system" if by_office else "applicant"
        if self.state is State.CLOSED and self.respond_by is not None and now <= self.respond_by:
            self.state = State.WITHDRAWN
            self.new_history.append(HistoryEntry(now, actor, "cancelled", reason))
            self.public_status = Status.CANCELLED
            self.events.append(StatusChanged(self, Status.CANCELLED, actor, "", now))
            return
        if self.state in (State.DECIDED, State.PROCESSED, State.CLOSED):
            self.new_history.append(HistoryEntry(now, actor, "cancel_too_late", reason))
            if self.public_status is not None:
                self._announce(
                    StatusChanged(
                        self,
                        self.public_status,
                        actor,
                        "",
                        now,
                        due_at=self.due_at,
                        cancel_too_late=True,
                        decides_appeal=bool(self.appeal_of),
                    )
                )
            return
        if self.state not in UNFINISHED:
            return
        self.state = State.WITHDRAWN
        self.assignee = ""
        self.claimed_until = None
        self.sla_next_at = None
        self._stop_clock(now)
        self.new_history.append(HistoryEntry(now, actor, "cancelled", reason))

    # --- the SLA clock -------------------------------------------------------------------

    def schedule(self, calendar: WorkingCalendar, now: datetime) -> None:
        """Recomputes the due date and when the next SLA mark falls. Only for an unfinished
        item, or at the move that finishes it: a stopped clock's due date is computed as if it
        resumed now, which would move a finished one's."""
        self.due_at = self.clock.due(calendar, now=now)
        if self.clock.paused or self.state not in UNFINISHED - {State.WAITING}:
            self.sla_next_at = None
            return
        budget = self.clock.sla.budget(calendar.hours)
        for mark in SLA_MARKS:
            if mark > self.sla_alerted:
                self.sla_next_at = calendar.add(
                    self.clock.started_at, budget * mark / 100, pauses=self.clock.pauses
                )
                return
        self.sla_next_at = None

    def check_sla(
        self, calendar: WorkingCalendar, now: datetime, supervisors: tuple[str, ...] = ()
    ) -> int | None:
        """Raises the alert of the highest mark passed, if any; answers its percent."""
        if self.sla_next_at is None or self.sla_next_at > now:
            return None
        used = self.clock.used(calendar, now=now) * 100
        passed = max((m for m in SLA_MARKS if m <= used + 1e-9), default=0)
        if passed <= self.sla_alerted:
            self.schedule(calendar, now)
            return None
        self.sla_alerted = passed
        self.schedule(calendar, now)
        due = self.due_at or now
        # A warning is for whoever holds the item; held by no one, for the supervisors, who can
        # have it taken up. A breach always escalates to them.
        held = self.state is State.CLAIMED and bool(self.assignee)
        told = supervisors if passed >= 100 or not held else ()
        self.events.append(SlaCrossed(self, passed, due, now, told))
        action = "sla_breached" if passed >= 100 else "sla_warning"
        self.new_history.append(HistoryEntry(now, "system", action, f"{passed}%", internal=True))
        return passed

    def percent_used(self, calendar: WorkingCalendar, now: datetime) -> int:
        return int(self.clock.used(calendar, now=now) * 100)

    def _stop_clock(self, now: datetime) -> None:
        """Decided or withdrawn: the SLA counts no further (a clock paused while the item
        waited on the beneficiary stays paused)."""
        if not self.clock.paused:
            self.clock = self.clock.pause(max(now, self.clock.resumed_at))

    # --- plumbing ------------------------------------------------------------------------

    def _hold(
        self,
        holder: str,
        now: datetime,
        lease: timedelta,
        action: str,
        *,
        announce: bool = True,
        by: str = "",
    ) -> None:
        self.state = State.CLAIMED
        self.assignee = holder
        self.claimed_until = now + lease
        self.claim_key = ""
        if announce and self.public_status is not Status.UNDER_REVIEW:
            self.public_status = Status.UNDER_REVIEW
            self._announce(StatusChanged(self, Status.UNDER_REVIEW, holder, "", now))
        self.new_history.append(HistoryEntry(now, by or holder, action, holder if by else ""))

    def _announce(self, change: StatusChanged) -> None:
        """Publishes a status change with the request's next sequence."""
        self.status_sequence += 1
        self.events.append(replace(change, sequence=self.status_sequence))

    def _to_queue(self, now: datetime, actor: str, action: str, note: str = "") -> None:
        self.state = State.QUEUED
        self.assignee = ""
        self.claimed_until = None
        self.new_history.append(HistoryEntry(now, actor, action, note))

    def _publish(
        self,
        status: Status,
        actor: str,
        message: str,
        now: datetime,
        calendar: WorkingCalendar,
        *,
        action: str,
        reason: Reason | None = None,
        missing: tuple[Missing, ...] = (),
        respond_by: datetime | None = None,
        transfer_to: str = "",
        catalog_version: int = 0,
        internal_note: str = "",
        reopened: bool = False,
        reviewer_message: bool = False,
        decides_appeal: bool = False,
        appeal_until: datetime | None = None,
        reschedule: bool = True,
        promise: bool = False,
    ) -> None:
        """`promise`: the beneficiary is told the due date as the expected completion, so one
        already passed (the office is late) is left out rather than told."""
        self.public_status = status
        if reschedule:
            self.schedule(calendar, now)
        due_at = self.due_at
        if promise and due_at is not None and due_at <= now:
            due_at = None
        self._announce(
            StatusChanged(
                self,
                status,
                actor,
                message,
                now,
                reason=reason,
                missing=missing,
                respond_by=respond_by,
                transfer_to=transfer_to,
                catalog_version=catalog_version,
                internal_note=internal_note,
                due_at=due_at,
                reopened=reopened,
                reviewer_message=reviewer_message,
                decides_appeal=decides_appeal,
                appeal_until=appeal_until,
            )
        )
        if action:
            note = "; ".join(filter(None, [message, transfer_to and f"→ {transfer_to}"]))
            self.new_history.append(HistoryEntry(now, actor, action, note))
            if internal_note:
                self.new_history.append(
                    HistoryEntry(now, actor, f"{action}_reason", internal_note, internal=True)
                )


MAX_IDEMPOTENCY_KEY = 100
_KEY = re.compile(r"[A-Za-z0-9._:-]+")


def idempotency_key(raw: str) -> str:
    """A client's key for one call (optional), as intake takes a submission's."""
    if len(raw) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument({"idempotency_key": at_most(CHARACTERS, MAX_IDEMPOTENCY_KEY)})
    key = raw.strip()
    if key and not _KEY.fullmatch(key):
        raise InvalidArgument(
            {
                "idempotency_key": Bilingual(
                    "Latin letters, digits and . _ : - only", "حروف لاتينية وأرقام و . _ : - فقط"
                )
            }
        )
    return key


def _text(name: str, raw: str, *, required: bool) -> str:
    text = _lines(raw).strip()
    if len(raw) > MAX_MESSAGE:
        raise InvalidArgument({name: at_most(CHARACTERS, MAX_MESSAGE)})
    if required and not visible_length(text):
        raise InvalidArgument({name: REQUIRED})
    if _controls(text):
        raise InvalidArgument({name: CONTROLS})
    return text


def _lines(text: str) -> str:
    """Windows' and old Macs' line ends as newlines: a message pasted from a file has them."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _controls(text: str) -> bool:
    """NUL and the other C0/C1 controls (tab and newline aside) and bidi overrides."""
    return any(
        (ord(c) < 32 and c not in "\n\t")
        or 0x7F <= ord(c) <= 0x9F
        or 0x202A <= ord(c) <= 0x202E
        or 0x2066 <= ord(c) <= 0x2069
        for c in text
    )


def _plain(limit: int) -> Bilingual:
    return Bilingual(
        f"required, at most {limit} plain characters",
        f"مطلوب، {CHARACTERS.count(limit).ar} على الأكثر بلا محارف تحكم",
    )


def missing_items(raw: list[tuple[str, str, str]]) -> tuple[Missing, ...]:
    """The reviewer's list, each entry checked; problems name the entry's position."""
    problems: dict[str, Bilingual] = {}
    items: list[Missing] = []
    for index, (kind, name, description) in enumerate(raw[: MAX_MISSING + 1]):
        if kind not in ("document", "field", "other"):
            problems[f"missing[{index}].kind"] = Bilingual(
                "'document', 'field' or 'other'", "'document' أو 'field' أو 'other'"
            )
        if not visible_length(name) or len(name) > 100 or _controls(name):
            problems[f"missing[{index}].name"] = _plain(100)
        description = _lines(description)
        if not visible_length(description) or len(description) > 500 or _controls(description):
            problems[f"missing[{index}].description"] = _plain(500)
        items.append(Missing(kind, name.strip(), description.strip()))
    if problems:
        raise InvalidArgument(problems)
    return tuple(items)
