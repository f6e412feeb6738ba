"""The request as intake knows it: what was filed, about whom, its SLA clock and public history."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

from tawasul_calendar import RIYADH, SlaClock, WorkingCalendar, format_date
from tawasul_calendar import Locale as DateLocale
from tawasul_platform import appeals
from tawasul_platform.catalog import Catalog, FieldSpec, FieldType, SubjectRelation, SubService
from tawasul_platform.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from tawasul_platform.hygiene import visible_length
from tawasul_platform.i18n import Bilingual, Noun, at_most
from tawasul_platform.identity import ROLE_AR, Principal, Role
from tawasul_platform.request_numbers import parse_request_number

from tawasul_intake.domain.countries import names as country_names
from tawasul_intake.domain.fields import (
    FOREIGN_DIGITS,
    MAX_DESCRIPTION_CHARS,
    REQUIRED,
    at_most_characters,
    check_field,
    clean_text,
    description_problem,
    foreign_digits,
    mobile_problem,
    normalize_mobile,
)
from tawasul_intake.domain.identity import CHECK_DIGIT, id_number_problem, luhn_valid

MAX_DOCUMENTS = 10
NOT_A_REQUEST_NUMBER = Bilingual(
    "not a request number: TW, 8 digits and a check digit", "ليس رقم طلب: TW ثم 8 أرقام ورقم تحقق"
)
DOCUMENTS = Noun("document", "documents", "مستند واحد", "مستندان", "مستندات", "مستندًا", "مستند")
OPEN_REQUESTS = Noun(
    "open request",
    "open requests",
    "طلب مفتوح واحد",
    "طلبان مفتوحان",
    "طلبات مفتوحة",
    "طلبًا مفتوحًا",
    "طلب مفتوح",
)
MAX_IDEMPOTENCY_KEY = 100
MAX_FIELDS = 30
MAX_FIELD_VALUE = 1000
MAX_MESSAGE = 1000
# Seed 003: a follow-up only once the request has been open longer than 3 working days.
FOLLOW_UP_AFTER_WORKING_DAYS = 3
# Then at most one follow-up a working day, so a follow-up stays a signal, not noise.
FOLLOW_UP_EVERY_WORKING_DAYS = 1
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


class Status(StrEnum):
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    NEEDS_MORE_INFO = "needs_more_info"
    RETURNED_BY_APPLICANT = "returned_by_applicant"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    PROCESSED = "processed"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    TRANSFERRED = "transferred"


# What the beneficiary reads (SPEC §2: the seeds' labels, Muqeem's where Absher has none). A
# request waiting for its reviewer is under review to them (seed 004), as it is once claimed.
STATUS_LABELS: dict[Status, tuple[str, str]] = {
    Status.SUBMITTED: ("قيد المراجعة", "Under review"),
    Status.UNDER_REVIEW: ("قيد المراجعة", "Under review"),
    Status.NEEDS_MORE_INFO: ("بحاجة لإجراءات إضافية", "Needs additional action"),
    Status.RETURNED_BY_APPLICANT: ("معاد من مقدم الطلب", "Returned by applicant"),
    Status.ACCEPTED: ("مقبول", "Accepted"),
    Status.REJECTED: ("مرفوض", "Rejected"),
    Status.PROCESSED: ("تمت المعالجة", "Processed"),
    Status.CLOSED: ("مغلق", "Closed"),
    Status.CANCELLED: ("ملغى", "Cancelled"),
    Status.TRANSFERRED: ("محال إلى القسم المختص", "Transferred"),
}
# The establishment portal (Muqeem) says "returned to applicant" where Absher says "needs
# additional action" (SPEC §2).
_MUQEEM_LABELS: dict[Status, tuple[str, str]] = {
    Status.NEEDS_MORE_INFO: ("معاد لمقدم الطلب", "Returned to applicant"),
}


def status_label(status: Status, filed_by: Role) -> tuple[str, str]:
    """What the beneficiary reads for `status` (Arabic, English), in their portal's words."""
    if filed_by is Role.ESTABLISHMENT and status in _MUQEEM_LABELS:
        return _MUQEEM_LABELS[status]
    return STATUS_LABELS[status]


# Still waiting for an answer: one per person and sub-service, and the beneficiary may cancel.
OPEN = frozenset(
    {
        Status.SUBMITTED,
        Status.UNDER_REVIEW,
        Status.NEEDS_MORE_INFO,
        Status.RETURNED_BY_APPLICANT,
        Status.TRANSFERRED,
    }
)
# Why the office cancelled a request whose person another account now answers for
# (Request.cancel_off_record), in both languages in one line: the history and review's record
# of the cancellation keep one text for every reader.
OFF_RECORD = (
    "أُلغي تلقائيًا: لم يعد الشخص مسجلًا على سجل الحساب الذي قدّم الطلب"
    " / cancelled automatically: the person is no longer on the filing account's record"
)
# Nothing changes these any more (an accepted request may still be processed or closed).
FINAL = frozenset({Status.REJECTED, Status.PROCESSED, Status.CLOSED, Status.CANCELLED})
# How review ends a request. Review decides alone and never decides a request it has
# withdrawn, so one of these arriving after a cancellation was decided before it.
OUTCOMES = frozenset({Status.ACCEPTED, Status.REJECTED, Status.CLOSED})
# What review may do, and tell the beneficiary, before a cancellation reaches it and it
# withdraws the request: steps that crossed the cancellation, kept in the history.
CROSSED = frozenset({Status.UNDER_REVIEW, Status.NEEDS_MORE_INFO, Status.TRANSFERRED})


class Locale(StrEnum):
    AR = "ar"
    EN = "en"


@dataclass(frozen=True)
class Contact:
    mobile: str
    email: str = ""
    locale: Locale = Locale.AR


@dataclass(frozen=True)
class OpenKey:
    """What one open request at a time may be about (requests_one_open): a person and a
    sub-service. A person without a number yet, filed under the account holder's (a newborn
    dependent), is told apart by `person`: a digest of what the form names them by (the
    catalog's otherwise_named_by); empty for everyone with a number."""

    subject_id: str
    sub_service_code: str
    person: str = ""


@dataclass(frozen=True)
class Submission:
    """A validated new request, before it has a number."""

    applicant_id: str
    applicant_role: Role
    subject_id: str
    idempotency_key: str
    sub_service_code: str
    description: str
    fields: Mapping[str, str]
    document_ids: tuple[uuid.UUID, ...]
    contact: Contact
    cites_number: str | None = None
    # The channel the applicant came through, as their sign-in token says.
    channel: str = ""
    # OpenKey.person: who the request is about when they have no number.
    person: str = ""

    @property
    def open_key(self) -> OpenKey:
        return OpenKey(self.subject_id, self.sub_service_code, self.person)

    def digest(self) -> str:
        """What the applicant asked, in a few bytes: a retry under the same idempotency key is
        told apart from another request by it, however the request has changed since (an
        answer adds fields and documents). Not the language: a page switched to the other
        one sends its retry in it, and the request keeps the one it was filed in."""
        said = [
            self.sub_service_code,
            self.subject_id,
            self.description,
            [str(d) for d in self.document_ids],
            sorted(self.fields.items()),
            [self.contact.mobile, self.contact.email],
            self.cites_number,
        ]
        return hashlib.sha256(json.dumps(said, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class Reason:
    """Why the office decided as it did: a reason of review's catalog, in both languages."""

    code: str
    ar: str
    en: str


@dataclass(frozen=True)
class Missing:
    """One thing the reviewer asked for: a document kind, a field, or other."""

    kind: str
    name: str
    description: str


@dataclass(frozen=True)
class HistoryEntry:
    status: Status
    at: datetime
    message: str = ""
    # On the beneficiary's answer to an information request, what it said (answer_digest): a
    # retry of it is told apart from another answer. Shown to nobody.
    answer: str = ""
    # The channel's idempotency key for that answer, if it gave one: the answer sent again
    # under it is a retry even after the reviewer asked again.
    answer_key: str = ""
    # The message is the beneficiary's own (an answer, a cancellation's or an appeal's reason),
    # not the office's to them: tracking without login does not show it.
    by_beneficiary: bool = False


def answer_digest(
    message: str, fields: Mapping[str, str], document_ids: tuple[uuid.UUID, ...]
) -> str:
    """One answer's message, fields and documents, in a few bytes: the request keeps its fields
    merged and its documents together, which cannot tell one answer from another."""
    said = [message, sorted(fields.items()), sorted(str(d) for d in document_ids)]
    return hashlib.sha256(json.dumps(said, ensure_ascii=False).encode()).hexdigest()


@dataclass
class Request:
    id: uuid.UUID
    number: str
    applicant_id: str
    # Citizen, resident or establishment: an establishment's requests are shown in Muqeem's
    # words (status_label).
    applicant_role: Role
    subject_id: str
    idempotency_key: str
    sub_service_code: str
    catalog_version: int
    department_code: str
    description: str
    fields: dict[str, str]
    document_ids: tuple[uuid.UUID, ...]
    contact: Contact
    status: Status
    submitted_at: datetime
    updated_at: datetime
    clock: SlaClock
    history: list[HistoryEntry]
    decision_message: str = ""
    decision_reason: Reason | None = None
    cites_number: str | None = None
    cited_by: list[str] = field(default_factory=list)
    follow_up_count: int = 0
    last_follow_up_at: datetime | None = None
    # While information is requested: what is missing and the deadline to answer.
    missing: tuple[Missing, ...] = ()
    respond_by: datetime | None = None
    appealed: bool = False
    # The highest sequence of review's status changes applied (0: none stamped yet): one no
    # higher is older than the status shown (a dead letter replayed, a late one).
    status_sequence: int = 0
    # The submission's digest (Submission.digest); empty for requests stored before it was kept.
    submitted_digest: str = ""
    # OpenKey.person, as submitted (empty for requests stored before it was kept).
    person: str = ""
    # The last day to appeal the rejection that review's status change told the beneficiary
    # (None: not told, or before it was told): a closure announced since (an Eid a day earlier
    # than forecast) must not take back a day they were promised.
    appeal_told: datetime | None = None
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def submit(
        cls,
        submission: Submission,
        *,
        id: uuid.UUID,
        number: str,
        sub_service: SubService,
        catalog_version: int,
        calendar: WorkingCalendar,
        now: datetime,
        subject_nationality: str = "",
        subject_names: tuple[str, str] = ("", ""),
    ) -> Request:
        request = cls(
            id=id,
            number=number,
            applicant_id=submission.applicant_id,
            applicant_role=submission.applicant_role,
            subject_id=submission.subject_id,
            idempotency_key=submission.idempotency_key,
            sub_service_code=submission.sub_service_code,
            catalog_version=catalog_version,
            department_code=sub_service.department,
            description=submission.description,
            fields=dict(submission.fields),
            document_ids=submission.document_ids,
            contact=submission.contact,
            status=Status.SUBMITTED,
            submitted_at=now,
            updated_at=now,
            clock=SlaClock(started_at=now, sla=sub_service.sla),
            history=[HistoryEntry(Status.SUBMITTED, now)],
            cites_number=submission.cites_number,
            submitted_digest=submission.digest(),
            person=submission.person,
        )
        request.events.append(
            RequestSubmitted(
                request,
                expected_completion=request.expected_completion(calendar, now),
                applicant_kind=submission.applicant_role.value,
                subject_nationality=subject_nationality,
                channel=submission.channel,
                subject_names=subject_names,
            )
        )
        return request

    @property
    def open_key(self) -> OpenKey:
        return OpenKey(self.subject_id, self.sub_service_code, self.person)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def expected_completion(self, calendar: WorkingCalendar, now: datetime) -> datetime:
        """The promised date; while the request waits on the beneficiary it moves out."""
        return self.clock.due(calendar, now=now)

    def follow_up_from(self, calendar: WorkingCalendar) -> datetime:
        earliest = calendar.add_working_days(self.submitted_at, FOLLOW_UP_AFTER_WORKING_DAYS)
        if self.last_follow_up_at is None:
            return earliest
        again = calendar.add_working_days(self.last_follow_up_at, FOLLOW_UP_EVERY_WORKING_DAYS)
        return max(earliest, again)

    def follow_up(self, *, message: str, calendar: WorkingCalendar, now: datetime) -> None:
        if not self.is_open:
            raise FailedPrecondition(self._is_now())
        if self.status is Status.NEEDS_MORE_INFO:
            # A follow-up chases the office and raises the request's priority; here the
            # office is the one waiting.
            raise FailedPrecondition(
                Bilingual(
                    f"request {self.number} is waiting for your answer: answer the information"
                    " request instead",
                    f"الطلب {self.number} بانتظار ردك: أجب عن طلب المعلومات",
                )
            )
        possible = self.follow_up_from(calendar)
        if now < possible:
            local = possible.astimezone(RIYADH)
            # The hour too: on the day named, a follow-up opens only at it.
            hour = f"{local:%H:%M}"
            raise FailedPrecondition(
                Bilingual(
                    f"a follow-up is possible from {format_date(local.date(), DateLocale.EN)}"
                    f" at {hour}",
                    f"المتابعة ممكنة من {format_date(local.date(), DateLocale.AR)}"
                    f" الساعة {hour.translate(_ARABIC_INDIC)}",
                )
            )
        self.follow_up_count += 1
        self.last_follow_up_at = now
        self.updated_at = now
        self.events.append(RequestFollowedUp(self, message=message))

    def _is_now(self, then: str = "", then_ar: str = "") -> Bilingual:
        """The request's status, as a refusal names it, and what follows from it."""
        ar, en = status_label(self.status, self.applicant_role)
        return Bilingual(
            f'request {self.number} is "{en}"{then}', f"حالة الطلب {self.number}: {ar}{then_ar}"
        )

    def cancel(self, *, reason: str, now: datetime, by_beneficiary: bool = True) -> None:
        if not self.is_open:
            raise FailedPrecondition(
                self._is_now(" and can no longer be cancelled", "، ولم يعد إلغاؤه ممكنًا")
            )
        self._move(Status.CANCELLED, reason, now, by_beneficiary=by_beneficiary)
        self.events.append(RequestCancelled(self, reason=reason, off_record=not by_beneficiary))

    def cancel_off_record(self, now: datetime) -> None:
        """The office cancels the request for its account: the registry no longer has the
        person on the account's record, which may then only view or cancel it, and the one
        that answers for them now files the same sub-service. It goes as the beneficiary's own
        cancellation does (review withdraws it, the account is told), in the office's words,
        its event saying so (off_record: the account is told why, review that the office did)."""
        self.cancel(reason=OFF_RECORD, now=now, by_beneficiary=False)

    def outdated(self, sequence: int) -> bool:
        """Whether review's status change of `sequence` is no later than one applied already:
        applying it would put the request back in an earlier status. Review's clock cannot
        tell (it may run apart from intake's); its count can. 0: from before review counted,
        applied as it comes."""
        return 0 < sequence <= self.status_sequence

    def track(
        self,
        status: Status,
        message: str,
        at: datetime,
        *,
        missing: tuple[Missing, ...] = (),
        respond_by: datetime | None = None,
        transfer_to: str = "",
        sequence: int = 0,
        reason: Reason | None = None,
        restates: bool = False,
        appeal_until: datetime | None = None,
    ) -> None:
        """Mirrors a status change decided by review into the tracking view; a transfer
        names the department that holds the request from then on, a decision its reason, a
        rejection the last day to appeal it that the beneficiary was told.

        An outcome review `restates` for a cancellation that reached it too late replaces only
        the cancellation: the outcome itself came before, with its reason, and the beneficiary
        may have appealed it since (applied then, it would undo the appeal and its reason).

        A final status stays final, but for a cancellation that raced review's outcome: the
        beneficiary may cancel only while the request is undecided (SPEC §4), so an outcome
        review reached before the cancellation reached it stands and replaces it; what review
        published short of an outcome does not reopen a cancelled request. Review closes a
        request only for want of an answer by its deadline: a closure that arrives after the
        beneficiary answered in time raced that answer, which reopens the request in review
        (where a cancellation after the answer then withdraws it), and one that names a
        deadline the beneficiary cancelled by raced that cancellation, which stands (review
        withdraws the request when it arrives).

        A step short of an outcome that review took before the cancellation reached it (CROSSED:
        a claim, a question, a transfer, told to the beneficiary) is kept in the history before
        the cancellation, which review's withdrawal followed; a transfer names the department
        the request was cancelled in, as it does when it arrives first.

        `sequence` (not `outdated`, which the caller checks) is kept as the latest applied.
        """
        self.status_sequence = max(self.status_sequence, sequence)
        if restates and self.status is not Status.CANCELLED:
            return
        if self.status is Status.CANCELLED and status in CROSSED:
            self._crossed(status, message, at, transfer_to)
            return
        if self.status in FINAL and not (
            # Decided (and perhaps carried out) before the cancellation reached review.
            self.status is Status.CANCELLED and status in OUTCOMES | {Status.PROCESSED}
        ):
            return
        if status is Status.CLOSED and self._cancelled_by(respond_by):
            return
        if status is Status.CLOSED and self._answered_since_asked():
            return
        if status == self.status:
            if message:
                self.history.append(HistoryEntry(status, at, message))
                self.updated_at = at
            return
        self._move(status, message, at)
        if status is Status.TRANSFERRED and transfer_to:
            self.department_code = transfer_to
        if status is Status.NEEDS_MORE_INFO:
            self.missing, self.respond_by = missing, respond_by
        if status in OUTCOMES:
            self.decision_message, self.decision_reason = message, reason
        if status is Status.REJECTED:
            self.appeal_told = appeal_until

    def _crossed(self, status: Status, message: str, at: datetime, transfer_to: str) -> None:
        """Records a step review took before the cancellation reached it, before the
        cancellation (and what restated it): the request stays cancelled, asks nothing."""
        before = len(self.history)
        while before and self.history[before - 1].status is Status.CANCELLED:
            before -= 1
        self.history.insert(before, HistoryEntry(status, at, message))
        if status is Status.TRANSFERRED and transfer_to:
            self.department_code = transfer_to

    def _cancelled_by(self, deadline: datetime | None) -> bool:
        """Whether the beneficiary cancelled the request by `deadline` (the one review's
        closure names): in time, whatever closure overtook the cancellation on its way to
        review."""
        if self.status is not Status.CANCELLED or deadline is None:
            return False
        # The first of the last run of cancelled entries: a restatement may follow it.
        cancelled_at = self.history[-1].at
        for entry in reversed(self.history):
            if entry.status is not Status.CANCELLED:
                break
            cancelled_at = entry.at
        return cancelled_at <= deadline

    def _answered_since_asked(self) -> bool:
        """Whether the beneficiary answered the last information request (intake takes only
        answers given by the deadline), whatever they did after, such as cancelling."""
        asked = (Status.NEEDS_MORE_INFO, Status.RETURNED_BY_APPLICANT)
        last = next((h.status for h in reversed(self.history) if h.status in asked), None)
        return last is Status.RETURNED_BY_APPLICANT

    def _rejected_at(self) -> datetime:
        return next(h.at for h in reversed(self.history) if h.status is Status.REJECTED)

    def appeal_until(self, calendar: WorkingCalendar) -> datetime | None:
        """Until when the rejection may be appealed; None when there is nothing to appeal."""
        if self.status is not Status.REJECTED or self.appealed:
            return None
        until = appeals.appeal_until(calendar, self._rejected_at())
        return max(until, self.appeal_told) if self.appeal_told else until

    def appeal(self, *, reason: str, calendar: WorkingCalendar, now: datetime) -> None:
        """Asks for the rejection to be looked at again, by another reviewer (four-eyes)."""
        until = self.appeal_until(calendar)
        if until is None:
            raise FailedPrecondition(
                self._is_now(" and was appealed already", "، وقد تُظلِّم منه من قبل")
                if self.appealed
                else self._is_now(": only a rejection", "؛ التظلم من الرفض فقط")
            )
        if now > until:
            raise FailedPrecondition(
                Bilingual(
                    f"the time to appeal request {self.number} has passed",
                    f"انتهت مدة التظلم من الطلب {self.number}",
                )
            )
        if not visible_length(reason):
            raise InvalidArgument(
                {
                    "reason": Bilingual(
                        "say why the decision should change", "اذكر لماذا يجب أن يتغير القرار"
                    )
                }
            )
        self.appealed = True
        # Review's clock stopped at the rejection; the appeal runs on a clock of its own, by
        # the rule review follows too, so the date told is the one review alerts on.
        stopped = self.clock
        if not stopped.paused:
            stopped = stopped.pause(max(self._rejected_at(), stopped.resumed_at))
        self.clock = appeals.appeal_clock(calendar, stopped, now)
        self._move(Status.UNDER_REVIEW, reason, now, by_beneficiary=True)
        self.decision_message, self.decision_reason = "", None
        self.events.append(
            RequestAppealed(
                self, reason=reason, expected_completion=self.expected_completion(calendar, now)
            )
        )

    def ensure_answerable(self, now: datetime) -> None:
        if self.status is not Status.NEEDS_MORE_INFO:
            raise FailedPrecondition(
                self._is_now(": no information was requested", "؛ لم تُطلب منه معلومات")
            )
        if self.respond_by is not None and now > self.respond_by:
            raise FailedPrecondition(
                Bilingual(
                    f"the deadline to answer request {self.number} has passed",
                    f"انتهت مهلة الرد على الطلب {self.number}",
                )
            )

    def answered_already(self, answer: Answer) -> bool:
        """Whether `answer` is one the request took, sent again because its reply was lost (a
        timeout, a dropped connection): under the idempotency key of an answer taken, whenever
        it comes; without one, only while no new information was asked for, if it says exactly
        what the latest answer said. InvalidArgument for a key taken with another answer."""
        if answer.key:
            taken = next((h for h in self.history if h.answer_key == answer.key), None)
            if taken is not None:
                if taken.answer != answer.digest:
                    raise InvalidArgument({"idempotency_key": ANSWER_TAKEN})
                return True
        if self.status is Status.NEEDS_MORE_INFO:
            return False
        latest = next(
            (h for h in reversed(self.history) if h.status is Status.RETURNED_BY_APPLICANT),
            None,
        )
        return latest is not None and latest.answer == answer.digest

    def respond(
        self,
        *,
        message: str,
        fields: Mapping[str, str],
        document_ids: tuple[uuid.UUID, ...],
        now: datetime,
        key: str = "",
    ) -> None:
        """The beneficiary's answer to an information request (`key`: the channel's
        idempotency key for it); back to the reviewer."""
        self.ensure_answerable(now)
        if not (visible_length(message) or fields or document_ids):
            raise InvalidArgument(
                {
                    "message": Bilingual(
                        "say something, or send fields or documents",
                        "اكتب ردًا، أو أرسل حقولًا أو مستندات",
                    )
                }
            )
        self.fields.update(fields)
        self.document_ids = (*self.document_ids, *document_ids)
        self._move(Status.RETURNED_BY_APPLICANT, message, now, by_beneficiary=True)
        self.history[-1] = replace(
            self.history[-1], answer=answer_digest(message, fields, document_ids), answer_key=key
        )
        self.events.append(
            RequestAnswered(self, message=message, fields=dict(fields), document_ids=document_ids)
        )

    def cited_by_request(self, number: str) -> None:
        if number not in self.cited_by:
            self.cited_by.append(number)

    def _move(
        self, status: Status, message: str, at: datetime, *, by_beneficiary: bool = False
    ) -> None:
        if status is Status.NEEDS_MORE_INFO and not self.clock.paused:
            self.clock = self.clock.pause(max(at, self.clock.resumed_at))
        elif status is not Status.NEEDS_MORE_INFO and self.clock.paused:
            self.clock = self.clock.resume(max(at, self.clock.paused_since or at))
        if status is not Status.NEEDS_MORE_INFO:
            # Answered, decided or cancelled: nothing is asked of the beneficiary any more.
            self.missing, self.respond_by = (), None
        self.status = status
        self.updated_at = at
        self.history.append(HistoryEntry(status, at, message, by_beneficiary=by_beneficiary))


@dataclass(frozen=True)
class RequestSubmitted:
    request: Request
    expected_completion: datetime
    # For routing rules: who filed, the nationality of the person it is about, and the
    # channel it came through.
    applicant_kind: str = ""
    subject_nationality: str = ""
    channel: str = ""
    # Arabic and Latin, for review's search.
    subject_names: tuple[str, str] = ("", "")


@dataclass(frozen=True)
class RequestFollowedUp:
    request: Request
    message: str


@dataclass(frozen=True)
class RequestCancelled:
    request: Request
    reason: str
    # The office cancelled it (cancel_off_record): the account is told why, not "as you asked".
    off_record: bool = False


@dataclass(frozen=True)
class RequestAnswered:
    request: Request
    message: str
    fields: dict[str, str]
    document_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class RequestAppealed:
    request: Request
    reason: str
    # The promise on the appeal's clock (the notice tells it): always after the appeal.
    expected_completion: datetime | None = None


Event = RequestSubmitted | RequestFollowedUp | RequestCancelled | RequestAnswered | RequestAppealed


def _idempotency_key(problems: dict[str, Bilingual], raw: str, *, required: bool) -> str:
    key = _capped(problems, "idempotency_key", raw, MAX_IDEMPOTENCY_KEY).strip()
    if not key and required and "idempotency_key" not in problems:
        problems["idempotency_key"] = REQUIRED
    elif key and not _KEY.fullmatch(key):
        problems["idempotency_key"] = Bilingual(
            "Latin letters, digits and . _ : - only", "حروف لاتينية وأرقام و . _ : - فقط"
        )
    return key


def _capped(problems: dict[str, Bilingual], name: str, value: str, limit: int) -> str:
    if len(value) > limit:
        problems[name] = at_most_characters(limit)
        return ""
    return value


def validate_submission(
    *,
    caller: Principal,
    catalog: Catalog,
    today: date,
    idempotency_key: str,
    sub_service_code: str,
    description: str,
    subject_id: str,
    fields: Mapping[str, str],
    document_ids: list[str],
    mobile: str,
    email: str,
    locale: str,
    cites_number: str,
) -> Submission:
    """Checks everything the beneficiary typed; reports every bad field at once.

    Every string and list is capped before anything else looks at it, and no problem text
    repeats what was typed.
    """
    if not caller.is_beneficiary:
        raise PermissionDenied(
            Bilingual("only beneficiaries submit requests", "تقديم الطلبات للمستفيدين فقط")
        )
    problems: dict[str, Bilingual] = {}
    if caller.role in _IDENTITY_PREFIX and (
        problem := id_number_problem(caller.subject, first_digits=_IDENTITY_PREFIX[caller.role])
    ):
        problems["applicant_id"] = Bilingual(
            f"the account's ID number {problem}", f"رقم هوية الحساب: {problem.ar}"
        )
    key = _idempotency_key(problems, idempotency_key, required=True)
    code = _capped(problems, "sub_service_code", sub_service_code, 100)
    raw_description = _capped(problems, "description", description, MAX_DESCRIPTION_CHARS)
    subject = _capped(problems, "subject_id", subject_id, 20).strip()
    mobile = _capped(problems, "contact.mobile", mobile, 32)
    email = _capped(problems, "contact.email", email, 254).strip()
    locale = _capped(problems, "contact.locale", locale, 8)
    cites = _capped(problems, "cites_request_number", cites_number, 20)
    if len(fields) > MAX_FIELDS:
        problems["fields"] = TOO_MANY_FIELDS
        fields = {}

    sub_service = catalog.sub_services.get(code)
    if sub_service is None:
        if "sub_service_code" not in problems:
            problems["sub_service_code"] = Bilingual(
                "not a sub-service of the catalog", "ليست خدمة فرعية من الدليل"
            )
    elif caller.role not in sub_service.filers:
        problems["sub_service_code"] = Bilingual(
            f"not open to a {caller.role.value} account", f"غير متاحة لحساب {ROLE_AR[caller.role]}"
        )

    text, problem = clean_text(raw_description, max_length=MAX_DESCRIPTION_CHARS)
    problem = problem or description_problem(text)
    if problem and "description" not in problems:
        problems["description"] = problem

    # The proto's empty subject_id means the caller, so the caller's own number is the same
    # request: an unnumbered dependent filed under either is keyed by name and date of birth.
    about_caller = not subject or subject == caller.subject
    if "subject_id" in problems:
        pass
    elif not subject:
        if caller.role is Role.ESTABLISHMENT:
            problems["subject_id"] = Bilingual(
                "required: the worker the request is about", "مطلوب: العامل الذي يخصه الطلب"
            )
        subject = caller.subject
    elif foreign_digits(subject):
        problems["subject_id"] = FOREIGN_DIGITS
    elif not _ID_NUMBER.fullmatch(subject):
        problems["subject_id"] = Bilingual(
            "a national ID, iqama or border number: 10 digits",
            "رقم هوية وطنية أو إقامة أو رقم حدود: 10 أرقام",
        )
    elif subject[0] in "12" and not luhn_valid(subject):
        problems["subject_id"] = CHECK_DIGIT

    values = _check_fields(problems, sub_service, fields, today) if sub_service else {}
    if sub_service and not {"subject_id", "applicant_id"} & problems.keys():
        _check_named_subject(problems, sub_service, values, subject, empty_is_caller=True)
    person = _unnumbered(sub_service, values) if sub_service and about_caller else ""

    documents = _document_ids(problems, document_ids)
    normalized = normalize_mobile(mobile)
    if normalized is None and "contact.mobile" not in problems:
        problems["contact.mobile"] = (
            FOREIGN_DIGITS
            if mobile_problem(mobile) == FOREIGN_DIGITS
            else Bilingual(
                "a Saudi mobile number, 05XXXXXXXX or +9665XXXXXXXX",
                "رقم جوال سعودي: 05XXXXXXXX أو +9665XXXXXXXX",
            )
        )
    if email and not _EMAIL.fullmatch(email):
        problems["contact.email"] = Bilingual("not an e-mail address", "ليس عنوان بريد إلكتروني")
    if locale not in ("", *Locale):
        problems["contact.locale"] = Bilingual("'ar' or 'en'", "'ar' أو 'en'")
    cited = parse_request_number(cites) if cites.strip() else None
    if cites.strip() and cited is None and "cites_request_number" not in problems:
        problems["cites_request_number"] = (
            FOREIGN_DIGITS if foreign_digits(cites) else NOT_A_REQUEST_NUMBER
        )
    if problems:
        raise InvalidArgument(problems)
    return Submission(
        applicant_id=caller.subject,
        applicant_role=caller.role,
        subject_id=subject,
        idempotency_key=key,
        sub_service_code=code,
        description=text,
        fields=values,
        document_ids=tuple(documents),
        contact=Contact(mobile=normalized or "", email=email, locale=Locale(locale or "ar")),
        cites_number=cited,
        person=person,
        channel=caller.channel,
    )


def _check_fields(
    problems: dict[str, Bilingual], sub_service: SubService, fields: Mapping[str, str], today: date
) -> dict[str, str]:
    """The sub-service's fields, normalized; unknown names and bad values are problems."""
    specs = {spec.name: spec for spec in sub_service.fields}
    values: dict[str, str] = {}
    for name, raw in fields.items():
        if not _FIELD_NAME.fullmatch(name):
            problems["fields"] = Bilingual(
                "field names are lower-case letters, digits and '_'",
                "أسماء الحقول حروف لاتينية صغيرة وأرقام و '_'",
            )
        elif name not in specs:
            problems[f"fields.{name}"] = Bilingual(
                "not a field of this sub-service", "ليس حقلًا من حقول هذه الخدمة الفرعية"
            )
        elif len(raw) > MAX_FIELD_VALUE:
            problems[f"fields.{name}"] = at_most_characters(specs[name].max_length)
    for name, spec in specs.items():
        raw = fields.get(name, "")
        if f"fields.{name}" in problems or len(raw) > MAX_FIELD_VALUE:
            continue
        # Zero-width characters and marks alone show nothing: blank, like spaces.
        if not visible_length(raw):
            if spec.required:
                problems[f"fields.{name}"] = REQUIRED
            continue
        value, problem = _field_value(sub_service, spec, raw, today)
        if problem:
            problems[f"fields.{name}"] = problem
        else:
            values[name] = value
    _check_needed(problems, sub_service, values, values.keys())
    return values


def _check_needed(
    problems: dict[str, Bilingual],
    sub_service: SubService,
    values: Mapping[str, str],
    touched: Collection[str],
) -> None:
    """A field an option of a choice field needs (RequiredWhen) is there when that option is
    chosen, if `touched` (the names given) holds the field or its choice field."""
    for spec in sub_service.fields:
        rule = spec.required_when
        if rule is None or spec.name in values or f"fields.{spec.name}" in problems:
            continue
        if spec.needed(values) and {spec.name, rule.field} & set(touched):
            problems[f"fields.{spec.name}"] = required_for(sub_service, spec, values)


def required_for(sub_service: SubService, spec: FieldSpec, values: Mapping[str, str]) -> Bilingual:
    """Why `spec` may not be left out: the option its RequiredWhen names, chosen in `values`."""
    rule = spec.required_when
    if rule is None or not spec.needed(values):
        return REQUIRED
    choice = next(other for other in sub_service.fields if other.name == rule.field)
    option = next(option for option in choice.options if option.value == values[rule.field])
    return Bilingual(
        f'required when "{choice.label.en}" is "{option.label.en}"',
        f"مطلوب عند اختيار «{option.label.ar}» في «{choice.label.ar}»",
    )


def _field_value(
    sub_service: SubService, spec: FieldSpec, raw: str, today: date
) -> tuple[str, Bilingual | None]:
    """A field's value checked by its type, and a nationality by the sub-service's limit."""
    value, problem = check_field(
        spec.type.value,
        raw,
        today=today,
        max_length=spec.max_length,
        options=[choice.value for choice in spec.options],
        past_only=spec.past_only,
        script=spec.script.value if spec.script else "",
    )
    nationality = spec.type is FieldType.NATIONALITY
    if not problem and nationality and not nationals_may_file(sub_service, value):
        problem = nationals_only(sub_service)
    return value, problem


def nationals_may_file(sub_service: SubService, nationality: str) -> bool:
    """Whether a request about a national of `nationality` fits the sub-service's limit (the
    visit-visa extension is for Syrian and Yemeni visitors, seed 001)."""
    return not sub_service.subject_nationalities or nationality in sub_service.subject_nationalities


def nationals_only(sub_service: SubService) -> Bilingual:
    codes = sub_service.subject_nationalities
    en = ", ".join(name for _, name in country_names(codes, "en"))
    ar = "، ".join(name for _, name in country_names(codes, "ar"))
    return Bilingual(
        f"this sub-service is for nationals of {en} only",
        f"هذه الخدمة الفرعية لحاملي جنسية {ar} فقط"
        if len(codes) == 1
        else f"هذه الخدمة الفرعية لحاملي الجنسيات التالية فقط: {ar}",
    )


# How each relation to the filer reads in a sub-service's "only about" (subject_relations).
_ABOUT = {
    SubjectRelation.SELF: Bilingual("the account holder", "صاحب الحساب"),
    SubjectRelation.DEPENDENT: Bilingual(
        "a dependent on the account holder's record", "أحد التابعين المسجلين على صاحب الحساب"
    ),
    SubjectRelation.SPONSORED_WORKER: Bilingual(
        "a worker the account sponsors", "عامل مكفول لدى صاحب الحساب"
    ),
    SubjectRelation.HOSTED_VISITOR: Bilingual(
        "a visitor the account holder hosts", "زائر يستضيفه صاحب الحساب"
    ),
}


def relation_fits(sub_service: SubService, relation: SubjectRelation) -> bool:
    """Whether a request about someone who stands so to its filer fits the sub-service (an
    absence report is about a worker the filer sponsors, seed 000)."""
    return not sub_service.subject_relations or relation in sub_service.subject_relations


def about_only(sub_service: SubService) -> Bilingual:
    """What the sub-service is for, said to a filer who named someone it is not about."""
    relations = [r for r in SubjectRelation if r in sub_service.subject_relations]
    return Bilingual(
        f"{sub_service.name.en} is only about " + " or ".join(_ABOUT[r] for r in relations),
        f"خدمة «{sub_service.name.ar}» تخص "
        + " أو ".join(_ABOUT[r].ar for r in relations)
        + " فقط",
    )


def _check_named_subject(
    problems: dict[str, Bilingual],
    sub_service: SubService,
    values: Mapping[str, str],
    subject: str,
    *,
    empty_is_caller: bool = False,
) -> None:
    """A field the catalog says names the person the request is about (an ID number) must be
    that person, its subject (SPEC §2): the relationship check sees the subject only."""
    problem = Bilingual(
        NOT_THE_SUBJECT
        + (
            " (subject_id, or the account holder's own when that is empty)"
            if empty_is_caller
            else " (the request's subject_id)"
        ),
        NOT_THE_SUBJECT.ar
        + (
            " (رقم صاحب الطلب، أو رقم صاحب الحساب إن لم يُذكر)"
            if empty_is_caller
            else " (رقم صاحب الطلب)"
        ),
    )
    for spec in sub_service.fields:
        if spec.names_subject and spec.name in values and values[spec.name] != subject:
            problems[f"fields.{spec.name}"] = problem


# An answer sent again under its key but changed (edited after its reply was lost): the
# first one stands, and the person learns it is there to see.
ANSWER_TAKEN = Bilingual(
    "an answer was already taken under this key: the request shows it",
    "سبق أن استُلم رد بهذا المفتاح، وهو ظاهر في الطلب",
)
NOT_THE_SUBJECT = Bilingual(
    "must be the ID number of the person the request is about",
    "يجب أن يكون رقم هوية الشخص الذي يخصه الطلب",
)
TOO_MANY_FIELDS = Bilingual(f"at most {MAX_FIELDS} fields", f"{MAX_FIELDS} حقلًا على الأكثر")
# The account's own ID: a resident signs in with their iqama, or a visitor with the border
# number that is all they have (SPEC, section 1).
_IDENTITY_PREFIX = {Role.CITIZEN: "1", Role.RESIDENT: "234"}
_KEY = re.compile(r"[A-Za-z0-9._:-]+")
# One plain mailbox: the local part an RFC 5322 dot-atom, so that no mail client reads it as
# other recipients (a list, a group, a display name, a comment) than the one stored; printable
# ASCII, as it goes to an SMTP server and into JSON as it is.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL = re.compile(rf"{_ATOM}(\.{_ATOM})*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_ID_NUMBER = re.compile(r"[1-4][0-9]{9}")
_UUID_TEXT = 45  # the longest form uuid.UUID reads: "urn:uuid:" and 36 characters


@dataclass(frozen=True)
class Answer:
    """A validated answer to an information request."""

    message: str
    fields: Mapping[str, str]
    document_ids: tuple[uuid.UUID, ...]
    # The channel's idempotency key for it ("": none given).
    key: str = ""

    @property
    def digest(self) -> str:
        return answer_digest(self.message, self.fields, self.document_ids)


def validate_answer(
    *,
    sub_service: SubService,
    subject_id: str,
    filed: Mapping[str, str],
    today: date,
    message: str,
    fields: Mapping[str, str],
    document_ids: list[str],
    idempotency_key: str = "",
) -> Answer:
    """Checks an answer like a submission: capped first, each given field by its type, and
    a field that names the person the request is about must name its `subject_id`. A choice
    the answer changes, or a field it gives, is checked against the request's fields as they
    stand (`filed`, with the answer's over them) for the fields an option needs. A blank
    field is left out, as in a submission, unless the request needs it."""
    problems: dict[str, Bilingual] = {}
    key = _idempotency_key(problems, idempotency_key, required=False)
    text = ""
    if len(message) > MAX_MESSAGE:
        problems["message"] = at_most_characters(MAX_MESSAGE)
    else:
        text, problem = clean_text(message, max_length=MAX_MESSAGE)
        if problem:
            problems["message"] = problem
    if len(fields) > MAX_FIELDS:
        problems["fields"] = TOO_MANY_FIELDS
        fields = {}
    specs = {spec.name: spec for spec in sub_service.fields}
    values: dict[str, str] = {}
    blanks: list[FieldSpec] = []
    for name, raw in fields.items():
        spec = specs.get(name) if _FIELD_NAME.fullmatch(name) else None
        if spec is None:
            problems["fields"] = Bilingual(
                "only fields of this sub-service", "حقول هذه الخدمة الفرعية فقط"
            )
            continue
        if len(raw) > MAX_FIELD_VALUE:
            problems[f"fields.{name}"] = at_most_characters(spec.max_length)
            continue
        # A form sends its empty inputs too: left blank, a field is left as the request has it,
        # as a submission leaves out a blank optional field.
        if not visible_length(raw):
            blanks.append(spec)
            continue
        value, problem = _field_value(sub_service, spec, raw, today)
        if problem:
            problems[f"fields.{name}"] = problem
        else:
            values[name] = value
    standing = {**filed, **values}
    for spec in blanks:
        # ...but one the request needs, by itself or by the option chosen, is not blanked.
        if spec.needed(standing):
            problems[f"fields.{spec.name}"] = required_for(sub_service, spec, standing)
    _check_needed(problems, sub_service, standing, fields.keys())
    _check_named_subject(problems, sub_service, values, subject_id)
    documents = _document_ids(problems, document_ids)
    if problems:
        raise InvalidArgument(problems)
    return Answer(message=text, fields=values, document_ids=tuple(documents), key=key)


def _document_ids(problems: dict[str, Bilingual], document_ids: list[str]) -> list[uuid.UUID]:
    if len(document_ids) > MAX_DOCUMENTS:
        problems["document_ids"] = at_most(DOCUMENTS, MAX_DOCUMENTS)
        return []
    documents: list[uuid.UUID] = []
    for index, raw in enumerate(document_ids):
        try:
            document = uuid.UUID(raw) if len(raw) <= _UUID_TEXT else None
        except ValueError:
            document = None
        if document is None:
            problems[f"document_ids[{index}]"] = Bilingual("not a document id", "ليس معرّف مستند")
        elif document in documents:
            problems[f"document_ids[{index}]"] = Bilingual("listed twice", "مذكور مرتين")
        documents.append(document or uuid.UUID(int=0))
    return documents


# Harakat, superscript alef and tatweel: a name typed with or without them is the same name.
_NAME_MARKS = re.compile("[\u064b-\u065f\u0670\u0640]")
# Letters typed one for another in names: hamza on alef, alef maqsura, ta marbuta.
_NAME_LETTERS = str.maketrans("أإآٱىة", "اااايه")


def _unnumbered(sub_service: SubService, values: Mapping[str, str]) -> str:
    """OpenKey.person of a request whose subject field was left empty for someone without a
    number: a digest of the fields the catalog names them by, folded so that the same
    dependent typed again (other spacing, case, harakat) is the same person."""
    for spec in sub_service.fields:
        if spec.otherwise_named_by and not values.get(spec.name):
            named = [_folded(values.get(name, "")) for name in spec.otherwise_named_by]
            return hashlib.sha256(json.dumps(named, ensure_ascii=False).encode()).hexdigest()
    return ""


def _folded(value: str) -> str:
    text = _NAME_MARKS.sub("", unicodedata.normalize("NFKC", value)).translate(_NAME_LETTERS)
    return " ".join(text.casefold().split())
