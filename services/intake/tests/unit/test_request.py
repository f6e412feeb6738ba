"""The Request entity: its SLA clock, history, final statuses, follow-ups and cancellation;
last, the request driven through generated sequences of what can happen to it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from tawasul.events.v1 import events_pb2
from tawasul_calendar import RIYADH, CalendarConfig, Sla, WorkingCalendar
from tawasul_calendar.config import AnnouncedSpan
from tawasul_calendar.rules import Occasion, Sector
from tawasul_intake.adapters.events import to_event
from tawasul_intake.domain.model import (
    CROSSED,
    FINAL,
    OPEN,
    OUTCOMES,
    STATUS_LABELS,
    Answer,
    Contact,
    HistoryEntry,
    Missing,
    Reason,
    Request,
    RequestAnswered,
    RequestAppealed,
    RequestCancelled,
    RequestFollowedUp,
    RequestSubmitted,
    Status,
    Submission,
    status_label,
)
from tawasul_platform import appeals
from tawasul_platform.catalog import load_catalog
from tawasul_platform.errors import FailedPrecondition, InvalidArgument
from tawasul_platform.identity import Role

CATALOG = load_catalog()
CALENDAR = WorkingCalendar()
# passports.issue-renewal-problem promises an answer within 5 working days.
FIVE_DAYS = "passports.issue-renewal-problem"
# reports.general-inquiry promises one within 3 working days (the seeds' 24-72 working hours).
INQUIRY = "reports.general-inquiry"


def riyadh(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in January 2026, Riyadh time; the 4th is a Sunday, the 9th a Friday."""
    return datetime(2026, 1, day, hour, minute, tzinfo=RIYADH)


SUBMITTED = riyadh(4, 10)  # Sunday 10:00


def new_request(code: str = FIVE_DAYS, at: datetime = SUBMITTED) -> Request:
    submission = Submission(
        applicant_id="1000000008",
        applicant_role=Role.CITIZEN,
        subject_id="1012345672",
        idempotency_key="key-1",
        sub_service_code=code,
        description="The photo does not appear when renewing passport A123 after payment",
        fields={"national_id": "1012345672"},
        document_ids=(),
        contact=Contact(mobile="+966551234567"),
    )
    return Request.submit(
        submission,
        id=uuid.uuid4(),
        number="TW123456789",
        sub_service=CATALOG.sub_services[code],
        catalog_version=CATALOG.version,
        calendar=CALENDAR,
        now=at,
    )


def test_submission_records_the_request_and_its_event() -> None:
    request = new_request()
    assert request.status is Status.SUBMITTED
    assert request.is_open
    assert request.department_code == "passports"
    assert request.catalog_version == CATALOG.version
    assert request.clock.sla == Sla.days(5)
    assert request.history == [HistoryEntry(Status.SUBMITTED, SUBMITTED)]
    assert request.follow_up_count == 0
    (event,) = request.events
    assert isinstance(event, RequestSubmitted)
    assert event.request is request
    # 35 working hours from Sunday 10:00: 4.5 on Sunday, 28 Monday to Thursday, 2.5 Sunday.
    assert event.expected_completion == riyadh(11, 10)


@pytest.mark.parametrize(
    ("at", "due"),
    [
        (riyadh(4, 10), riyadh(11, 10)),  # Sunday in office hours
        (riyadh(4, 6), riyadh(8, 14, 30)),  # before opening: five full days, Sun-Thu
        (riyadh(8, 16), riyadh(15, 14, 30)),  # Thursday after closing: starts Sunday
        (riyadh(9, 12), riyadh(15, 14, 30)),  # Friday: starts Sunday
    ],
)
def test_expected_completion_counts_working_days_only(at: datetime, due: datetime) -> None:
    request = new_request(at=at)
    assert request.expected_completion(CALENDAR, at) == due


def test_a_general_inquiry_is_promised_within_the_seeds_72_working_hours() -> None:
    request = new_request(INQUIRY)
    # Three working days, not 72 office hours (more than ten days of 7 hours): Sunday 10:00
    # to Wednesday 10:00.
    assert request.expected_completion(CALENDAR, SUBMITTED) == riyadh(7, 10)


def test_the_promise_moves_out_while_waiting_on_the_beneficiary() -> None:
    request = new_request()
    before = request.expected_completion(CALENDAR, riyadh(5, 9))
    assert before == riyadh(11, 10)

    request.track(Status.UNDER_REVIEW, "", riyadh(4, 11))
    assert request.expected_completion(CALENDAR, riyadh(5, 9)) == before

    request.track(Status.NEEDS_MORE_INFO, "Attach the receipt", riyadh(5, 10))
    assert request.clock.paused
    # While paused, each working day of waiting moves the promise out by one working day.
    assert request.expected_completion(CALENDAR, riyadh(5, 10)) == riyadh(11, 10)
    assert request.expected_completion(CALENDAR, riyadh(6, 10)) == riyadh(12, 10)
    assert request.expected_completion(CALENDAR, riyadh(7, 10)) == riyadh(13, 10)
    assert request.expected_completion(CALENDAR, riyadh(8, 10)) == riyadh(14, 10)
    # The weekend is not working time: waiting over it moves nothing more.
    assert request.expected_completion(CALENDAR, riyadh(8, 14, 30)) == riyadh(14, 14, 30)
    assert request.expected_completion(CALENDAR, riyadh(10, 23)) == riyadh(14, 14, 30)

    request.track(Status.RETURNED_BY_APPLICANT, "Receipt attached", riyadh(8, 10))
    assert not request.clock.paused
    assert request.clock.pauses == ((riyadh(5, 10), riyadh(8, 10)),)
    after = riyadh(14, 10)
    # Once resumed the promise stays put, however much later it is asked.
    for now in (riyadh(8, 10), riyadh(11, 9), riyadh(13, 14)):
        assert request.expected_completion(CALENDAR, now) == after


def test_a_second_pause_adds_to_the_first() -> None:
    request = new_request()
    request.track(Status.NEEDS_MORE_INFO, "first", riyadh(5, 10))
    request.track(Status.RETURNED_BY_APPLICANT, "", riyadh(6, 10))
    request.track(Status.NEEDS_MORE_INFO, "second", riyadh(7, 10))
    request.track(Status.RETURNED_BY_APPLICANT, "", riyadh(8, 10))
    assert len(request.clock.pauses) == 2
    assert request.expected_completion(CALENDAR, riyadh(8, 10)) == riyadh(13, 10)


def test_a_pause_stamped_before_the_last_resumption_starts_at_it() -> None:
    # Review's clock a second behind intake's: its next request for information, made just
    # after the answer, carries an instant before the answer's.
    request = new_request()
    request.track(Status.NEEDS_MORE_INFO, "first", riyadh(5, 10))
    request.track(Status.RETURNED_BY_APPLICANT, "", riyadh(6, 10))
    request.track(Status.NEEDS_MORE_INFO, "second", riyadh(6, 10) - timedelta(seconds=1))
    assert request.clock.paused_since == riyadh(6, 10)


def test_a_decision_while_waiting_stops_the_pause() -> None:
    request = new_request()
    request.track(Status.NEEDS_MORE_INFO, "", riyadh(5, 10))
    request.track(Status.REJECTED, "No reply", riyadh(6, 10))
    assert not request.clock.paused
    assert request.expected_completion(CALENDAR, riyadh(20, 10)) == riyadh(12, 10)


def test_history_records_every_status_with_its_message() -> None:
    request = new_request()
    request.track(Status.UNDER_REVIEW, "Picked up", riyadh(4, 11))
    request.track(Status.UNDER_REVIEW, "", riyadh(4, 12))  # nothing new: not recorded
    # A reviewer's message keeps the status and is part of the public history.
    request.track(Status.UNDER_REVIEW, "We are checking your file", riyadh(4, 13))
    request.track(Status.NEEDS_MORE_INFO, "Attach the receipt", riyadh(5, 10))
    request.track(Status.RETURNED_BY_APPLICANT, "Attached", riyadh(6, 9))
    request.track(Status.TRANSFERRED, "To the passports section", riyadh(6, 11))
    request.track(Status.ACCEPTED, "Approved", riyadh(7, 9))
    request.track(Status.PROCESSED, "Done", riyadh(7, 12))
    assert request.history == [
        HistoryEntry(Status.SUBMITTED, SUBMITTED, ""),
        HistoryEntry(Status.UNDER_REVIEW, riyadh(4, 11), "Picked up"),
        HistoryEntry(Status.UNDER_REVIEW, riyadh(4, 13), "We are checking your file"),
        HistoryEntry(Status.NEEDS_MORE_INFO, riyadh(5, 10), "Attach the receipt"),
        HistoryEntry(Status.RETURNED_BY_APPLICANT, riyadh(6, 9), "Attached"),
        HistoryEntry(Status.TRANSFERRED, riyadh(6, 11), "To the passports section"),
        HistoryEntry(Status.ACCEPTED, riyadh(7, 9), "Approved"),
        HistoryEntry(Status.PROCESSED, riyadh(7, 12), "Done"),
    ]
    assert request.status is Status.PROCESSED
    assert request.updated_at == riyadh(7, 12)
    assert request.decision_message == "Approved"


def test_a_rejection_keeps_its_message_as_the_decision() -> None:
    request = new_request()
    request.track(Status.REJECTED, "The passport is still valid", riyadh(5, 9))
    assert request.decision_message == "The passport is still valid"
    assert not request.is_open


def test_a_decision_keeps_its_reason_until_it_is_appealed() -> None:
    mismatch = Reason("data-mismatch", "البيانات لا تطابق السجلات", "The data does not match")
    request = new_request()
    request.track(Status.UNDER_REVIEW, "", riyadh(5, 8), reason=mismatch)
    assert request.decision_reason is None
    request.track(Status.REJECTED, "The visa number differs", riyadh(5, 9), reason=mismatch)
    assert request.decision_reason == mismatch
    request.appeal(reason="It is right: see the print", calendar=CALENDAR, now=riyadh(5, 10))
    assert (request.decision_message, request.decision_reason) == ("", None)
    corrected = Reason("corrected-on-record", "صُحح في السجل", "Corrected on the record")
    request.track(Status.ACCEPTED, "Corrected", riyadh(6, 9), reason=corrected)
    assert (request.decision_message, request.decision_reason) == ("Corrected", corrected)


def test_the_last_day_to_appeal_the_beneficiary_was_told_is_kept() -> None:
    """Review's rejection tells the last day to appeal (10 working days on the calendar of the
    day); an Eid announced since, a day earlier than forecast, must not take that day back."""
    forecast = WorkingCalendar()
    announced = forecast.updated(
        CalendarConfig(
            version=2,
            announced=(
                AnnouncedSpan(
                    Sector.PUBLIC,
                    Occasion.EID_AL_FITR,
                    1447,
                    date(2026, 3, 13),
                    date(2026, 3, 23),
                    "the Ministry's announcement",
                ),
            ),
        )
    )
    rejected_at = datetime(2026, 3, 10, 10, tzinfo=RIYADH)
    told = appeals.appeal_until(forecast, rejected_at)
    assert appeals.appeal_until(announced, rejected_at) < told
    request = new_request(at=datetime(2026, 3, 8, 10, tzinfo=RIYADH))
    request.track(Status.REJECTED, "The photo is not clear", rejected_at, appeal_until=told)
    assert request.appeal_until(announced) == told
    request.appeal(
        reason="The photo was taken at a studio",
        calendar=announced,
        now=told.replace(hour=10, minute=0, second=0, microsecond=0),
    )
    assert request.status is Status.UNDER_REVIEW


def test_a_rejection_told_no_last_day_works_it_out_on_the_calendar() -> None:
    """Events published before review named the day: the window as it always was."""
    request = new_request()
    request.track(Status.REJECTED, "The photo is not clear", riyadh(5, 10))
    assert request.appeal_until(CALENDAR) == appeals.appeal_until(CALENDAR, riyadh(5, 10))


def test_an_outcome_restated_for_a_late_cancellation_leaves_an_appeal_made_since() -> None:
    """Review rejects while the cancellation is on its way, the beneficiary appeals the
    rejection shown, and review then says the rejection again for the cancellation: the
    appeal stands, and so would the rejection's reason had it not been appealed."""
    mismatch = Reason("data-mismatch", "البيانات لا تطابق السجلات", "The data does not match")
    request = new_request()
    request.track(
        Status.REJECTED, "The visa number differs", riyadh(5, 9), reason=mismatch, sequence=2
    )
    request.track(Status.REJECTED, "", riyadh(5, 9, 30), sequence=3, restates=True)
    assert (request.decision_message, request.decision_reason) == (
        "The visa number differs",
        mismatch,
    )
    request.appeal(reason="It is right: see the print", calendar=CALENDAR, now=riyadh(5, 10))
    request.track(Status.REJECTED, "", riyadh(5, 11), sequence=4, restates=True)
    assert (request.status, request.appealed) == (Status.UNDER_REVIEW, True)
    # While the request shows the cancellation, the restated outcome replaces it.
    cancelled = new_request()
    cancelled.cancel(reason="Solved", now=riyadh(5, 8))
    cancelled.track(Status.REJECTED, "", riyadh(5, 9), sequence=3, restates=True)
    assert cancelled.status is Status.REJECTED
    processed = new_request()
    processed.cancel(reason="Solved", now=riyadh(5, 8))
    processed.track(Status.PROCESSED, "", riyadh(5, 9), sequence=4, restates=True)
    assert processed.status is Status.PROCESSED


@pytest.mark.parametrize("final", sorted(FINAL - {Status.CANCELLED}))
@pytest.mark.parametrize("later", [Status.ACCEPTED, Status.REJECTED, Status.UNDER_REVIEW])
def test_final_statuses_stay_final(final: Status, later: Status) -> None:
    request = new_request()
    request.track(final, "final", riyadh(5, 9))
    history = list(request.history)
    request.track(later, "too late", riyadh(5, 10))
    assert request.status is final
    assert request.history == history
    assert request.updated_at == riyadh(5, 9)


# Processed: accepted, and carried out, before the cancellation reached review (the acceptance's
# event set aside, or the outcome restated once the request was processed).
@pytest.mark.parametrize("outcome", sorted(OUTCOMES | {Status.PROCESSED}))
def test_an_outcome_review_reached_before_the_cancellation_reached_it_stands(
    outcome: Status,
) -> None:
    request = new_request()
    request.track(Status.UNDER_REVIEW, "", riyadh(5, 8))
    request.cancel(reason="Solved at the office", now=riyadh(5, 9))
    request.track(outcome, "Decided this morning", riyadh(5, 8, 30))
    assert request.status is outcome
    assert [(h.status, h.message) for h in request.history] == [
        (Status.SUBMITTED, ""),
        (Status.UNDER_REVIEW, ""),
        (Status.CANCELLED, "Solved at the office"),
        (outcome, "Decided this morning"),
    ]
    assert not request.is_open
    # A rejection that stands may be appealed like any other.
    assert (request.appeal_until(CALENDAR) is not None) is (outcome is Status.REJECTED)


@pytest.mark.parametrize(
    "status", sorted(set(Status) - OUTCOMES - CROSSED - {Status.CANCELLED, Status.PROCESSED})
)
def test_review_s_news_short_of_an_outcome_leaves_a_cancellation_as_it_is(
    status: Status,
) -> None:
    request = new_request()
    request.cancel(reason="Solved at the office", now=riyadh(5, 9))
    history = list(request.history)
    request.track(status, "Picked up before the cancellation", riyadh(5, 8))
    assert request.status is Status.CANCELLED
    assert request.history == history
    assert request.decision_message == ""


@pytest.mark.parametrize("status", sorted(CROSSED))
def test_a_step_review_took_before_the_cancellation_reached_it_is_kept_before_it(
    status: Status,
) -> None:
    """Review claimed, asked or transferred the request (and the beneficiary was told) before
    the cancellation reached it: the step is in the history, before the cancellation (which
    review's withdrawal followed), and the request stays cancelled."""
    request = new_request()
    request.cancel(reason="Solved at the office", now=riyadh(5, 9))
    request.track(status, "Picked up", riyadh(5, 8), sequence=4, transfer_to="visas")
    assert request.status is Status.CANCELLED
    assert [(h.status, h.at, h.message) for h in request.history] == [
        (Status.SUBMITTED, SUBMITTED, ""),
        (status, riyadh(5, 8), "Picked up"),
        (Status.CANCELLED, riyadh(5, 9), "Solved at the office"),
    ]
    assert request.department_code == (
        "visas" if status is Status.TRANSFERRED else CATALOG.sub_services[FIVE_DAYS].department
    )
    assert (request.missing, request.respond_by, request.decision_message) == ((), None, "")


def test_every_status_has_an_arabic_and_an_english_label() -> None:
    assert set(STATUS_LABELS) == set(Status)
    for ar, en in STATUS_LABELS.values():
        assert any("\u0621" <= c <= "\u064a" for c in ar)
        assert en.isascii()
        assert en
    assert OPEN.isdisjoint(FINAL)


# SPEC §2: what the beneficiary is shown (Absher's four, Muqeem's four more), and cancelled
# and transferred, which the seeds do not name.
SPEC_LABELS = {
    ("قيد المراجعة", "Under review"),
    ("مقبول", "Accepted"),
    ("مرفوض", "Rejected"),
    ("بحاجة لإجراءات إضافية", "Needs additional action"),
    ("معاد لمقدم الطلب", "Returned to applicant"),
    ("معاد من مقدم الطلب", "Returned by applicant"),
    ("تمت المعالجة", "Processed"),
    ("مغلق", "Closed"),
}


def test_every_status_shows_a_label_of_the_spec_but_cancelled_and_transferred() -> None:
    own = {Status.CANCELLED, Status.TRANSFERRED}
    assert {STATUS_LABELS[s] for s in Status if s not in own} <= SPEC_LABELS
    # Received and waiting for a reviewer reads as under review (seed 004), not a status of
    # neither list.
    assert STATUS_LABELS[Status.SUBMITTED] == STATUS_LABELS[Status.UNDER_REVIEW]
    assert Status.ACCEPTED not in OPEN | FINAL


def test_a_refusal_names_the_status_as_the_beneficiary_reads_it() -> None:
    waiting = new_request()
    with pytest.raises(FailedPrecondition) as caught:
        waiting.appeal(reason="It is right", calendar=CALENDAR, now=riyadh(5, 10))
    said = caught.value.args[0]
    assert str(said) == f'request {waiting.number} is "Under review": only a rejection'
    assert said.ar == f"حالة الطلب {waiting.number}: قيد المراجعة؛ التظلم من الرفض فقط"


@pytest.mark.parametrize("status", list(Status))
def test_an_establishments_request_is_shown_in_muqeems_words(status: Status) -> None:
    citizens, establishments = (
        status_label(status, Role.CITIZEN),
        status_label(status, Role.ESTABLISHMENT),
    )
    assert establishments in SPEC_LABELS | {STATUS_LABELS[Status.CANCELLED]} | {
        STATUS_LABELS[Status.TRANSFERRED]
    }
    if status is Status.NEEDS_MORE_INFO:
        assert (citizens, establishments) == (
            ("بحاجة لإجراءات إضافية", "Needs additional action"),
            ("معاد لمقدم الطلب", "Returned to applicant"),
        )
    else:
        assert establishments == citizens


# --- follow-ups --------------------------------------------------------------------------


def test_a_follow_up_is_possible_after_three_working_days() -> None:
    request = new_request()
    assert request.follow_up_from(CALENDAR) == riyadh(7, 10)  # Wednesday 10:00
    with pytest.raises(FailedPrecondition) as caught:
        request.follow_up(message="Any news?", calendar=CALENDAR, now=riyadh(7, 9, 59))
    (message,) = caught.value.args
    assert "7 January 2026" in message
    assert "٧ يناير ٢٠٢٦" in message.ar
    assert request.follow_up_count == 0
    assert len(request.events) == 1  # only the submission

    request.follow_up(message="Any news?", calendar=CALENDAR, now=riyadh(7, 10))
    assert request.follow_up_count == 1
    assert request.last_follow_up_at == riyadh(7, 10)
    assert request.updated_at == riyadh(7, 10)
    event = request.events[-1]
    assert isinstance(event, RequestFollowedUp)
    assert event.message == "Any news?"
    assert event.request is request


def test_a_follow_up_refused_on_the_day_it_opens_names_the_hour() -> None:
    """Refused at 09:59 on the day named, the beneficiary learns when that day it opens,
    in Riyadh time, rather than being told "from today"."""
    request = new_request()
    with pytest.raises(FailedPrecondition) as caught:
        request.follow_up(message="Any news?", calendar=CALENDAR, now=riyadh(7, 9, 59))
    (message,) = caught.value.args
    assert "7 January 2026) at 10:00" in message
    assert "٧ يناير ٢٠٢٦ م الساعة ١٠:٠٠" in message.ar


def test_at_most_one_follow_up_a_working_day() -> None:
    request = new_request()
    request.follow_up(message="first", calendar=CALENDAR, now=riyadh(7, 10))
    assert request.follow_up_from(CALENDAR) == riyadh(8, 10)
    with pytest.raises(FailedPrecondition, match="8 January 2026"):
        request.follow_up(message="second", calendar=CALENDAR, now=riyadh(7, 14))
    assert request.follow_up_count == 1
    request.follow_up(message="second", calendar=CALENDAR, now=riyadh(8, 10))
    assert request.follow_up_count == 2
    # Thursday's follow-up makes the next one possible on Sunday, not on the weekend.
    assert request.follow_up_from(CALENDAR) == riyadh(11, 10)


def test_the_follow_up_date_skips_the_weekend() -> None:
    request = new_request(at=riyadh(8, 10))  # Thursday
    assert request.follow_up_from(CALENDAR) == riyadh(13, 10)  # the next Tuesday
    with pytest.raises(FailedPrecondition, match="13 January 2026"):
        request.follow_up(message="?", calendar=CALENDAR, now=riyadh(12, 10))


@pytest.mark.parametrize("status", [Status.CANCELLED, Status.REJECTED, Status.ACCEPTED])
def test_no_follow_up_on_a_closed_request(status: Status) -> None:
    request = new_request()
    request.track(status, "", riyadh(5, 9))
    with pytest.raises(FailedPrecondition, match=f'is "{STATUS_LABELS[status][1]}"'):
        request.follow_up(message="?", calendar=CALENDAR, now=riyadh(20, 10))
    assert request.follow_up_count == 0


def test_no_follow_up_while_the_request_waits_for_the_beneficiary() -> None:
    """A follow-up chases the office; while the office waits for the beneficiary's answer
    it would only raise the request's priority for nothing, so it is refused, naming what to
    do instead."""
    request = new_request()
    request.track(Status.NEEDS_MORE_INFO, "", riyadh(5, 9))
    with pytest.raises(FailedPrecondition) as caught:
        request.follow_up(message="Any news?", calendar=CALENDAR, now=riyadh(20, 10))
    (message,) = caught.value.args
    assert "waiting for your answer" in message
    assert "بانتظار ردك" in message.ar
    assert request.follow_up_count == 0
    assert not any(isinstance(event, RequestFollowedUp) for event in request.events)


# --- cancellation ------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(OPEN))
def test_an_open_request_can_be_cancelled(status: Status) -> None:
    request = new_request()
    request.track(status, "", riyadh(5, 9))
    request.cancel(reason="Solved at the office", now=riyadh(5, 10))
    assert request.status is Status.CANCELLED
    assert request.history[-1] == HistoryEntry(
        Status.CANCELLED, riyadh(5, 10), "Solved at the office", by_beneficiary=True
    )
    assert not request.clock.paused
    event = request.events[-1]
    assert isinstance(event, RequestCancelled)
    assert event.reason == "Solved at the office"


def test_a_request_cancelled_while_waiting_asks_nothing_more() -> None:
    request = new_request()
    receipt = Missing("document", "receipt", "The payment receipt")
    request.track(
        Status.NEEDS_MORE_INFO, "", riyadh(5, 9), missing=(receipt,), respond_by=riyadh(8, 14)
    )
    request.cancel(reason="Solved at the office", now=riyadh(5, 10))
    assert (request.missing, request.respond_by) == ((), None)


@pytest.mark.parametrize("status", [Status.ACCEPTED, *sorted(FINAL)])
def test_a_decided_request_cannot_be_cancelled(status: Status) -> None:
    request = new_request()
    request.track(status, "", riyadh(5, 9))
    events = len(request.events)
    with pytest.raises(FailedPrecondition, match="can no longer be cancelled") as caught:
        request.cancel(reason="too late", now=riyadh(5, 10))
    assert caught.value.args[0].ar == (
        f"حالة الطلب {request.number}: {STATUS_LABELS[status][0]}، ولم يعد إلغاؤه ممكنًا"
    )
    assert request.status is status
    assert len(request.events) == events


def test_citations_are_recorded_once() -> None:
    request = new_request()
    request.cited_by_request("TW000000000")
    request.cited_by_request("TW000000000")
    request.cited_by_request("TW111111111")
    assert request.cited_by == ["TW000000000", "TW111111111"]


def test_the_sla_clock_never_runs_before_submission() -> None:
    request = new_request()
    # A status mirrored with an instant before submission (clock skew) pauses at submission.
    request.track(Status.NEEDS_MORE_INFO, "", SUBMITTED - timedelta(minutes=5))
    assert request.clock.paused_since == SUBMITTED


def test_an_answer_is_only_for_a_request_waiting_on_the_beneficiary() -> None:
    request = new_request()
    with pytest.raises(FailedPrecondition, match="no information was requested"):
        request.respond(message="Here it is", fields={}, document_ids=(), now=riyadh(5, 9))
    request.track(
        Status.NEEDS_MORE_INFO,
        "Attach the receipt",
        riyadh(5, 10),
        missing=(Missing("document", "receipt", "The payment receipt"),),
        respond_by=riyadh(8, 14),
    )
    assert request.missing == (Missing("document", "receipt", "The payment receipt"),)
    with pytest.raises(InvalidArgument):
        request.respond(message="", fields={}, document_ids=(), now=riyadh(6, 9))
    # Nothing a reader sees is nothing said.
    with pytest.raises(InvalidArgument):
        request.respond(message="\u200b\u200f", fields={}, document_ids=(), now=riyadh(6, 9))
    with pytest.raises(FailedPrecondition, match="deadline"):
        request.respond(message="Late", fields={}, document_ids=(), now=riyadh(8, 15))
    receipt = uuid.uuid4()
    request.respond(
        message="Attached",
        fields={"passport_number": "A7654321"},
        document_ids=(receipt,),
        now=riyadh(6, 9),
    )
    assert request.status is Status.RETURNED_BY_APPLICANT
    assert not request.missing
    assert request.respond_by is None
    assert request.fields["passport_number"] == "A7654321"
    assert request.document_ids[-1] == receipt
    (answered,) = [e for e in request.events if isinstance(e, RequestAnswered)]
    assert (answered.message, answered.document_ids) == ("Attached", (receipt,))
    # The clock ran again from the answer: paused from Monday 10:00 to Tuesday 09:00.
    assert request.clock.pauses == ((riyadh(5, 10), riyadh(6, 9)),)


def test_an_answer_sent_again_under_its_key_is_a_retry_even_after_a_new_question() -> None:
    """Its reply lost, the channel sends the answer again under the same key; meanwhile the
    reviewer has asked for more. The retry is not the answer to the new question."""
    request = new_request()
    request.track(
        Status.NEEDS_MORE_INFO, "Attach the receipt", riyadh(5, 10), respond_by=riyadh(8, 14)
    )
    keyed = Answer(message="Attached", fields={}, document_ids=(), key="answer-1")
    request.respond(
        message="Attached", fields={}, document_ids=(), now=riyadh(6, 9), key="answer-1"
    )
    assert request.answered_already(keyed)
    request.track(
        Status.NEEDS_MORE_INFO, "The receipt is unreadable", riyadh(6, 10), respond_by=riyadh(8, 14)
    )
    assert request.answered_already(keyed)
    # The same words without the key, or under a new one, answer the new question.
    assert not request.answered_already(replace(keyed, key=""))
    assert not request.answered_already(replace(keyed, key="answer-2"))
    # The key of an answer taken, with something else said: a mistake of the channel's.
    with pytest.raises(InvalidArgument) as caught:
        request.answered_already(replace(keyed, message="Attached again"))
    assert caught.value.violations == {
        "idempotency_key": "an answer was already taken under this key: the request shows it"
    }


def test_without_a_key_only_the_latest_answer_sent_again_is_a_retry() -> None:
    request = new_request()
    request.track(
        Status.NEEDS_MORE_INFO, "Attach the receipt", riyadh(5, 10), respond_by=riyadh(8, 14)
    )
    request.respond(message="Attached", fields={}, document_ids=(), now=riyadh(6, 9))
    plain = Answer(message="Attached", fields={}, document_ids=())
    assert request.answered_already(plain)
    assert not request.answered_already(replace(plain, message="Something else"))
    request.track(
        Status.NEEDS_MORE_INFO, "The receipt is unreadable", riyadh(6, 10), respond_by=riyadh(8, 14)
    )
    assert not request.answered_already(plain)


def test_a_closure_racing_an_answer_given_in_time_leaves_the_answer_standing() -> None:
    """Review's sweep closed the request before the answer intake took by the deadline
    reached review; review reopens it when the answer arrives."""
    request = new_request()
    request.track(
        Status.NEEDS_MORE_INFO, "Attach the receipt", riyadh(5, 10), respond_by=riyadh(8, 14)
    )
    request.respond(message="Attached", fields={}, document_ids=(), now=riyadh(8, 14))
    history = list(request.history)
    request.track(Status.CLOSED, "The information was not received in time", riyadh(8, 15))
    assert (request.status, request.history) == (Status.RETURNED_BY_APPLICANT, history)
    request.track(Status.RETURNED_BY_APPLICANT, "", riyadh(8, 16))
    assert (request.status, request.history) == (Status.RETURNED_BY_APPLICANT, history)
    # A request waiting on the beneficiary closes as before.
    request.track(Status.NEEDS_MORE_INFO, "And the photo", riyadh(9, 10), respond_by=riyadh(12, 14))
    request.track(Status.CLOSED, "The information was not received in time", riyadh(12, 15))
    assert request.status is Status.CLOSED


def test_a_cancellation_made_by_the_deadline_stands_against_the_closure_that_raced_it() -> None:
    """Cancelled while waiting on the beneficiary, before the deadline: review's sweep closed
    the request before the cancellation reached it, and says by which deadline. The
    beneficiary's act stands; one made after the deadline came too late."""
    request = new_request()
    request.track(
        Status.NEEDS_MORE_INFO, "Attach the receipt", riyadh(5, 10), respond_by=riyadh(8, 14)
    )
    request.cancel(reason="Solved at the office", now=riyadh(8, 13, 59))
    request.track(Status.CANCELLED, "Restated", riyadh(8, 14, 1))
    history = list(request.history)
    closed = "The information was not received in time"
    request.track(Status.CLOSED, closed, riyadh(8, 14, 2), respond_by=riyadh(8, 14))
    assert (request.status, request.history) == (Status.CANCELLED, history)
    late = new_request()
    late.track(
        Status.NEEDS_MORE_INFO, "Attach the receipt", riyadh(5, 10), respond_by=riyadh(8, 14)
    )
    late.cancel(reason="Solved at the office", now=riyadh(8, 14, 1))
    late.track(Status.CLOSED, closed, riyadh(8, 14, 2), respond_by=riyadh(8, 14))
    assert late.status is Status.CLOSED


def test_a_closure_racing_an_answer_leaves_a_cancellation_after_it_standing() -> None:
    """Answered in time, then cancelled: review reopens the request when the answer reaches
    it and withdraws it at the cancellation, so its closure, arriving last, is no outcome."""
    request = new_request()
    request.track(
        Status.NEEDS_MORE_INFO, "Attach the receipt", riyadh(5, 10), respond_by=riyadh(8, 14)
    )
    request.respond(message="Attached", fields={}, document_ids=(), now=riyadh(8, 14))
    request.cancel(reason="Solved at the office", now=riyadh(8, 14, 30))
    history = list(request.history)
    request.track(Status.CLOSED, "The information was not received in time", riyadh(8, 15))
    assert (request.status, request.history) == (Status.CANCELLED, history)
    request.track(Status.RETURNED_BY_APPLICANT, "", riyadh(8, 16))
    assert (request.status, request.history) == (Status.CANCELLED, history)


def test_a_rejection_is_appealed_once_within_ten_working_days() -> None:
    request = new_request()
    with pytest.raises(FailedPrecondition, match="only a rejection"):
        request.appeal(reason="Please look again", calendar=CALENDAR, now=riyadh(5, 9))
    request.track(Status.REJECTED, "The photo is not clear", riyadh(5, 10))
    # Ten working days from Monday 5 January 10:00: Monday 19 January, to its end.
    assert request.appeal_until(CALENDAR) == riyadh(20, 0) - timedelta(microseconds=1)
    with pytest.raises(FailedPrecondition, match="passed"):
        request.appeal(reason="Late", calendar=CALENDAR, now=riyadh(20, 9))
    with pytest.raises(InvalidArgument):
        request.appeal(reason="", calendar=CALENDAR, now=riyadh(6, 9))
    with pytest.raises(InvalidArgument):
        request.appeal(reason="\u200b \ufeff", calendar=CALENDAR, now=riyadh(6, 9))
    request.appeal(reason="The photo was taken at a studio", calendar=CALENDAR, now=riyadh(6, 9))
    assert (request.status, request.appealed, request.decision_message) == (
        Status.UNDER_REVIEW,
        True,
        "",
    )
    (appealed,) = [e for e in request.events if isinstance(e, RequestAppealed)]
    assert appealed.reason == "The photo was taken at a studio"
    # Notify acknowledges it, by SMS, e-mail and in the beneficiary's in-app inbox.
    wire = events_pb2.Envelope.FromString(to_event(appealed).payload).request_appealed
    assert (wire.request_number, wire.applicant_id, wire.contact.mobile) == (
        "TW123456789",
        "1000000008",
        "+966551234567",
    )
    # The appeal's decision arrives like any other; a second rejection is final.
    request.track(Status.REJECTED, "Confirmed by a second reviewer", riyadh(7, 9))
    assert request.appeal_until(CALENDAR) is None
    with pytest.raises(FailedPrecondition, match="appealed already"):
        request.appeal(reason="Again", calendar=CALENDAR, now=riyadh(7, 10))


def test_an_appeal_is_possible_through_the_last_day_shown() -> None:
    """The beneficiary is told a day ("appeal until Monday 19 January"): an appeal that
    afternoon is in time, the next day's is not."""
    request = new_request()
    request.track(Status.REJECTED, "The photo is not clear", riyadh(5, 10))
    until = request.appeal_until(CALENDAR)
    assert until is not None
    assert until.astimezone(RIYADH).date() == riyadh(19, 10).date()
    late = new_request()
    late.track(Status.REJECTED, "The photo is not clear", riyadh(5, 10))
    with pytest.raises(FailedPrecondition, match="passed"):
        late.appeal(reason="Late", calendar=CALENDAR, now=riyadh(20, 0, 1))
    request.appeal(reason="The photo was taken at a studio", calendar=CALENDAR, now=riyadh(19, 16))
    assert request.status is Status.UNDER_REVIEW


def test_an_appeal_is_promised_the_whole_sla_from_the_appeal() -> None:
    # An appeal is a new review, on a clock of its own (review's too): the promise shown to the
    # beneficiary is review's due date, at least the old one moved out by the time the
    # rejection stood (four working days left: Wednesday 21), never one already past.
    request = new_request()  # Sunday 4 January 10:00, five working days: Sunday 11, 10:00
    request.track(Status.REJECTED, "The photo is not clear", riyadh(5, 10))  # one day used
    request.appeal(reason="The photo was taken at a studio", calendar=CALENDAR, now=riyadh(15, 10))
    # Five working days from Thursday 15 January 10:00.
    assert request.expected_completion(CALENDAR, riyadh(15, 10)) == riyadh(22, 10)
    assert request.expected_completion(CALENDAR, riyadh(20, 10)) == riyadh(22, 10)
    # The appeal's notice tells the beneficiary that date.
    (appealed,) = [e for e in request.events if isinstance(e, RequestAppealed)]
    assert appealed.expected_completion == riyadh(22, 10)
    wire = events_pb2.Envelope.FromString(to_event(appealed).payload).request_appealed
    assert wire.expected_completion_at.ToDatetime(tzinfo=UTC) == riyadh(22, 10)


def test_an_appeal_of_a_rejection_made_after_the_due_date_is_promised_a_date_after_it() -> None:
    request = new_request()  # due Sunday 11 January 10:00
    # The office rejected late, on Tuesday 13th; resumed, the old clock fell due Monday 12th.
    request.track(Status.REJECTED, "The photo is not clear", riyadh(13, 10))
    request.appeal(reason="The photo was taken at a studio", calendar=CALENDAR, now=riyadh(14, 10))
    (appealed,) = [e for e in request.events if isinstance(e, RequestAppealed)]
    assert appealed.expected_completion == riyadh(21, 10)  # five working days from the 14th


# --- generated sequences ---------------------------------------------------------------------
# Hypothesis' stateful testing: the beneficiary's actions by intake's clock, review's status
# changes stamped by review's clock (up to 2 s off intake's) in any order, and time passing. An
# action is either refused with a caller's error and changes nothing, or leaves the request
# consistent: a final status stays final but for the races the model allows, the history and
# events only grow, and the promise's clock is paused exactly while the request waits on the
# beneficiary.

RECEIPT = Missing("document", "receipt", "The payment receipt")
REFUSED = (FailedPrecondition, InvalidArgument)
# What review publishes about a request (and an accepted one's processing).
FROM_REVIEW = sorted(set(Status) - {Status.SUBMITTED, Status.CANCELLED})

skew = st.integers(min_value=-2, max_value=2).map(lambda s: timedelta(seconds=s))


def allowed(before: Status, after: Status) -> bool:
    """A final status stays, but for an outcome review reached before a cancellation reached
    it, and an appeal of a rejection."""
    if before not in FINAL or after == before:
        return True
    return (before is Status.CANCELLED and after in OUTCOMES | {Status.PROCESSED}) or (
        before is Status.REJECTED and after is Status.UNDER_REVIEW
    )


class RequestLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = SUBMITTED
        self.request = new_request()
        self.status = self.request.status
        self.history: list[HistoryEntry] = []
        self.events: list[object] = []

    def act(self, action: Callable[[], object]) -> None:
        before = (self.request.status, len(self.request.history), len(self.request.events))
        try:
            action()
        except REFUSED:
            after = (self.request.status, len(self.request.history), len(self.request.events))
            assert after == before
        assert allowed(self.status, self.request.status), (self.status, self.request.status)
        self.status = self.request.status

    @rule(hours=st.integers(min_value=0, max_value=24 * 9), minutes=st.integers(0, 59))
    def time_passes(self, hours: int, minutes: int) -> None:
        self.now += timedelta(hours=hours, minutes=minutes)

    # --- review, by its own clock -----------------------------------------------------------

    @rule(
        status=st.sampled_from(FROM_REVIEW),
        message=st.sampled_from(("", "We are checking your file")),
        off=skew,
        days=st.integers(min_value=1, max_value=10),
    )
    def review_publishes(self, status: Status, message: str, off: timedelta, days: int) -> None:
        at = self.now + off
        waiting = status is Status.NEEDS_MORE_INFO
        self.act(
            lambda: self.request.track(
                status,
                message,
                at,
                missing=(RECEIPT,) if waiting else (),
                respond_by=CALENDAR.add_working_days(at, days) if waiting else None,
            )
        )

    # --- the beneficiary, by intake's clock -------------------------------------------------

    @rule()
    def follows_up(self) -> None:
        self.act(
            lambda: self.request.follow_up(message="Any news?", calendar=CALENDAR, now=self.now)
        )

    @rule()
    def cancels(self) -> None:
        self.act(lambda: self.request.cancel(reason="Solved", now=self.now))

    @rule(message=st.sampled_from(("", "Attached")))
    def answers(self, message: str) -> None:
        self.act(
            lambda: self.request.respond(message=message, fields={}, document_ids=(), now=self.now)
        )

    @rule(reason=st.sampled_from(("", "The photo is fine")))
    def appeals(self, reason: str) -> None:
        self.act(lambda: self.request.appeal(reason=reason, calendar=CALENDAR, now=self.now))

    # --- what holds after every step ---------------------------------------------------------

    @invariant()
    def records_only_grow(self) -> None:
        # Appended, but for a step review took before the cancellation reached it, which goes
        # before the cancellation (Request.track): what was recorded stays, in its order.
        crossed = iter(self.request.history)
        assert all(any(h == entry for entry in crossed) for h in self.history)
        if self.request.status is not Status.CANCELLED:
            assert self.request.history[: len(self.history)] == self.history
        assert self.request.events[: len(self.events)] == self.events
        self.history = list(self.request.history)
        self.events = list(self.request.events)

    @invariant()
    def the_history_ends_at_the_status(self) -> None:
        assert self.request.history[-1].status is self.request.status

    @invariant()
    def the_promise_waits_while_the_beneficiary_does(self) -> None:
        request = self.request
        waiting = request.status is Status.NEEDS_MORE_INFO
        assert request.clock.paused == waiting
        if not waiting:
            assert request.missing == ()
            assert request.respond_by is None
        assert request.expected_completion(CALENDAR, self.now) >= request.submitted_at

    @invariant()
    def appealed_once_at_most(self) -> None:
        appeals = [e for e in self.request.events if isinstance(e, RequestAppealed)]
        assert len(appeals) == int(self.request.appealed)


RequestLife.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_request_life = RequestLife.TestCase
