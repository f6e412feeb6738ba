"""What notify tells whom, and the record of each message.

One message per (event, channel, recipient): its delivery row is written, pending, before the
message leaves, under an id derived from those three, which is also the idempotency key the SMS
gateway sees and the e-mail's Message-ID. A redelivered event finds the row and either does
nothing (the message was settled) or sends again under the same key (the process died between
the send and the record), which the gateway answers without sending twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from tawasul_platform.errors import InvalidArgument
from tawasul_platform.identity import Role

# Delivery ids are uuid5(DELIVERY_NAMESPACE, "<event id>/<channel>/<recipient>").
DELIVERY_NAMESPACE = uuid.UUID("3f0e7a52-6c1d-5b8e-9a41-7d2c0b9e4f15")
# The longest a pending message waits between two tries while its channel is unavailable.
RETRY_WAIT_MOST = timedelta(seconds=30)


class Locale(StrEnum):
    AR = "ar"
    EN = "en"


def locale_of(raw: str) -> Locale:
    """English when asked for ("en", "en-GB" …); Arabic, the default, otherwise."""
    tag = raw.strip().lower()
    return Locale.EN if tag == "en" or tag.startswith("en-") else Locale.AR


class Status(StrEnum):
    """A request's status as the beneficiary sees it (from review's events)."""

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


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    # The inbox the recipient reads over gRPC (ListInbox).
    INAPP = "inapp"


class Audience(StrEnum):
    BENEFICIARY = "beneficiary"
    # The reviewer holding a request, warned before its SLA is breached.
    REVIEWER = "reviewer"
    # A department's supervisors, told of SLA breaches and warned of requests no one holds.
    SUPERVISOR = "supervisor"


class DeliveryStatus(StrEnum):
    # Recorded before the send: found again after a crash, it is sent under the same key.
    PENDING = "pending"
    # The SMS gateway or the mail server took it.
    SENT = "sent"
    # Its receipt came back, or it is in the in-app inbox.
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class Recipient:
    """Where one person is reached; any of the three may be unknown."""

    mobile: str = ""
    email: str = ""
    # Whose in-app inbox: the applicant's ID or iqama number, or an employee id.
    account: str = ""

    def address(self, channel: Channel) -> str:
        if channel is Channel.SMS:
            return self.mobile
        if channel is Channel.EMAIL:
            return self.email
        return self.account


@dataclass(frozen=True)
class Told:
    """What a request's beneficiary was last told: the latest status change (review's count)
    and the latest cancellation (when it was made), while it stands: a cancel-too-late told
    after it undoes it. And the cancellation the latest cancel-too-late told answered (when it
    was made): intake's, read after it (the topics are not in step), was answered already. And
    the last day the latest rejection told may be appealed (None: it did not say, or none may
    be): a cancel-too-late restating it, which does not carry it, tells it again."""

    sequence: int = 0
    cancelled_at: datetime | None = None
    too_late_at: datetime | None = None
    appeal_until: date | None = None


@dataclass(frozen=True)
class Notice:
    """An event someone is to be told about, with what the message says."""

    event_id: uuid.UUID
    event_type: str
    # One of templates.Kind: the message to send.
    kind: str
    request_id: uuid.UUID
    locale: Locale
    audience: Audience
    recipients: tuple[Recipient, ...]
    # The template's variables.
    values: Mapping[str, object]
    # A status change's place among its request's (review's count; 0: none stamped): one no
    # later than one told is stale.
    sequence: int = 0
    # A cancellation (Kind.CANCELLED, or the office's: CANCELLED_OFF_RECORD), or the one a
    # cancel-too-late answers: when it was made, as intake took it (None: not said). Review
    # restates one a closure overtook, or says it came too late, with the same time: told
    # once, or not as standing.
    cancelled_at: datetime | None = None
    # A closure for want of an answer: the deadline it closed at. A cancellation made by it
    # stands (review withdraws the request), so the closure is not told once it is known.
    deadline: datetime | None = None

    @classmethod
    def create(
        cls,
        *,
        event_id: str,
        event_type: str,
        kind: str,
        request_id: str,
        locale: str,
        recipients: tuple[Recipient, ...],
        values: Mapping[str, object],
        audience: Audience = Audience.BENEFICIARY,
        sequence: int = 0,
        cancelled_at: datetime | None = None,
        deadline: datetime | None = None,
    ) -> Notice:
        """Checks an event's fields; InvalidArgument when it cannot be turned into messages."""
        problems: dict[str, str] = {}
        ids: dict[str, uuid.UUID] = {}
        for name, raw in (("event_id", event_id), ("request_id", request_id)):
            try:
                ids[name] = uuid.UUID(raw)
            except ValueError:
                problems[name] = "not a uuid"
        if "number" in values and not str(values["number"]).strip():
            problems["request_number"] = "missing"
        if problems:
            raise InvalidArgument(problems)
        return cls(
            event_id=ids["event_id"],
            event_type=event_type,
            kind=kind,
            request_id=ids["request_id"],
            locale=locale_of(locale),
            audience=audience,
            recipients=recipients,
            values=values,
            sequence=sequence,
            cancelled_at=cancelled_at,
            deadline=deadline,
        )

    def addresses(self, channel: Channel) -> list[str]:
        """Each distinct address the channel has for the recipients, in order."""
        found = [r.address(channel).strip() for r in self.recipients]
        return list(dict.fromkeys(a for a in found if a))


def delivery_id_for(event_id: uuid.UUID, channel: Channel, recipient: str) -> uuid.UUID:
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{event_id}/{channel.value}/{recipient}")


def mask(recipient: str, channel: Channel) -> str:
    """A number or address as shown back: enough to recognise it, not to use it."""
    if channel is Channel.SMS and len(recipient) > 7:
        return f"{recipient[:5]}{'•' * (len(recipient) - 8)}{recipient[-3:]}"
    if channel is Channel.EMAIL and "@" in recipient:
        local, domain = recipient.rsplit("@", 1)
        return f"{local[:1]}•••@{domain}"
    return recipient


@dataclass(frozen=True)
class Outgoing:
    """One message as a channel sends it."""

    to: str
    text: str
    # The delivery id: the gateway's idempotency key, the e-mail's Message-ID.
    key: str
    subject: str = ""


@dataclass(frozen=True)
class SendOutcome:
    """What the channel answered: taken (with its id for the message) or refused."""

    accepted: bool
    provider_message_id: str = ""
    detail: str = ""


@dataclass
class Delivery:
    id: uuid.UUID
    request_id: uuid.UUID
    cause_event_id: uuid.UUID
    cause_event_type: str
    kind: str
    channel: Channel
    audience: Audience
    recipient: str
    subject: str
    text: str
    parts: int
    status: DeliveryStatus
    created_at: datetime
    updated_at: datetime
    attempts: int = 0
    provider_message_id: str = ""
    error: str = ""
    # A pending message that met its channel unavailable is not tried again before then.
    retry_at: datetime | None = None
    events: list[DeliveryRecorded] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def intend(
        cls,
        *,
        notice: Notice,
        channel: Channel,
        recipient: str,
        subject: str,
        text: str,
        parts: int,
        now: datetime,
    ) -> Delivery:
        return cls(
            id=delivery_id_for(notice.event_id, channel, recipient),
            request_id=notice.request_id,
            cause_event_id=notice.event_id,
            cause_event_type=notice.event_type,
            kind=notice.kind,
            channel=channel,
            audience=notice.audience,
            recipient=recipient,
            subject=subject,
            text=text,
            parts=parts,
            status=DeliveryStatus.PENDING,
            created_at=now,
            updated_at=now,
        )

    @property
    def settled(self) -> bool:
        """Nothing more to send: taken, delivered or failed."""
        return self.status is not DeliveryStatus.PENDING

    def tried(self, error: str, now: datetime, *, first_wait: timedelta) -> None:
        """A send that found the channel unavailable: not tried again before twice as long as
        the last wait (from `first_wait`, at most RETRY_WAIT_MOST)."""
        self.attempts += 1
        self.error = error[:500]
        self.updated_at = now
        self.retry_at = now + min(first_wait * 2 ** (self.attempts - 1), RETRY_WAIT_MOST)

    def sent(self, outcome: SendOutcome, now: datetime) -> None:
        if outcome.accepted:
            self._settle(DeliveryStatus.SENT, now, provider_message_id=outcome.provider_message_id)
        else:
            self.fail(outcome.detail, now)

    def fail(self, error: str, now: datetime) -> None:
        self._settle(DeliveryStatus.FAILED, now, error=error)

    def delivered(self, now: datetime) -> None:
        self._settle(DeliveryStatus.DELIVERED, now)

    def _settle(
        self,
        status: DeliveryStatus,
        now: datetime,
        *,
        provider_message_id: str = "",
        error: str = "",
    ) -> None:
        self.status = status
        self.updated_at = now
        self.provider_message_id = provider_message_id or self.provider_message_id
        self.error = error[:500] or self.error
        self.events.append(DeliveryRecorded(delivery=replace(self, events=[])))


@dataclass(frozen=True)
class DeliveryRecorded:
    """A delivery reached a status worth publishing (sent, delivered, failed)."""

    delivery: Delivery


@dataclass(frozen=True)
class InboxMessage:
    """A message in someone's in-app inbox."""

    id: uuid.UUID
    owner_id: str
    # Whose inbox: a beneficiary's (owned by their ID) or a reviewer's or supervisor's (by
    # their employee id). Two spaces of ids, which a digits-only employee id could overlap.
    audience: Audience
    request_id: uuid.UUID
    kind: str
    text: str
    created_at: datetime
    read_at: datetime | None = None

    @classmethod
    def of(cls, delivery: Delivery) -> InboxMessage:
        return cls(
            id=delivery.id,
            owner_id=delivery.recipient,
            audience=delivery.audience,
            request_id=delivery.request_id,
            kind=delivery.kind,
            text=delivery.text,
            created_at=delivery.created_at,
        )


@dataclass(frozen=True)
class RequestAccess:
    """Who may see what was sent about a request: its applicant, and its department. The
    department is the catalog's from the submission until routing decides (`routed`), and
    routing's from then on, in whichever order the two arrive. And who filed it, which says
    in whose portal's words its beneficiary is told (templates: `establishment`)."""

    request_id: uuid.UUID
    applicant_id: str
    department: str
    routed: bool = False
    # The latest of routing's decisions applied (0: none stamped yet): its sequence.
    sequence: int = 0
    # A citizen, a resident or an establishment (None: the events did not say).
    applicant_kind: Role | None = None
    # The latest decision's transfer (RequestRouted.transfer_sequence), which orders decisions
    # before their sequence: routing numbers them again when a restore of its database is
    # replayed, and a decision numbered lower than one applied may be the later.
    transfer_sequence: int = 0

    @property
    def place(self) -> tuple[int, int]:
        return self.transfer_sequence, self.sequence

    def outdated_by(self, later: RequestAccess) -> bool:
        """Whether `later` is a decision of routing no later than one this applied (a dead
        letter replayed, a late one): it would give the request back to a department it
        left. 0: from before routing counted them, applied as it comes."""
        return later.routed and later.sequence > 0 and later.place <= self.place

    def then(self, later: RequestAccess) -> RequestAccess:
        """What is known once `later` (of the same request) is applied after this."""
        if self.outdated_by(later):
            return self
        transfer, sequence = max(self.place, later.place)
        kind = later.applicant_kind or self.applicant_kind
        if self.routed and not later.routed:
            return replace(
                later,
                department=self.department,
                routed=True,
                sequence=sequence,
                transfer_sequence=transfer,
                applicant_kind=kind,
            )
        return replace(later, sequence=sequence, transfer_sequence=transfer, applicant_kind=kind)
