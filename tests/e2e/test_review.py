"""Review on the real stack: claim-next and leases, information requests answered and expired,
transfers routed again, SLA alerts, and reviewers of another department refused."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from tawasul.common.v1 import common_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul.notify.v1 import notify_pb2
from tawasul.review.v1 import review_pb2
from tawasul_calendar import RIYADH, Locale, Sla, WorkingCalendar, format_date
from tawasul_devstack.journey import Clients, eventually, new_resident
from tawasul_devstack.stack import Stack
from tawasul_platform import appeals, topics
from tawasul_platform.catalog import load_catalog
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role
from tawasul_platform.workdays import shipped_config

from tests.e2e.direct import sql
from tests.e2e.topics import envelopes

TIMEOUT = DEFAULT_DEADLINE_SECONDS
# Only this module files visa cancellations, so their queue holds only its requests.
DEPARTMENT = "visas"
SUB_SERVICE = "visas.cancel-visa"
# The stack's services run on the shipped calendar with the default office hours.
CALENDAR = WorkingCalendar(config=shipped_config())


def riyadh_day(instant: datetime) -> date:
    return instant.astimezone(RIYADH).date()


async def file_visa_cancellation(clients: Clients) -> tuple[str, intake_pb2.Request]:
    """A fresh resident cancels their own visa: the iqama number names the person the request
    is about, the account holder here (SPEC §2)."""
    resident_id = new_resident()
    resident = clients.token(resident_id, Role.RESIDENT)
    request = await clients.submit(
        resident,
        key=str(uuid.uuid4()),
        sub_service=SUB_SERVICE,
        description="Please cancel my exit re-entry visa, I am not travelling any more",
        documents=[],
        mobile="0551234567",
        fields={
            "visa_type": "exit_reentry",
            "visa_number": "6012345678",
            "iqama_number": resident_id,
        },
    )
    return resident, request


async def work_item(clients: Clients, reviewer: str, request_id: str) -> review_pb2.WorkItem:
    answer = await clients.review.GetWorkItem(
        review_pb2.GetWorkItemRequest(request_id=request_id),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    return answer.item


async def queued(
    clients: Clients, reviewer: str, request_id: str, within: float = 30
) -> review_pb2.WorkItem:
    async def probe() -> review_pb2.WorkItem | None:
        try:
            item = await work_item(clients, reviewer, request_id)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return item if item.state == review_pb2.WORK_ITEM_STATE_QUEUED else None

    return await eventually(probe, within=within, what="the request queued in review")


async def tracked(clients: Clients, citizen: str, number: str) -> intake_pb2.Request:
    return await clients.track(citizen, number)


async def in_intake(
    clients: Clients, citizen: str, number: str, status: common_pb2.RequestStatus.ValueType
) -> intake_pb2.Request:
    async def probe() -> intake_pb2.Request | None:
        seen = await tracked(clients, citizen, number)
        return seen if seen.status == status else None

    return await eventually(probe, what=f"status {status} in intake")


async def test_claim_next_and_a_lapsed_claim_returns_to_the_queue(clients: Clients) -> None:
    reviewer = clients.token("E6001", Role.REVIEWER, frozenset({DEPARTMENT}))
    _, request = await file_visa_cancellation(clients)
    await queued(clients, reviewer, request.request_id)

    # Claim-next until this request comes (a kept stack may hold older ones: given back).
    for _ in range(20):
        claimed = await clients.review.ClaimNext(
            review_pb2.ClaimNextRequest(department_code=DEPARTMENT),
            timeout=TIMEOUT,
            metadata=bearer(reviewer),
        )
        assert claimed.HasField("item")
        if claimed.item.request_id == request.request_id:
            break
        await clients.review.ReleaseRequest(
            review_pb2.ReleaseRequestRequest(request_id=claimed.item.request_id),
            timeout=TIMEOUT,
            metadata=bearer(reviewer),
        )
    else:
        pytest.fail(f"claim-next kept giving older requests than {request.request_id}")
    assert claimed.item.assignee_id == "E6001"
    assert claimed.item.claimed_until.ToDatetime(tzinfo=UTC) > datetime.now(UTC)

    # The reviewer goes idle: the 20 s lease of the test stack runs out.
    back = await queued(clients, reviewer, request.request_id, within=60)
    assert back.assignee_id == ""
    case = await clients.review.GetCase(
        review_pb2.GetCaseRequest(request_id=request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    actions = [h.action for h in case.history if not h.action.startswith("notification_")]
    assert actions[-2:] == ["claimed", "claim_lapsed"]


async def test_an_information_request_answered_comes_back_to_its_reviewer(
    stack: Stack, clients: Clients
) -> None:
    reviewer = clients.token("E6002", Role.REVIEWER, frozenset({DEPARTMENT}))
    citizen, request = await file_visa_cancellation(clients)
    await queued(clients, reviewer, request.request_id)
    await clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    asked = await clients.review.RequestInformation(
        review_pb2.RequestInformationRequest(
            request_id=request.request_id,
            missing=[
                common_pb2.MissingItem(
                    kind="field", name="visa_number", description="The visa number is not valid"
                )
            ],
            message="Please check the visa number",
            respond_within_working_days=3,
        ),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    assert asked.item.state == review_pb2.WORK_ITEM_STATE_WAITING_ON_APPLICANT
    waiting = await in_intake(
        clients, citizen, request.request_number, common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO
    )
    assert [m.name for m in waiting.missing] == ["visa_number"]
    assert waiting.respond_by.gregorian_date

    # The beneficiary takes two working days to answer: the request and its wait started that
    # much earlier (in both services' databases: they read the real clock).
    waited_days, now = 2, datetime.now(UTC)
    began = now
    while CALENDAR.elapsed(began, now) < waited_days * CALENDAR.hours.day_length:
        began -= timedelta(days=1)
    back = now - began
    await sql(
        stack,
        "intake",
        "UPDATE requests SET submitted_at = submitted_at - CAST(:back AS interval),"
        " paused_since = paused_since - CAST(:back AS interval) WHERE number = :number",
        back=back,
        number=request.request_number,
    )
    await sql(
        stack,
        "review",
        "UPDATE work_items SET submitted_at = submitted_at - CAST(:back AS interval),"
        " paused_since = paused_since - CAST(:back AS interval) WHERE request_id = :id",
        back=back,
        id=uuid.UUID(request.request_id),
    )
    # The clock stood still while it waited (SPEC §5, §6.2): the date promised at the
    # (earlier) submission moves out by the working days the wait took.
    promised = CALENDAR.due(
        request.submitted_at.ToDatetime(tzinfo=UTC) - back,
        load_catalog().sub_services[SUB_SERVICE].sla,
    )
    moved = riyadh_day(CALENDAR.add_working_days(promised, waited_days))

    await clients.intake.RespondToInfoRequest(
        intake_pb2.RespondToInfoRequestRequest(
            request_number=request.request_number,
            message="Corrected",
            fields={"visa_number": "6012345679"},
        ),
        timeout=TIMEOUT,
        metadata=bearer(citizen),
    )

    async def with_its_reviewer() -> review_pb2.WorkItem | None:
        item = await work_item(clients, reviewer, request.request_id)
        return item if item.state == review_pb2.WORK_ITEM_STATE_CLAIMED else None

    item = await eventually(with_its_reviewer, what="the answer back with its reviewer")
    assert item.assignee_id == "E6002"
    assert riyadh_day(item.due_at.ToDatetime(tzinfo=UTC)) == moved
    answered = await tracked(clients, citizen, request.request_number)
    assert answered.status == common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT
    assert answered.fields["visa_number"] == "6012345679"
    assert answered.expected_completion.gregorian_date == moved.isoformat()

    # The beneficiary is told the answer is back under review, and by when it is expected now.
    async def acknowledged() -> str | None:
        texts = [m["text"] for m in await clients.sms_received()]
        return next(
            (t for t in texts if request.request_number in t and "وصلتنا المعلومات" in t), None
        )

    text = await eventually(acknowledged, what="the answer acknowledged by SMS")
    assert f"موعد الإنجاز المتوقع: {format_date(moved, Locale.AR)}" in text


async def test_an_unanswered_information_request_closes_the_request(
    stack: Stack, clients: Clients
) -> None:
    reviewer = clients.token("E6003", Role.REVIEWER, frozenset({DEPARTMENT}))
    citizen, request = await file_visa_cancellation(clients)
    await queued(clients, reviewer, request.request_id)
    await clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    await clients.review.RequestInformation(
        review_pb2.RequestInformationRequest(
            request_id=request.request_id,
            missing=[
                common_pb2.MissingItem(
                    kind="document", name="supporting_document", description="Proof"
                )
            ],
        ),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    # The deadline passes, and the two minutes an answer given by it may take to arrive (in
    # review's database: the service reads the real clock).
    await sql(
        stack,
        "review",
        "UPDATE work_items SET respond_by = now() - interval '3 minutes' WHERE request_id = :id",
        id=uuid.UUID(request.request_id),
    )
    closed = await in_intake(
        clients, citizen, request.request_number, common_pb2.REQUEST_STATUS_CLOSED
    )
    assert closed.history[-1].status == common_pb2.REQUEST_STATUS_CLOSED
    # Why, in the tracking view and in the beneficiary's own language on the SMS.
    assert (closed.decision_reason_code, closed.decision_reason.ar) == (
        "no-answer",
        "لم تصل المعلومات المطلوبة في الموعد المحدد",
    )
    item = await work_item(clients, reviewer, request.request_id)
    assert item.state == review_pb2.WORK_ITEM_STATE_CLOSED

    async def closure_sms() -> str | None:
        texts = [m["text"] for m in await clients.sms_received()]
        number = request.request_number
        return next((t for t in texts if number in t and "تم إغلاق" in t), None)

    sms = await eventually(closure_sms, what="the closure's SMS")
    assert "السبب: \u2067لم تصل المعلومات المطلوبة في الموعد المحدد\u2069" in sms
    assert "The information" not in sms


async def test_a_transfer_is_routed_again_and_its_reason_stays_internal(
    clients: Clients,
) -> None:
    reviewer = clients.token("E6004", Role.REVIEWER, frozenset({DEPARTMENT}))
    residents = clients.token("E6005", Role.REVIEWER, frozenset({"residents"}))
    citizen, request = await file_visa_cancellation(clients)
    await queued(clients, reviewer, request.request_id)
    await clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    reason = "Misfiled: this is a sponsorship matter for the residents section"
    await clients.review.TransferRequest(
        review_pb2.TransferRequestRequest(
            request_id=request.request_id, department_code="residents", reason=reason
        ),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    moved = await queued(clients, residents, request.request_id)
    assert moved.department_code == "residents"
    routed = await envelopes(
        clients.config.kafka_bootstrap, topics.REQUEST_ROUTED, {request.request_id}, at_least=2
    )
    assert [
        (e.request_routed.department_code, e.request_routed.transfer_reason) for e in routed
    ] == [
        (DEPARTMENT, ""),
        ("residents", reason),
    ]
    seen = await in_intake(
        clients, citizen, request.request_number, common_pb2.REQUEST_STATUS_TRANSFERRED
    )
    assert all(reason not in h.message for h in seen.history)
    # The first department's reviewers no longer see it at all.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await work_item(clients, reviewer, request.request_id)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_sla_alerts_and_a_breach_for_the_supervisors(stack: Stack, clients: Clients) -> None:
    reviewer = clients.token("E6006", Role.REVIEWER, frozenset({DEPARTMENT}))
    await clients.appoint_supervisor("S6001", DEPARTMENT)
    supervisor = clients.token("S6001", Role.REVIEWER, frozenset({DEPARTMENT}))

    async def breached() -> int:
        backlog = await clients.review.GetBacklog(
            review_pb2.GetBacklogRequest(department_code=DEPARTMENT),
            timeout=TIMEOUT,
            metadata=bearer(supervisor),
        )
        return sum(q.breached for q in backlog.queues)

    breached_before = await breached()
    _, request = await file_visa_cancellation(clients)
    await queued(clients, reviewer, request.request_id)
    now = datetime.now(UTC)
    budget = Sla.days(3).budget(CALENDAR.hours)
    key = uuid.UUID(request.request_id)

    async def used(share: float, *, at_least: int) -> list[tuple[int, list[str]]]:
        """Moves the submission back until `share` of its 3 working days are used (an hour
        more at most), and answers the SLA alerts published for it once `at_least` are."""
        start = now
        while CALENDAR.elapsed(start, now) < budget * share:
            start -= timedelta(hours=1)
        await sql(
            stack,
            "review",
            "UPDATE work_items SET submitted_at = :start, sla_next_at = now()"
            " WHERE request_id = :id",
            start=start,
            id=key,
        )
        alerts = await envelopes(
            stack.config.kafka_bootstrap, topics.SLA_ALERTS, {request.request_id}, at_least=at_least
        )
        return [(a.sla_alert.percent, list(a.sla_alert.supervisor_ids)) for a in alerts]

    # 60 % used: the first warning. No one holds it: it goes to the supervisors too.
    assert await used(0.6, at_least=1) == [(50, ["S6001"])]
    # 80 %: the second warning (ServiceNow's 75 %), once.
    assert await used(0.8, at_least=2) == [(50, ["S6001"]), (75, ["S6001"])]
    # Long past the due date: the breach.
    assert await used(2, at_least=3) == [(50, ["S6001"]), (75, ["S6001"]), (100, ["S6001"])]

    # Notify tells the supervisor in-app, and by e-mail at their directory address.
    async def told() -> list[notify_pb2.InboxMessage] | None:
        inbox = await clients.notify.ListInbox(
            notify_pb2.ListInboxRequest(), timeout=TIMEOUT, metadata=bearer(supervisor)
        )
        found = [m for m in inbox.messages if m.request_id == request.request_id]
        return sorted(found, key=lambda m: (m.kind, m.text)) if len(found) >= 3 else None

    breach, *warned = await eventually(told, what="the warnings and breach in the inbox")
    assert [m.kind for m in (breach, *warned)] == ["sla_breach", "sla_warning", "sla_warning"]
    assert all(request.request_number in m.text for m in (breach, *warned))
    assert sorted(("٥٠٪" in m.text, "٧٥٪" in m.text) for m in warned) == [
        (False, True),
        (True, False),
    ]

    def mailed() -> list[str] | None:
        to_supervisor = [
            str(m["Subject"])
            for m in clients.emails_received()
            if m["To"] == "s6001.supervisor@passports.example"
            and request.request_number in str(m["Subject"])
        ]
        return to_supervisor if len(to_supervisor) >= 3 else None

    subjects = await eventually(lambda: asyncio.to_thread(mailed), what="the e-mails")
    assert sorted(("٥٠٪" in s, "٧٥٪" in s) for s in subjects) == [
        (False, False),
        (False, True),
        (True, False),
    ]
    # The supervisors' backlog counts this request among the breached, and only it more.
    assert await breached() == breached_before + 1
    item = await work_item(clients, supervisor, request.request_id)
    assert item.sla_percent_used > 100
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.review.GetBacklog(
            review_pb2.GetBacklogRequest(department_code=DEPARTMENT),
            timeout=TIMEOUT,
            metadata=bearer(reviewer),
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_reviewers_of_another_department_are_refused(clients: Clients) -> None:
    reviewer = clients.token("E6007", Role.REVIEWER, frozenset({DEPARTMENT}))
    outsider = clients.token("E6008", Role.REVIEWER, frozenset({"passports"}))
    _, request = await file_visa_cancellation(clients)
    await queued(clients, reviewer, request.request_id)
    for call in (
        clients.review.GetCase(
            review_pb2.GetCaseRequest(request_id=request.request_id),
            timeout=TIMEOUT,
            metadata=bearer(outsider),
        ),
        clients.review.ClaimRequest(
            review_pb2.ClaimRequestRequest(request_id=request.request_id),
            timeout=TIMEOUT,
            metadata=bearer(outsider),
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.review.ListQueue(
            review_pb2.ListQueueRequest(department_code=DEPARTMENT),
            timeout=TIMEOUT,
            metadata=bearer(outsider),
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_an_appeal_goes_to_another_reviewer(stack: Stack, clients: Clients) -> None:
    first = clients.token("E6009", Role.REVIEWER, frozenset({DEPARTMENT}))
    second = clients.token("E6010", Role.REVIEWER, frozenset({DEPARTMENT}))
    citizen, request = await file_visa_cancellation(clients)
    await queued(clients, first, request.request_id)
    await clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(first),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.review.DecideRequest(
            review_pb2.DecideRequestRequest(
                request_id=request.request_id,
                decision=review_pb2.DECISION_REJECT,
                message="The visa number does not match our records",
            ),
            timeout=TIMEOUT,
            metadata=bearer(first),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await clients.review.DecideRequest(
        review_pb2.DecideRequestRequest(
            request_id=request.request_id,
            decision=review_pb2.DECISION_REJECT,
            message="The visa number does not match our records",
            reason_code="data-mismatch",
        ),
        timeout=TIMEOUT,
        metadata=bearer(first),
    )
    rejected = await in_intake(
        clients, citizen, request.request_number, common_pb2.REQUEST_STATUS_REJECTED
    )
    # It may be appealed until the tenth working day after it (tawasul_platform.appeals), and
    # the beneficiary is told that day by SMS.
    rejected_at = rejected.history[-1].at.ToDatetime(tzinfo=UTC)
    last_day = riyadh_day(appeals.appeal_until(CALENDAR, rejected_at))
    assert rejected.appeal_until.gregorian_date == last_day.isoformat()

    async def rejection_sms() -> str | None:
        texts = [m["text"] for m in await clients.sms_received()]
        return next((t for t in texts if request.request_number in t and "رُفض" in t), None)

    told = await eventually(rejection_sms, what="the rejection's SMS")
    assert f"ولك التظلم منه حتى {format_date(last_day, Locale.AR)}" in told
    # The beneficiary reads why, from the office's reason catalog, beside the reviewer's words.
    assert (rejected.decision_reason_code, rejected.decision_reason.ar) == (
        "data-mismatch",
        "البيانات المدخلة لا تطابق السجلات",
    )
    assert rejected.decision_message == "The visa number does not match our records"
    await clients.intake.AppealRejection(
        intake_pb2.AppealRejectionRequest(
            request_number=request.request_number,
            reason="The visa number is right: please see the attached visa print",
        ),
        timeout=TIMEOUT,
        metadata=bearer(citizen),
    )
    appeal = await queued(clients, first, request.request_id)
    assert appeal.appeal_of_reviewer_id == "E6009"

    # The beneficiary is told the appeal was received, before any reviewer claims it.
    async def acknowledged() -> str | None:
        texts = [m["text"] for m in await clients.sms_received()]
        return next((t for t in texts if request.request_number in t and "تظلمك" in t), None)

    await eventually(acknowledged, what="the appeal acknowledged by SMS")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.review.ClaimRequest(
            review_pb2.ClaimRequestRequest(request_id=request.request_id),
            timeout=TIMEOUT,
            metadata=bearer(first),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(second),
    )
    await clients.review.DecideRequest(
        review_pb2.DecideRequestRequest(
            request_id=request.request_id,
            decision=review_pb2.DECISION_ACCEPT,
            message="Corrected after the appeal",
            reason_code="corrected-on-record",
        ),
        timeout=TIMEOUT,
        metadata=bearer(second),
    )
    accepted = await in_intake(
        clients, citizen, request.request_number, common_pb2.REQUEST_STATUS_ACCEPTED
    )
    assert accepted.decision_message == "Corrected after the appeal"

    # Every status change the beneficiary was told of by SMS, the acceptance too, has notify's
    # delivery receipt in the case's history, naming the event it told of.
    changes = await envelopes(
        clients.config.kafka_bootstrap,
        topics.REQUEST_STATUS_CHANGED,
        {request.request_id},
        at_least=1,
        quiet=stack,
    )
    told_of = {e.event_id for e in changes}
    (acceptance,) = [
        e.event_id
        for e in changes
        if e.request_status_changed.status == common_pb2.REQUEST_STATUS_ACCEPTED
    ]

    async def receipts() -> set[str] | None:
        case = await clients.review.GetCase(
            review_pb2.GetCaseRequest(request_id=request.request_id),
            timeout=TIMEOUT,
            metadata=bearer(second),
        )
        causes = {
            h.text.removeprefix("sms: ")
            for h in case.history
            if h.action == "notification_sent" and h.text.startswith("sms: ")
        }
        return causes if acceptance in causes else None

    assert told_of <= await eventually(receipts, what="delivery receipts in the case history")


async def test_an_appeal_after_its_window_is_refused_and_publishes_nothing(
    stack: Stack, clients: Clients
) -> None:
    reviewer = clients.token("E6013", Role.REVIEWER, frozenset({DEPARTMENT}))
    citizen, request = await file_visa_cancellation(clients)
    await queued(clients, reviewer, request.request_id)
    await clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    await clients.review.DecideRequest(
        review_pb2.DecideRequestRequest(
            request_id=request.request_id,
            decision=review_pb2.DECISION_REJECT,
            message="The visa number does not match our records",
            reason_code="data-mismatch",
        ),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    rejected = await in_intake(
        clients, citizen, request.request_number, common_pb2.REQUEST_STATUS_REJECTED
    )
    # The rejection is moved back (in intake's database, which reads the real clock: its
    # history, and the last day the beneficiary was told then) just far enough for that day
    # to pass.
    rejected_at, now = rejected.history[-1].at.ToDatetime(tzinfo=UTC), datetime.now(UTC)
    back = timedelta(days=1)
    while appeals.appeal_until(CALENDAR, rejected_at - back) >= now:
        back += timedelta(days=1)
    await sql(
        stack,
        "intake",
        "UPDATE requests SET appeal_told = :told, history = ("
        " SELECT jsonb_agg(CASE WHEN h->>'status' = 'rejected'"
        " THEN jsonb_set(h, '{at}', to_jsonb((h->>'at')::timestamptz - CAST(:back AS interval)))"
        " ELSE h END"
        " ORDER BY n) FROM jsonb_array_elements(history) WITH ORDINALITY AS e(h, n))"
        " WHERE number = :number",
        told=appeals.appeal_until(CALENDAR, rejected_at - back),
        back=back,
        number=request.request_number,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.intake.AppealRejection(
            intake_pb2.AppealRejectionRequest(
                request_number=request.request_number, reason="The visa number is right"
            ),
            timeout=TIMEOUT,
            metadata=bearer(citizen),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"the time to appeal request {request.request_number} has passed" in (
        caught.value.details() or ""
    )
    # No appeal reached review: nothing on the applicant-actions topic once the stack is quiet.
    assert (
        await envelopes(
            stack.config.kafka_bootstrap,
            topics.APPLICANT_ACTIONS,
            {request.request_id},
            at_least=0,
            quiet=stack,
        )
        == []
    )
    still = await tracked(clients, citizen, request.request_number)
    assert (still.status, still.appealed) == (common_pb2.REQUEST_STATUS_REJECTED, False)


async def test_notes_stay_internal_messages_reach_the_applicant_and_release_requeues(
    clients: Clients,
) -> None:
    reviewer = clients.token("E6011", Role.REVIEWER, frozenset({DEPARTMENT}))
    citizen, request = await file_visa_cancellation(clients)
    await queued(clients, reviewer, request.request_id)
    await clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    note = "Sponsor has two other open visa cases: check them together"
    await clients.review.AddNote(
        review_pb2.AddNoteRequest(request_id=request.request_id, text=note),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    message = "We are checking the visa with the border control system"
    await clients.review.MessageApplicant(
        review_pb2.MessageApplicantRequest(request_id=request.request_id, text=message),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )

    async def told() -> intake_pb2.Request | None:
        seen = await tracked(clients, citizen, request.request_number)
        return seen if any(h.message == message for h in seen.history) else None

    seen = await eventually(told, what="the reviewer's message in the tracking view")
    assert all(note not in h.message for h in seen.history)

    async def texted() -> list[str] | None:
        sent = [m["text"] for m in await clients.sms_received()]
        found = [t for t in sent if request.request_number in t and message in t]
        return found or None

    (sms,) = await eventually(texted, what="the reviewer's message by SMS")
    assert note not in sms
    await clients.review.ReleaseRequest(
        review_pb2.ReleaseRequestRequest(request_id=request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    released = await work_item(clients, reviewer, request.request_id)
    assert (released.state, released.assignee_id) == (review_pb2.WORK_ITEM_STATE_QUEUED, "")
    case = await clients.review.GetCase(
        review_pb2.GetCaseRequest(request_id=request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    entries = {(h.action, h.text, h.internal) for h in case.history}
    assert ("note", note, True) in entries
    assert ("message", message, False) in entries


async def test_an_accepted_request_processed_by_its_department_is_shown_and_told(
    clients: Clients,
) -> None:
    deciding = clients.token("E6011", Role.REVIEWER, frozenset({DEPARTMENT}))
    carrying_out = clients.token("E6012", Role.REVIEWER, frozenset({DEPARTMENT}))
    citizen, request = await file_visa_cancellation(clients)
    await queued(clients, deciding, request.request_id)
    await clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(deciding),
    )
    await clients.review.DecideRequest(
        review_pb2.DecideRequestRequest(
            request_id=request.request_id,
            decision=review_pb2.DECISION_ACCEPT,
            message="Your visa will be cancelled today",
        ),
        timeout=TIMEOUT,
        metadata=bearer(deciding),
    )
    await in_intake(clients, citizen, request.request_number, common_pb2.REQUEST_STATUS_ACCEPTED)
    said = "The visa is cancelled in the records"
    done = await clients.review.MarkProcessed(
        review_pb2.MarkProcessedRequest(request_id=request.request_id, message=said),
        timeout=TIMEOUT,
        metadata=bearer(carrying_out),
    )
    assert done.item.state == review_pb2.WORK_ITEM_STATE_PROCESSED
    processed = await in_intake(
        clients, citizen, request.request_number, common_pb2.REQUEST_STATUS_PROCESSED
    )
    assert (processed.status_label.ar, processed.status_label.en) == ("تمت المعالجة", "Processed")
    # The decision stands as it was given; the processing is the history's last step.
    assert processed.decision_message == "Your visa will be cancelled today"
    assert (processed.history[-1].status_label.en, processed.history[-1].message) == (
        "Processed",
        said,
    )
    assert not processed.HasField("appeal_until")

    async def texted() -> str | None:
        texts = [m["text"] for m in await clients.sms_received()]
        return next((t for t in texts if request.request_number in t and "تمت المعالجة" in t), None)

    assert said in await eventually(texted, what="the beneficiary told it was processed")
