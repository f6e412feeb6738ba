"""What beneficiaries are told about their requests, and the record of each message sent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from tawasul_calendar import RIYADH, format_date
from tawasul_calendar import Locale as DateLocale
from tawasul_platform.errors import InvalidArgument

# Reviewer messages are cut to this many characters in an SMS; the full text is in the portal.
MAX_NOTE = 300
# Delivery ids are uuid5(DELIVERY_NAMESPACE, "<event id>/<channel>"): a redelivered event
# gets the same id, which the gateway sees as the message's reference.
DELIVERY_NAMESPACE = uuid.UUID("3f0e7a52-6c1d-5b8e-9a41-7d2c0b9e4f15")


class Locale(StrEnum):
    AR = "ar"
    EN = "en"


def locale_of(raw: str) -> Locale:
    """English when asked for ("en", "en-GB" …); Arabic, the default, otherwise."""
    tag = raw.strip().lower()
    return Locale.EN if tag == "en" or tag.startswith("en-") else Locale.AR


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


class NoticeKind(StrEnum):
    SUBMITTED = "submitted"
    STATUS_CHANGED = "status_changed"


class Channel(StrEnum):
    SMS = "sms"


class DeliveryStatus(StrEnum):
    ACCEPTED = "accepted"
    FAILED = "failed"


# The templates: {number} is the request number, {note} the reviewer's message (or nothing).
# With the completion date promised at submission, in Hijri and Gregorian (SPEC §6 item 2).
SUBMITTED_WITH_DATE_TEMPLATES: dict[Locale, str] = {
    Locale.AR: "تم استلام طلبك رقم {number} في خدمة تواصل، وموعد الإنجاز المتوقع {due}.",
    Locale.EN: "Your Tawasul request {number} has been received; expected completion: {due}.",
}
SUBMITTED_TEMPLATES: dict[Locale, str] = {
    Locale.AR: "تم استلام طلبك رقم {number} في خدمة تواصل، وسيتم الرد خلال 7 أيام عمل.",
    Locale.EN: (
        "Your Tawasul request {number} has been received; we will answer within 7 working days."
    ),
}
# Statuses with no template (returned by the applicant: they know) send nothing.
STATUS_TEMPLATES: dict[Status, dict[Locale, str]] = {
    Status.NEEDS_MORE_INFO: {
        Locale.AR: (
            "طلبك رقم {number} في خدمة تواصل بحاجة لإجراءات إضافية.{note}"
            " يرجى الرد عبر القناة التي قدمت منها الطلب."
        ),
        Locale.EN: (
            "Your Tawasul request {number} needs additional action.{note}"
            " Please answer through the channel you filed it on."
        ),
    },
    Status.CLOSED: {
        Locale.AR: "تم إغلاق طلبك رقم {number} في خدمة تواصل.{note}",
        Locale.EN: "Your Tawasul request {number} has been closed.{note}",
    },
    Status.TRANSFERRED: {
        Locale.AR: "تمت إحالة طلبك رقم {number} في خدمة تواصل إلى القسم المختص.",
        Locale.EN: "Your Tawasul request {number} has been sent to the competent section.",
    },
    Status.UNDER_REVIEW: {
        Locale.AR: "حالة طلبك رقم {number} في خدمة تواصل: قيد المراجعة.",
        Locale.EN: "Your Tawasul request {number} is under review.",
    },
    Status.ACCEPTED: {
        Locale.AR: "حالة طلبك رقم {number} في خدمة تواصل: مقبول.{note}",
        Locale.EN: "Your Tawasul request {number} has been accepted.{note}",
    },
    Status.REJECTED: {
        Locale.AR: (
            "حالة طلبك رقم {number} في خدمة تواصل: مرفوض.{note}"
            " يمكنك تقديم طلب جديد بعد استكمال الملاحظات."
        ),
        Locale.EN: (
            "Your Tawasul request {number} has been rejected.{note}"
            " You may file a new request with the corrections."
        ),
    },
}
# A tracking code: said once, short-lived, and stored nowhere but in the SMS itself.
ONE_TIME_CODE_TEMPLATES: dict[Locale, str] = {
    Locale.AR: (
        "رمز التحقق لمتابعة طلبك في خدمة تواصل: {code}، صالح لمدة {minutes} دقائق."
        " لا تشاركه مع أحد."
    ),
    Locale.EN: (
        "Your Tawasul tracking code is {code}, valid for {minutes} minutes. Do not share it."
    ),
}
ONE_TIME_CODE_EVENT = "tawasul.tracking.one-time-code"
NOTE_TEMPLATES: dict[Locale, str] = {
    Locale.AR: " ملاحظة الموظف: {message}",
    Locale.EN: " Reviewer's note: {message}",
}


@dataclass(frozen=True)
class Notice:
    """A request event that the beneficiary is to be told about."""

    event_id: uuid.UUID
    event_type: str
    kind: NoticeKind
    request_id: uuid.UUID
    request_number: str
    mobile: str
    locale: Locale
    status: Status = Status.SUBMITTED
    message: str = ""
    # The Riyadh date the office promised an answer by, when the event carries it.
    expected_completion: date | None = None

    @classmethod
    def create(
        cls,
        *,
        event_id: str,
        event_type: str,
        kind: NoticeKind,
        request_id: str,
        request_number: str,
        mobile: str,
        locale: str,
        status: Status = Status.SUBMITTED,
        message: str = "",
        expected_completion: datetime | None = None,
    ) -> Notice:
        """Checks an event's fields; InvalidArgument when it cannot be turned into a message."""
        problems: dict[str, str] = {}
        ids: dict[str, uuid.UUID] = {}
        for name, raw in (("event_id", event_id), ("request_id", request_id)):
            try:
                ids[name] = uuid.UUID(raw)
            except ValueError:
                problems[name] = "not a uuid"
        if not request_number.strip():
            problems["request_number"] = "missing"
        if not mobile.strip():
            problems["contact.mobile"] = "missing"
        if problems:
            raise InvalidArgument(problems)
        return cls(
            event_id=ids["event_id"],
            event_type=event_type,
            kind=kind,
            request_id=ids["request_id"],
            request_number=request_number.strip(),
            mobile=mobile.strip(),
            locale=locale_of(locale),
            status=status,
            message=message,
            expected_completion=(
                expected_completion.astimezone(RIYADH).date() if expected_completion else None
            ),
        )


def _note(message: str, locale: Locale) -> str:
    text = " ".join(message.split())
    if not text:
        return ""
    if len(text) > MAX_NOTE:
        text = text[: MAX_NOTE - 1].rstrip() + "…"
    return NOTE_TEMPLATES[locale].format(message=text)


def compose_sms(notice: Notice) -> str | None:
    """The SMS text for a notice in the beneficiary's language; None when there is nothing to say.

    (A status change back to "submitted" has no template: the receipt was sent already.)
    """
    if notice.kind is NoticeKind.SUBMITTED and notice.expected_completion is not None:
        due = format_date(notice.expected_completion, DateLocale(notice.locale.value))
        return SUBMITTED_WITH_DATE_TEMPLATES[notice.locale].format(
            number=notice.request_number, due=due
        )
    if notice.kind is NoticeKind.SUBMITTED:
        templates: dict[Locale, str] | None = SUBMITTED_TEMPLATES
    else:
        templates = STATUS_TEMPLATES.get(notice.status)
    if templates is None:
        return None
    return templates[notice.locale].format(
        number=notice.request_number, note=_note(notice.message, notice.locale)
    )


def delivery_id_for(event_id: uuid.UUID, channel: Channel) -> uuid.UUID:
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{event_id}/{channel.value}")


def one_time_code_sms(*, code: str, minutes: int, locale: Locale) -> tuple[str, str]:
    """The SMS text, and the same text with the code masked for the delivery record."""
    template = ONE_TIME_CODE_TEMPLATES[locale]
    return (
        template.format(code=code, minutes=minutes),
        template.format(code="•" * len(code), minutes=minutes),
    )


@dataclass(frozen=True)
class SendOutcome:
    """What the gateway answered: accepted (with its id) or refused."""

    accepted: bool
    provider_message_id: str = ""
    detail: str = ""


@dataclass
class Delivery:
    id: uuid.UUID
    request_id: uuid.UUID
    cause_event_id: uuid.UUID
    cause_event_type: str
    channel: Channel
    recipient: str
    text: str
    status: DeliveryStatus
    provider_message_id: str
    created_at: datetime
    events: list[DeliveryRecorded] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def record(
        cls,
        *,
        notice: Notice,
        channel: Channel,
        text: str,
        outcome: SendOutcome,
        now: datetime,
    ) -> Delivery:
        delivery = cls(
            id=delivery_id_for(notice.event_id, channel),
            request_id=notice.request_id,
            cause_event_id=notice.event_id,
            cause_event_type=notice.event_type,
            channel=channel,
            recipient=notice.mobile,
            text=text,
            status=DeliveryStatus.ACCEPTED if outcome.accepted else DeliveryStatus.FAILED,
            provider_message_id=outcome.provider_message_id,
            created_at=now,
        )
        delivery.events.append(DeliveryRecorded(delivery=delivery))
        return delivery


def record_one_time_code(
    *,
    delivery_id: uuid.UUID,
    request_id: uuid.UUID,
    mobile: str,
    masked_text: str,
    outcome: SendOutcome,
    now: datetime,
) -> Delivery:
    delivery = Delivery(
        id=delivery_id,
        request_id=request_id,
        cause_event_id=delivery_id,
        cause_event_type=ONE_TIME_CODE_EVENT,
        channel=Channel.SMS,
        recipient=mobile,
        text=masked_text,
        status=DeliveryStatus.ACCEPTED if outcome.accepted else DeliveryStatus.FAILED,
        provider_message_id=outcome.provider_message_id,
        created_at=now,
    )
    delivery.events.append(DeliveryRecorded(delivery=delivery))
    return delivery


@dataclass(frozen=True)
class DeliveryRecorded:
    delivery: Delivery
