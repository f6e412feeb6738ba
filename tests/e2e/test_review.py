"""Review on the real stack: claim-next and leases, information requests answered and expired,
transfers routed again, SLA alerts, and reviewers of another department refused."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from tawasul.common.v1 import common_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul.notify.v1 import notify_pb2
from tawasul.review.v1 import review_pb2
from tawasul_calendar import Sla, WorkingCalendar
from tawasul_devstack.journey import Clients, eventually, new_resident
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role

from tests.e2e.direct import sql
from tests.e2e.topics import envelopes

TIMEOUT = DEFAULT_DEADLINE_SECONDS
# Only this module files visa cancellations, so their queue holds only its requests.
DEPARTMENT = "visas"
SUB_SERVICE = "visas.cancel-visa"


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
    clients: Clients,
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
    answered = await tracked(clients, citizen, request.request_number)
    assert answered.status == common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT
    assert answered.fields["visa_number"] == "6012345679"

    # The beneficiary is told the answer is back under review, and by when it is expected now.
    async def acknowledged() -> str | None:
        texts = [m["text"] for m in await clients.sms_received()]
        return next(
            (t for t in texts if request.request_number in t and "وصلتنا المعلومات" in t), None
        )

    text = await eventually(acknowledged, what="the answer acknowledged by SMS")
    assert "موعد الإنجاز المتوقع" in text


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
    _, request = await file_visa_cancellation(clients)
    await queued(clients, reviewer, request.request_id)
    # Move the submission back until 60 % of its 3 working days are used: a warning.
    calendar, now = WorkingCalendar(), datetime.now(UTC)
    budget = Sla.days(3).budget(calendar.hours)
    start = now
    while calendar.elapsed(start, now) < budget * 0.6:
        start -= timedelta(hours=1)
    key = uuid.UUID(request.request_id)
    await sql(
        stack,
        "review",
        "UPDATE work_items SET submitted_at = :start, sla_next_at = now() WHERE request_id = :id",
        start=start,
        id=key,
    )
    (warning,) = await envelopes(
        stack.config.kafka_bootstrap, topics.SLA_ALERTS, {request.request_id}, at_least=1
    )
    # No one holds it: the warning goes to the supervisors too.
    assert (warning.sla_alert.percent, list(warning.sla_alert.supervisor_ids)) == (50, ["S6001"])
    await sql(
        stack,
        "review",
        "UPDATE work_items SET submitted_at = :start, sla_next_at = now() WHERE request_id = :id",
        start=start - timedelta(days=30),
        id=key,
    )
    alerts = await envelopes(
        stack.config.kafka_bootstrap, topics.SLA_ALERTS, {request.request_id}, at_least=2
    )
    assert [(a.sla_alert.percent, list(a.sla_alert.supervisor_ids)) for a in alerts] == [
        (50, ["S6001"]),
        (100, ["S6001"]),
    ]
    supervisor = clients.token("S6001", Role.REVIEWER, frozenset({DEPARTMENT}))

    # Notify tells the supervisor in-app, and by e-mail at their directory address.
    async def told() -> list[notify_pb2.InboxMessage] | None:
        inbox = await clients.notify.ListInbox(
            notify_pb2.ListInboxRequest(), timeout=TIMEOUT, metadata=bearer(supervisor)
        )
        found = [m for m in inbox.messages if m.request_id == request.request_id]
        return sorted(found, key=lambda m: m.kind) if len(found) >= 2 else None

    breach, warned = await eventually(told, what="the warning and breach in the inbox")
    assert (breach.kind, warned.kind) == ("sla_breach", "sla_warning")
    assert request.request_number in breach.text
    assert request.request_number in warned.text
    assert "٥٠٪" in warned.text

    def mailed() -> list[str] | None:
        to_supervisor = [
            str(m["Subject"])
            for m in clients.emails_received()
            if m["To"] == "s6001.supervisor@passports.example"
            and request.request_number in str(m["Subject"])
        ]
        return to_supervisor if len(to_supervisor) >= 2 else None

    subjects = await eventually(lambda: asyncio.to_thread(mailed), what="the e-mails")
    assert sorted("٥٠٪" in subject for subject in subjects) == [False, True]
    backlog = await clients.review.GetBacklog(
        review_pb2.GetBacklogRequest(department_code=DEPARTMENT),
        timeout=TIMEOUT,
        metadata=bearer(supervisor),
    )
    assert sum(q.breached for q in backlog.queues) >= 1
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


async def test_an_appeal_goes_to_another_reviewer(clients: Clients) -> None:
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
    assert rejected.appeal_until.gregorian_date
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

    # Notify's delivery receipts are in the case's history.
    async def receipts() -> list[review_pb2.HistoryEntry] | None:
        case = await clients.review.GetCase(
            review_pb2.GetCaseRequest(request_id=request.request_id),
            timeout=TIMEOUT,
            metadata=bearer(second),
        )
        found = [h for h in case.history if h.action == "notification_sent"]
        return found if len(found) >= 3 else None

    await eventually(receipts, what="delivery receipts in the case history")


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
