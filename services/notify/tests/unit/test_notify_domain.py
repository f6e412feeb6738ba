"""Notify's domain: SMS templates in both languages, notices, delivery ids."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest
from tawasul.common.v1 import common_pb2
from tawasul_notify.adapters.events import STATUS_FROM_WIRE
from tawasul_notify.domain.model import (
    MAX_NOTE,
    STATUS_TEMPLATES,
    SUBMITTED_TEMPLATES,
    Channel,
    Delivery,
    DeliveryRecorded,
    DeliveryStatus,
    Locale,
    Notice,
    NoticeKind,
    SendOutcome,
    Status,
    compose_sms,
    delivery_id_for,
    locale_of,
)
from tawasul_platform.errors import InvalidArgument

NUMBER = "TW2600000042"


def notice(
    kind: NoticeKind = NoticeKind.SUBMITTED,
    *,
    status: Status = Status.SUBMITTED,
    locale: str = "",
    message: str = "",
) -> Notice:
    return Notice.create(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.submitted",
        kind=kind,
        request_id=str(uuid.uuid4()),
        request_number=NUMBER,
        mobile="+966512345678",
        locale=locale,
        status=status,
        message=message,
    )


def changed(status: Status, *, locale: str = "", message: str = "") -> Notice:
    return notice(NoticeKind.STATUS_CHANGED, status=status, locale=locale, message=message)


def test_submitted_sms_in_arabic_by_default() -> None:
    assert compose_sms(notice()) == (
        f"تم استلام طلبك رقم {NUMBER} في خدمة تواصل، وسيتم الرد خلال 7 أيام عمل."
    )


def test_submitted_sms_in_english_when_asked() -> None:
    assert compose_sms(notice(locale="en")) == (
        f"Your Tawasul request {NUMBER} has been received; we will answer within 7 working days."
    )


@pytest.mark.parametrize(
    ("raw", "locale"),
    [
        ("", Locale.AR),
        ("ar", Locale.AR),
        ("fr", Locale.AR),
        ("en", Locale.EN),
        ("EN-gb", Locale.EN),
    ],
)
def test_locale_defaults_to_arabic(raw: str, locale: Locale) -> None:
    assert locale_of(raw) is locale


@pytest.mark.parametrize(
    ("status", "arabic", "english"),
    [
        (Status.UNDER_REVIEW, "قيد المراجعة", "under review"),
        (Status.ACCEPTED, "مقبول", "accepted"),
        (Status.REJECTED, "مرفوض", "rejected"),
    ],
)
def test_status_sms_names_the_status_in_each_language(
    status: Status, arabic: str, english: str
) -> None:
    ar = compose_sms(changed(status, locale="ar"))
    en = compose_sms(changed(status, locale="en"))
    assert ar is not None
    assert en is not None
    assert arabic in ar
    assert NUMBER in ar
    assert english in en
    assert NUMBER in en
    assert "{" not in ar + en


def test_every_template_carries_the_request_number() -> None:
    templates = [*SUBMITTED_TEMPLATES.values()]
    for by_locale in STATUS_TEMPLATES.values():
        assert set(by_locale) == set(Locale)
        templates.extend(by_locale.values())
    assert set(SUBMITTED_TEMPLATES) == set(Locale)
    for template in templates:
        assert "{number}" in template


@pytest.mark.parametrize("status", [Status.ACCEPTED, Status.REJECTED])
def test_decisions_carry_the_reviewer_message(status: Status) -> None:
    ar = compose_sms(changed(status, message="  يرجى مراجعة\nالفرع  "))
    en = compose_sms(changed(status, locale="en", message="Bring the original passport."))
    assert ar is not None
    assert "ملاحظة الموظف: يرجى مراجعة الفرع" in ar
    assert en is not None
    assert "Reviewer's note: Bring the original passport." in en


def test_no_note_without_a_message_and_none_while_under_review() -> None:
    accepted = compose_sms(changed(Status.ACCEPTED, locale="en"))
    assert accepted == f"Your Tawasul request {NUMBER} has been accepted."
    review = compose_sms(changed(Status.UNDER_REVIEW, locale="en", message="internal"))
    assert review == f"Your Tawasul request {NUMBER} is under review."


def test_a_long_note_is_cut() -> None:
    text = compose_sms(changed(Status.REJECTED, locale="en", message="x" * 2000))
    assert text is not None
    assert "x" * MAX_NOTE not in text
    assert "x" * (MAX_NOTE - 1) + "…" in text


def test_a_message_with_braces_is_inserted_literally() -> None:
    text = compose_sms(changed(Status.REJECTED, locale="en", message="{number} {note}"))
    assert text is not None
    assert "Reviewer's note: {number} {note}" in text


def test_a_status_change_back_to_submitted_sends_nothing() -> None:
    assert compose_sms(changed(Status.SUBMITTED)) is None


def test_a_notice_needs_ids_number_and_mobile() -> None:
    with pytest.raises(InvalidArgument) as exc:
        Notice.create(
            event_id="nope",
            event_type="x",
            kind=NoticeKind.SUBMITTED,
            request_id="",
            request_number=" ",
            mobile="",
            locale="ar",
        )
    assert set(exc.value.violations) == {
        "event_id",
        "request_id",
        "request_number",
        "contact.mobile",
    }


def test_delivery_ids_are_stable_per_event_and_channel() -> None:
    event = uuid.uuid4()
    assert delivery_id_for(event, Channel.SMS) == delivery_id_for(event, Channel.SMS)
    assert delivery_id_for(event, Channel.SMS) != delivery_id_for(uuid.uuid4(), Channel.SMS)


def test_a_recorded_delivery_carries_its_event() -> None:
    n = notice()
    now = datetime.now(UTC)
    accepted = Delivery.record(
        notice=n, channel=Channel.SMS, text="t", outcome=SendOutcome(True, "p-1"), now=now
    )
    assert accepted.id == delivery_id_for(n.event_id, Channel.SMS)
    assert accepted.status is DeliveryStatus.ACCEPTED
    assert accepted.provider_message_id == "p-1"
    assert accepted.events == [DeliveryRecorded(delivery=accepted)]
    refused = Delivery.record(
        notice=n, channel=Channel.SMS, text="t", outcome=SendOutcome(False), now=now
    )
    assert refused.status is DeliveryStatus.FAILED


def test_the_receipt_names_the_promised_date_in_both_calendars() -> None:
    # 21:30 UTC on 31 December 2026 is already 1 January 2027 in Riyadh.
    due = datetime(2026, 12, 31, 21, 30, tzinfo=UTC)
    arabic = Notice.create(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.submitted",
        kind=NoticeKind.SUBMITTED,
        request_id=str(uuid.uuid4()),
        request_number=NUMBER,
        mobile="+966551234567",
        locale="ar",
        expected_completion=due,
    )
    english = dataclasses.replace(arabic, locale=Locale.EN)
    assert compose_sms(arabic) == (
        f"تم استلام طلبك رقم {NUMBER} في خدمة تواصل، وموعد الإنجاز المتوقع"
        " الجمعة ٢٣ رجب ١٤٤٨ هـ الموافق ١ يناير ٢٠٢٧ م."
    )
    assert compose_sms(english) == (
        f"Your Tawasul request {NUMBER} has been received; expected completion:"
        " Friday 23 Rajab 1448 AH (1 January 2027)."
    )


def test_every_status_review_can_publish_is_understood() -> None:
    """An unknown status would be dead-lettered: every wire status must map."""
    wire = {v for v in common_pb2.RequestStatus.values() if v}
    assert wire == set(STATUS_FROM_WIRE)


def test_an_information_request_tells_what_is_missing() -> None:
    text = compose_sms(changed(Status.NEEDS_MORE_INFO, locale="en", message="Attach a clear photo"))
    assert text == (
        f"Your Tawasul request {NUMBER} needs additional action. Reviewer's note: Attach a clear"
        " photo Please answer through the channel you filed it on."
    )
    assert compose_sms(changed(Status.RETURNED_BY_APPLICANT)) is None
