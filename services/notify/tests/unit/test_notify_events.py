"""Notify's reading of request events (who is told what) and the results it publishes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from google.protobuf.message import Message
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_calendar import RIYADH, format_date
from tawasul_calendar import Locale as CalendarLocale
from tawasul_notify.adapters.events import notice_from, to_event
from tawasul_notify.domain.model import (
    Audience,
    Channel,
    Delivery,
    DeliveryRecorded,
    Locale,
    Notice,
    Recipient,
    SendOutcome,
    mask,
)
from tawasul_notify.domain.templates import (
    LRI,
    PDI,
    PORTAL_WORDS,
    RLI,
    Kind,
    channels_for,
    render,
)
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.events import timestamp

REQUEST = str(uuid.uuid4())
NUMBER = "TW-1447-000042"
CONTACT = common_pb2.Contact(mobile="+966512345678", email="amal@example.sa", locale="en")
BENEFICIARY = (Recipient("+966512345678", "amal@example.sa", "1000000008"),)
STAFF = {"S1": "s1@passports.example"}


def envelope(field: str, payload: Message) -> events_pb2.Envelope:
    event = events_pb2.Envelope(event_id=str(uuid.uuid4()), event_type="test", request_id=REQUEST)
    getattr(event, field).CopyFrom(payload)
    return event


def read(event: events_pb2.Envelope) -> Notice:
    found = notice_from(event, STAFF)
    assert found is not None
    return found


def status_changed(status: common_pb2.RequestStatus.ValueType, **more: Any) -> events_pb2.Envelope:
    """Review's status change of the request, to the beneficiary (`more` overrides)."""
    fields: dict[str, Any] = {
        "request_id": REQUEST,
        "request_number": NUMBER,
        "contact": CONTACT,
        "applicant_id": "1000000008",
    }
    payload = events_pb2.RequestStatusChanged(status=status, **(fields | more))
    return envelope("request_status_changed", payload)


def test_a_submission_promises_its_date_in_riyadh() -> None:
    submitted = events_pb2.RequestSubmitted(
        request_id=REQUEST,
        request_number=NUMBER,
        applicant_id="1000000008",
        contact=CONTACT,
        # 22:30 UTC is already the next day in Riyadh.
        expected_completion_at=timestamp(datetime(2026, 3, 9, 22, 30, tzinfo=UTC)),
    )
    n = read(envelope("request_submitted", submitted))
    assert (n.kind, n.locale, n.recipients) == (Kind.SUBMITTED, Locale.EN, BENEFICIARY)
    assert n.values == {"number": NUMBER, "due": date(2026, 3, 10)}


def test_needs_more_info_says_what_is_missing_and_by_when() -> None:
    n = read(
        status_changed(
            common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
            message="Please attach a clearer copy",
            missing=[
                common_pb2.MissingItem(kind="document", name="passport_copy", description=""),
                common_pb2.MissingItem(kind="field", name="x", description="Your iqama expiry"),
            ],
            respond_by=timestamp(datetime(2026, 3, 12, 9, tzinfo=UTC)),
        )
    )
    assert n.kind == Kind.NEEDS_MORE_INFO
    assert n.values == {
        "number": NUMBER,
        "note": "Please attach a clearer copy",
        "missing": ["passport_copy", "Your iqama expiry"],
        "respond_by": date(2026, 3, 12),
        # Not said by the event: Absher's words unless the submission said an establishment.
        "establishment": False,
    }


@pytest.mark.parametrize(("locale", "reason"), [("ar", "المستندات غير واضحة"), ("en", "unclear")])
def test_a_rejection_gives_the_reason_in_the_beneficiarys_language(
    locale: str, reason: str
) -> None:
    n = read(
        status_changed(
            common_pb2.REQUEST_STATUS_REJECTED,
            contact=common_pb2.Contact(mobile="+966512345678", locale=locale),
            reason=common_pb2.LocalizedText(ar="المستندات غير واضحة", en="unclear"),
        )
    )
    assert (n.kind, n.values) == (
        Kind.REJECTED,
        {"number": NUMBER, "note": "", "reason": reason, "appeal": True, "appeal_until": None},
    )


def test_a_rejection_names_the_last_day_it_may_be_appealed() -> None:
    """Review computes it by intake's rule and puts it on the event; the beneficiary is told
    that day, in Riyadh, in both calendars."""
    # The end of Wednesday 16 December in Riyadh: 20:59 UTC, the 16th there and here.
    until = datetime(2026, 12, 16, 23, 59, 59, 999999, tzinfo=RIYADH)
    n = read(
        status_changed(
            common_pb2.REQUEST_STATUS_REJECTED,
            reason=common_pb2.LocalizedText(ar="المستندات غير واضحة", en="unclear"),
            appeal_until=timestamp(until),
        )
    )
    assert n.values["appeal_until"] == date(2026, 12, 16)
    for locale in Locale:
        day = format_date(date(2026, 12, 16), CalendarLocale(locale.value))
        for channel in channels_for(Kind.REJECTED):
            body = render(Kind.REJECTED, channel, locale, n.values).body
            assert day in body, body
            assert "within the time allowed" not in body
            assert "خلال المدة المتاحة" not in body


def test_a_rejection_without_the_appeal_date_still_offers_the_appeal() -> None:
    """An event from before review named the day (a dead letter replayed) says "within the
    time allowed", as before."""
    n = read(status_changed(common_pb2.REQUEST_STATUS_REJECTED))
    assert n.values["appeal_until"] is None
    email = render(Kind.REJECTED, Channel.EMAIL, Locale.EN, n.values).body
    assert "appeal this decision in Tawasul within the time allowed" in email
    sms = render(Kind.REJECTED, Channel.SMS, Locale.AR, n.values).body
    assert "ولك التظلم منه أو تقديم طلب جديد" in sms


@pytest.mark.parametrize(
    ("locale", "said"),
    [("ar", f"{RLI}تم تصحيح البيانات في السجل{PDI}"), ("en", "The record has been corrected")],
)
def test_an_acceptance_tells_the_reason_review_named(locale: str, said: str) -> None:
    """Review's catalog has acceptance reasons too; the reviewer's message is optional, so
    the reason may be all the beneficiary learns of why."""
    n = read(
        status_changed(
            common_pb2.REQUEST_STATUS_ACCEPTED,
            contact=common_pb2.Contact(mobile="+966512345678", locale=locale),
            reason_code="corrected-on-record",
            reason=common_pb2.LocalizedText(
                ar="تم تصحيح البيانات في السجل", en="The record has been corrected"
            ),
        )
    )
    assert (n.kind, n.values["reason"]) == (Kind.ACCEPTED, said.strip(RLI + PDI))
    for channel in channels_for(Kind.ACCEPTED):
        body = render(Kind.ACCEPTED, channel, n.locale, n.values).body
        assert said in body, body
        assert any(word in body for word in ("Reason: ", "reason: ", "السبب: ", "سبب القبول: ")), (
            body
        )


@pytest.mark.parametrize(
    ("locale", "said"),
    [
        ("ar", f"السبب: {RLI}لم تصل المعلومات المطلوبة في الموعد المحدد{PDI}"),
        # Left-to-right words in an English text need no isolate (nor make its SMS UCS-2).
        ("en", "Reason: The information asked for was not received by its deadline"),
    ],
)
def test_a_closure_says_why_in_the_beneficiarys_language_only(locale: str, said: str) -> None:
    n = read(
        status_changed(
            common_pb2.REQUEST_STATUS_CLOSED,
            contact=common_pb2.Contact(mobile="+966512345678", locale=locale),
            reason_code="no-answer",
            reason=common_pb2.LocalizedText(
                ar="لم تصل المعلومات المطلوبة في الموعد المحدد",
                en="The information asked for was not received by its deadline",
            ),
        )
    )
    assert n.kind is Kind.CLOSED
    for channel in channels_for(Kind.CLOSED):
        body = render(Kind.CLOSED, channel, n.locale, n.values).body
        assert said in body
        assert ("The information" in body) == (locale == "en")


def test_the_rejection_of_an_appeal_offers_no_appeal() -> None:
    change = status_changed(
        common_pb2.REQUEST_STATUS_REJECTED,
        reason=common_pb2.LocalizedText(ar="المستندات غير واضحة", en="unclear"),
    )
    change.request_status_changed.decides_appeal = True
    assert read(change).values["appeal"] is False


def test_back_to_submitted_an_internal_step_tells_nothing() -> None:
    assert notice_from(status_changed(common_pb2.REQUEST_STATUS_SUBMITTED), STAFF) is None


def test_a_processed_request_tells_the_beneficiary_the_transaction_was_carried_out() -> None:
    said = "Collect the passport from the Riyadh office"
    n = read(status_changed(common_pb2.REQUEST_STATUS_PROCESSED, message=said))
    assert (n.kind, n.values, n.recipients) == (
        Kind.PROCESSED,
        {"number": NUMBER, "note": said},
        BENEFICIARY,
    )
    shown = {Locale.AR: "تمت معالج", Locale.EN: "has been processed"}
    for locale in Locale:
        for channel in channels_for(Kind.PROCESSED):
            body = render(Kind.PROCESSED, channel, locale, n.values).body
            assert NUMBER in body
            assert said in body
            assert shown[locale] in body.replace("تمت المعالجة", "تمت معالجة")


def test_a_request_reopened_after_its_closure_tells_the_beneficiary_it_is_not_closed() -> None:
    due_at = timestamp(datetime(2026, 3, 4, 21, 30, tzinfo=UTC))
    returned = common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT
    n = read(status_changed(returned, reopened=True, due_at=due_at))
    assert (n.kind, n.recipients) == (Kind.REOPENED, BENEFICIARY)
    # The office's new date, as the beneficiary's calendar in Riyadh shows it.
    assert n.values == {"number": NUMBER, "due": date(2026, 3, 5)}
    sms = render(Kind.REOPENED, Channel.SMS, n.locale, n.values).body
    assert NUMBER in sms
    assert "reopened" in sms
    assert "disregard the message that it was closed" in sms
    # Only an answer's return reopens: the flag on any other status changes nothing.
    closed = status_changed(common_pb2.REQUEST_STATUS_CLOSED, reopened=True, due_at=due_at)
    assert read(closed).kind == Kind.CLOSED


@pytest.mark.parametrize(
    ("status", "outcome", "said"),
    [
        (common_pb2.REQUEST_STATUS_ACCEPTED, "accepted", ("accepted", "قبوله")),
        (common_pb2.REQUEST_STATUS_REJECTED, "rejected", ("rejected", "رفضه")),
        (common_pb2.REQUEST_STATUS_CLOSED, "closed", ("closed", "إغلاقه")),
        (common_pb2.REQUEST_STATUS_PROCESSED, "processed", ("processed", "قبوله ومعالجته")),
    ],
)
def test_a_cancellation_that_came_after_the_outcome_is_answered_with_the_outcome(
    status: common_pb2.RequestStatus.ValueType, outcome: str, said: tuple[str, str]
) -> None:
    n = read(status_changed(status, cancel_too_late=True))
    assert (n.kind, n.values) == (
        Kind.CANCEL_TOO_LATE,
        {
            "number": NUMBER,
            "outcome": outcome,
            "appeal": True,
            # Review's restatement does not carry it: what was told gives it (handlers.take).
            "appeal_until": None,
            "office": False,
            "cancelled_told": False,
        },
    )
    for locale, word in zip((Locale.EN, Locale.AR), said, strict=True):
        for channel in channels_for(Kind.CANCEL_TOO_LATE):
            text = render(Kind.CANCEL_TOO_LATE, channel, locale, n.values).body
            assert NUMBER in text
            assert word in text
            assert ("appeal" in text or "التظلم" in text) == (outcome == "rejected")


@pytest.mark.parametrize(
    "status",
    [
        common_pb2.REQUEST_STATUS_ACCEPTED,
        common_pb2.REQUEST_STATUS_REJECTED,
        common_pb2.REQUEST_STATUS_PROCESSED,
    ],
)
def test_the_offices_cancellation_after_the_outcome_is_not_told_as_the_beneficiarys(
    status: common_pb2.RequestStatus.ValueType,
) -> None:
    """Review restates the outcome as the system's (the office cancelled for an account the
    person is off the record of): the account made no cancellation to have come too late."""
    n = read(status_changed(status, cancel_too_late=True, actor_id="system"))
    assert (n.kind, n.values["office"]) == (Kind.CANCEL_TOO_LATE, True)
    for locale in Locale:
        for channel in channels_for(Kind.CANCEL_TOO_LATE):
            text = render(Kind.CANCEL_TOO_LATE, channel, locale, n.values).body
            assert NUMBER in text
            assert "your cancellation" not in text
            assert "طلب الإلغاء" not in text
            assert "the office's cancellation" in text or "إلغاء الجوازات" in text


def test_the_offices_cancellation_restated_by_review_is_told_as_the_office_s() -> None:
    """The sweep closed the request before the office's cancellation reached review, which
    restates it as the system's: not "as you asked", whichever topic notify reads first."""
    made = datetime(2026, 3, 1, 9, 5, 7, tzinfo=UTC)
    restated = status_changed(common_pb2.REQUEST_STATUS_CANCELLED, actor_id="system")
    restated.occurred_at.CopyFrom(timestamp(made))
    n = read(restated)
    assert (n.kind, n.values, n.cancelled_at) == (
        Kind.CANCELLED_OFF_RECORD,
        {"number": NUMBER, PORTAL_WORDS: False},
        made,
    )
    beneficiarys = read(status_changed(common_pb2.REQUEST_STATUS_CANCELLED, actor_id="applicant"))
    assert beneficiarys.kind == Kind.CANCELLED


def test_a_late_cancellation_of_an_appeal_s_rejection_offers_no_second_appeal() -> None:
    restated = status_changed(
        common_pb2.REQUEST_STATUS_REJECTED, cancel_too_late=True, decides_appeal=True
    )
    n = read(restated)
    assert (n.kind, n.values["appeal"]) == (Kind.CANCEL_TOO_LATE, False)
    for locale in Locale:
        for channel in channels_for(Kind.CANCEL_TOO_LATE):
            text = render(Kind.CANCEL_TOO_LATE, channel, locale, n.values).body
            assert "appeal" not in text
            assert "التظلم" not in text


def test_a_cancel_too_late_says_when_the_cancellation_it_answers_was_made() -> None:
    """Review publishes it at the time intake took the cancellation, which intake's event says:
    notify matches the two, whichever topic it reads first."""
    made = datetime(2026, 3, 1, 9, 5, 7, 123456, tzinfo=UTC)
    cancelled = envelope(
        "request_cancelled",
        events_pb2.RequestCancelled(
            request_id=REQUEST, request_number=NUMBER, contact=CONTACT, applicant_id="1000000008"
        ),
    )
    cancelled.occurred_at.CopyFrom(timestamp(made))
    restated = status_changed(common_pb2.REQUEST_STATUS_REJECTED, cancel_too_late=True)
    restated.occurred_at.CopyFrom(timestamp(made))
    assert read(restated).cancelled_at == read(cancelled).cancelled_at == made


def test_an_answer_back_with_review_is_acknowledged_with_the_date_it_moved_to() -> None:
    due_at = timestamp(datetime(2026, 3, 10, 9, tzinfo=UTC))
    n = read(status_changed(common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT, due_at=due_at))
    assert (n.kind, n.values) == (
        Kind.ANSWER_RECEIVED,
        {"number": NUMBER, "due": date(2026, 3, 10)},
    )
    sms = render(Kind.ANSWER_RECEIVED, Channel.SMS, n.locale, n.values).body
    assert sms.startswith(
        f"We have received the information you sent for your Tawasul request {NUMBER}"
    )
    assert "Expected completion: Tuesday" in sms
    assert "10 March 2026" in sms


@pytest.mark.parametrize(
    "status",
    [
        common_pb2.REQUEST_STATUS_UNDER_REVIEW,
        common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT,
        common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
    ],
)
def test_a_reviewers_message_reaches_the_beneficiary_not_the_status_again(
    status: common_pb2.RequestStatus.ValueType,
) -> None:
    # MessageApplicant publishes the status the beneficiary was last told, with the text.
    said = "Please bring the original passport to the Riyadh office on Sunday"
    n = read(status_changed(status, message=said, reviewer_message=True))
    assert (n.kind, n.values, n.recipients) == (
        Kind.MESSAGE,
        {"number": NUMBER, "note": said},
        BENEFICIARY,
    )
    for locale in Locale:
        for channel in channels_for(Kind.MESSAGE):
            body = render(Kind.MESSAGE, channel, locale, n.values).body
            assert NUMBER in body
            # Isolated in Arabic; in English left-to-right words need it not.
            assert (f"{LRI}{said}{PDI}" if locale is Locale.AR else said) in body
            assert (PDI in body) == (locale is Locale.AR)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (common_pb2.REQUEST_STATUS_ACCEPTED, Kind.ACCEPTED),
        (common_pb2.REQUEST_STATUS_REJECTED, Kind.REJECTED),
        (common_pb2.REQUEST_STATUS_CLOSED, Kind.CLOSED),
    ],
)
def test_an_outcome_keeps_the_reviewers_message_as_its_note(
    status: common_pb2.RequestStatus.ValueType, kind: Kind
) -> None:
    n = read(status_changed(status, message="The photo is not clear enough"))
    assert (n.kind, n.values["note"]) == (kind, "The photo is not clear enough")


def test_a_cancellation_too_late_names_only_an_outcome() -> None:
    restated = status_changed(common_pb2.REQUEST_STATUS_UNDER_REVIEW, cancel_too_late=True)
    assert notice_from(restated, STAFF) is None


def test_follow_ups_and_cancellations_are_acknowledged() -> None:
    followed = events_pb2.RequestFollowedUp(
        request_id=REQUEST,
        request_number=NUMBER,
        follow_up_count=2,
        contact=CONTACT,
        applicant_id="1000000008",
    )
    n = read(envelope("request_followed_up", followed))
    assert (n.kind, n.values, n.recipients) == (
        Kind.FOLLOWED_UP,
        {"number": NUMBER, "count": 2},
        BENEFICIARY,
    )
    cancelled = events_pb2.RequestCancelled(
        request_id=REQUEST, request_number=NUMBER, contact=CONTACT, applicant_id="1000000008"
    )
    n = read(envelope("request_cancelled", cancelled))
    assert (n.kind, n.values) == (Kind.CANCELLED, {"number": NUMBER})
    answered = events_pb2.RequestAnswered(request_id=REQUEST, request_number=NUMBER)
    assert notice_from(envelope("request_answered", answered), STAFF) is None


def test_the_offices_cancellation_is_told_as_the_office_s_in_the_portal_s_words() -> None:
    """Intake cancelled it for the account (the person off its record): not "as you asked".
    Absher's words until handlers.take knows whether an establishment filed it."""
    cancelled = events_pb2.RequestCancelled(
        request_id=REQUEST,
        request_number=NUMBER,
        contact=CONTACT,
        applicant_id="1000000008",
        off_record=True,
    )
    n = read(envelope("request_cancelled", cancelled))
    assert (n.kind, n.values, n.recipients) == (
        Kind.CANCELLED_OFF_RECORD,
        {"number": NUMBER, PORTAL_WORDS: False},
        BENEFICIARY,
    )


def test_an_appeal_is_acknowledged_to_the_beneficiary_with_the_new_expected_date() -> None:
    # Thursday 15 January 2026, 23:30 in Riyadh: the day told is Riyadh's, not UTC's.
    expected = datetime(2026, 1, 15, 20, 30, tzinfo=UTC)
    appealed = events_pb2.RequestAppealed(
        request_id=REQUEST,
        request_number=NUMBER,
        reason="The passport copy was clear",
        contact=CONTACT,
        applicant_id="1000000008",
    )
    appealed.expected_completion_at.FromDatetime(expected)
    n = read(envelope("request_appealed", appealed))
    assert (n.kind, n.locale, n.values, n.recipients) == (
        Kind.APPEAL_RECEIVED,
        Locale.EN,
        {"number": NUMBER, "due": date(2026, 1, 15)},
        BENEFICIARY,
    )
    for locale in Locale:
        day = format_date(date(2026, 1, 15), CalendarLocale(locale.value))
        for channel in channels_for(Kind.APPEAL_RECEIVED):
            body = render(Kind.APPEAL_RECEIVED, channel, locale, n.values).body
            assert NUMBER in body
            assert day in body
    # An appeal published before the event carried the date: acknowledged without one.
    appealed.ClearField("expected_completion_at")
    n = read(envelope("request_appealed", appealed))
    assert n.values == {"number": NUMBER, "due": None}
    for locale in Locale:
        for channel in channels_for(Kind.APPEAL_RECEIVED):
            assert NUMBER in render(Kind.APPEAL_RECEIVED, channel, locale, n.values).body


def test_a_breach_goes_to_the_supervisors_with_their_directory_addresses() -> None:
    due = datetime(2026, 3, 1, 11, tzinfo=UTC)
    alert = events_pb2.SlaAlert(
        request_id=REQUEST,
        request_number=NUMBER,
        department_code="residents",
        percent=100,
        due_at=timestamp(due),
        assignee_id="E1001",
        supervisor_ids=["S1", "S2"],
    )
    n = read(envelope("sla_alert", alert))
    assert (n.kind, n.audience, n.locale) == (Kind.SLA_BREACH, Audience.SUPERVISOR, Locale.AR)
    assert n.recipients == (
        Recipient(email="s1@passports.example", account="S1"),
        Recipient(account="S2"),
    )
    assert n.addresses(Channel.EMAIL) == ["s1@passports.example"]
    assert n.addresses(Channel.INAPP) == ["S1", "S2"]
    assert n.values == {
        "number": NUMBER,
        "department": "خدمات المقيمين داخل المملكة",  # the catalog's name, not its code
        "due_at": due,
        "assignee": "E1001",
    }


def test_a_warning_goes_to_whoever_holds_the_request_or_else_to_the_supervisors() -> None:
    due = datetime(2026, 3, 1, 11, tzinfo=UTC)
    alert = events_pb2.SlaAlert(
        request_id=REQUEST,
        request_number=NUMBER,
        department_code="residents",
        percent=75,
        due_at=timestamp(due),
        assignee_id="S1",
    )
    held = read(envelope("sla_alert", alert))
    assert (held.kind, held.audience, held.locale) == (
        Kind.SLA_WARNING,
        Audience.REVIEWER,
        Locale.AR,
    )
    assert held.recipients == (Recipient(email="s1@passports.example", account="S1"),)
    assert held.values == {
        "number": NUMBER,
        "department": "خدمات المقيمين داخل المملكة",
        "due_at": due,
        "percent": 75,
        "assignee": "S1",
    }
    body = render(Kind.SLA_WARNING, Channel.INAPP, Locale.EN, held.values).body
    assert body.startswith(f"Request {NUMBER}, which you hold, has used 75% of its time")

    alert.assignee_id, alert.percent = "", 50
    alert.supervisor_ids[:] = ["S1", "S2"]
    unheld = read(envelope("sla_alert", alert))
    assert (unheld.kind, unheld.audience) == (Kind.SLA_WARNING, Audience.SUPERVISOR)
    assert unheld.recipients == (
        Recipient(email="s1@passports.example", account="S1"),
        Recipient(account="S2"),
    )
    body = render(Kind.SLA_WARNING, Channel.EMAIL, Locale.AR, unheld.values).body
    assert body.startswith("السادة مشرفي قسم خدمات المقيمين داخل المملكة المحترمين،")
    assert "انقضى ٥٠٪ من مدة إنجاز الطلب" in body
    assert "غير مسند إلى أي موظف" in body

    # A department with no supervisor appointed: the warning reaches no one.
    del alert.supervisor_ids[:]
    assert notice_from(envelope("sla_alert", alert), STAFF) is None


def test_an_event_notify_cannot_read_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        notice_from(events_pb2.Envelope(event_id=str(uuid.uuid4())), STAFF)
    changed = status_changed(common_pb2.REQUEST_STATUS_UNDER_REVIEW, request_id="not-a-uuid")
    with pytest.raises(InvalidArgument) as caught:
        notice_from(changed, STAFF)
    assert set(caught.value.violations) == {"request_id"}


def test_a_published_result_never_carries_the_recipient() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    n = read(
        envelope(
            "request_submitted",
            events_pb2.RequestSubmitted(request_id=REQUEST, request_number=NUMBER, contact=CONTACT),
        )
    )
    delivery = Delivery.intend(
        notice=n,
        channel=Channel.SMS,
        recipient="+966512345678",
        subject="",
        text="t",
        parts=1,
        now=now,
    )
    delivery.sent(SendOutcome(accepted=True, provider_message_id="p-1"), now)
    (recorded,) = delivery.events
    assert isinstance(recorded, DeliveryRecorded)
    wire = events_pb2.Envelope.FromString(to_event(recorded).payload)
    assert b"512345678" not in wire.SerializeToString()
    sent = wire.notification_sent
    assert (sent.status, sent.channel, sent.kind, sent.audience, sent.parts) == (
        "sent",
        "sms",
        "submitted",
        "beneficiary",
        1,
    )
    assert sent.provider_message_id == "p-1"


def test_numbers_and_addresses_are_shown_masked() -> None:
    assert mask("+966512345678", Channel.SMS) == "+9665•••••678"
    assert mask("amal@example.sa", Channel.EMAIL) == "a•••@example.sa"
    assert mask("1000000008", Channel.INAPP) == "1000000008"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (common_pb2.REQUEST_STATUS_UNDER_REVIEW, Kind.UNDER_REVIEW),
        (common_pb2.REQUEST_STATUS_ACCEPTED, Kind.ACCEPTED),
        (common_pb2.REQUEST_STATUS_TRANSFERRED, Kind.TRANSFERRED),
        (common_pb2.REQUEST_STATUS_CLOSED, Kind.CLOSED),
    ],
)
def test_every_status_notice_renders_on_every_channel(
    status: common_pb2.RequestStatus.ValueType, kind: Kind
) -> None:
    # A status's own message is its notice's note or nothing, never a message of its own.
    n = read(status_changed(status, message="Thank you"))
    assert n.kind == kind
    for channel in channels_for(kind):
        assert NUMBER in render(kind, channel, n.locale, n.values).body
