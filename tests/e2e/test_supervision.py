"""Supervision on the real stack (SPEC §6.8-6.9): a supervisor gives a claimed request to another
reviewer, who decides it, and a sampled decision gets its four-eyes quality check."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from tawasul.common.v1 import common_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul.review.v1 import review_pb2
from tawasul_devstack.config import REVIEW_ADMIN
from tawasul_devstack.journey import Clients, eventually, new_resident
from tawasul_devstack.stack import Stack
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role

TIMEOUT = DEFAULT_DEADLINE_SECONDS
# Residents cancelling their visas; no other module's test of this file's run shares the
# reviewers below, whose ids are this module's own.
DEPARTMENT = "visas"
SUB_SERVICE = "visas.cancel-visa"


async def file_visa_cancellation(clients: Clients) -> tuple[str, intake_pb2.Request]:
    resident_id = new_resident()
    resident = clients.token(resident_id, Role.RESIDENT)
    request = await clients.submit(
        resident,
        key=str(uuid.uuid4()),
        sub_service=SUB_SERVICE,
        description="Please cancel my exit re-entry visa, my employer ended my contract",
        documents=[],
        mobile="0551234567",
        fields={
            "visa_type": "exit_reentry",
            "visa_number": "6012345678",
            "iqama_number": resident_id,
        },
    )
    return resident, request


async def record_reviewer(clients: Clients, reviewer_id: str) -> None:
    """The administrator records a reviewer of the department: a supervisor gives items only
    to reviewers on record there."""
    await clients.review_admin.PutReviewer(
        review_pb2.PutReviewerRequest(
            reviewer=review_pb2.Reviewer(
                reviewer_id=reviewer_id,
                departments=[DEPARTMENT],
                languages=["ar", "en"],
                capacity=10,
                available=True,
            )
        ),
        timeout=TIMEOUT,
        metadata=bearer(clients.token(REVIEW_ADMIN, Role.REVIEWER)),
    )


async def claimed_by(clients: Clients, reviewer: str, request_id: str) -> review_pb2.WorkItem:
    """`reviewer` claims the request once routing has queued it."""

    async def probe() -> review_pb2.WorkItem | None:
        try:
            answer = await clients.review.ClaimRequest(
                review_pb2.ClaimRequestRequest(request_id=request_id),
                timeout=TIMEOUT,
                metadata=bearer(reviewer),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return answer.item

    return await eventually(probe, what="the request queued and claimed")


async def accept(clients: Clients, reviewer: str, request_id: str) -> review_pb2.WorkItem:
    answer = await clients.review.DecideRequest(
        review_pb2.DecideRequestRequest(
            request_id=request_id,
            decision=review_pb2.DECISION_ACCEPT,
            message="Your visa is cancelled",
        ),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    return answer.item


async def case_of(clients: Clients, reviewer: str, request_id: str) -> review_pb2.GetCaseResponse:
    return await clients.review.GetCase(
        review_pb2.GetCaseRequest(request_id=request_id),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )


async def in_intake(
    clients: Clients, citizen: str, number: str, status: common_pb2.RequestStatus.ValueType
) -> intake_pb2.Request:
    async def probe() -> intake_pb2.Request | None:
        seen = await clients.track(citizen, number)
        return seen if seen.status == status else None

    return await eventually(probe, what=f"status {status} in intake")


async def test_a_supervisor_reassigns_a_claimed_request_to_another_reviewer(
    clients: Clients,
) -> None:
    first = clients.token("E8101", Role.REVIEWER, frozenset({DEPARTMENT}))
    second = clients.token("E8102", Role.REVIEWER, frozenset({DEPARTMENT}))
    supervisor = clients.token("S8101", Role.REVIEWER, frozenset({DEPARTMENT}))
    await clients.appoint_supervisor("S8101", DEPARTMENT)
    await record_reviewer(clients, "E8102")
    citizen, request = await file_visa_cancellation(clients)
    held = await claimed_by(clients, first, request.request_id)
    assert held.assignee_id == "E8101"

    # A reviewer who supervises nothing may not take it from a colleague.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await clients.review.Reassign(
            review_pb2.ReassignRequest(request_id=request.request_id, reviewer_id="E8102"),
            timeout=TIMEOUT,
            metadata=bearer(second),
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await case_of(clients, second, request.request_id)).item.assignee_id == "E8101"

    given = await clients.review.Reassign(
        review_pb2.ReassignRequest(request_id=request.request_id, reviewer_id="E8102"),
        timeout=TIMEOUT,
        metadata=bearer(supervisor),
    )
    assert given.item.state == review_pb2.WORK_ITEM_STATE_CLAIMED
    assert given.item.assignee_id == "E8102"

    # The reviewer it was taken from no longer holds it.
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await accept(clients, first, request.request_id)
    assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    decided = await accept(clients, second, request.request_id)
    assert decided.state == review_pb2.WORK_ITEM_STATE_DECIDED
    assert decided.decision == review_pb2.DECISION_ACCEPT
    assert decided.assignee_id == "E8102"

    case = await case_of(clients, supervisor, request.request_id)
    trail = [
        (h.actor, h.action, h.text)
        for h in case.history
        if h.action in {"claimed", "assigned", "accept"}
    ]
    assert trail == [
        ("E8101", "claimed", ""),
        ("S8101", "assigned", "E8102"),
        ("E8102", "accept", "Your visa is cancelled"),
    ]

    # The beneficiary's tracking view shows the decision the second reviewer made.
    seen = await in_intake(
        clients, citizen, request.request_number, common_pb2.REQUEST_STATUS_ACCEPTED
    )
    assert seen.decision_message == "Your visa is cancelled"
    assert [e.message for e in seen.history if e.status == common_pb2.REQUEST_STATUS_ACCEPTED] == [
        "Your visa is cancelled"
    ]


@pytest.fixture
async def every_decision_sampled(stack: Stack, clients: Clients) -> AsyncIterator[None]:
    """Review restarted sampling every decision into quality review, and restarted with its
    usual share after: the draw is keyed by a secret of the process, so a test cannot pick a
    request that the usual 10 % would sample."""

    async def restart() -> None:
        await asyncio.to_thread(stack.stop_service, "review")
        await asyncio.to_thread(stack.start_service, "review")
        # The session's channel to review may be between reconnection attempts: the next
        # call (this test's, or a later module's) would fail UNAVAILABLE at once.
        await clients.review.ListReasons(
            review_pb2.ListReasonsRequest(),
            timeout=TIMEOUT,
            metadata=bearer(clients.token("E8201", Role.REVIEWER, frozenset({DEPARTMENT}))),
            wait_for_ready=True,
        )

    # Services inherit the test's environment (StackConfig.service_env).
    environment = pytest.MonkeyPatch()
    environment.setenv("TAWASUL_QUALITY_SAMPLE_PERCENT", "100")
    try:
        await restart()
        yield
    finally:
        environment.undo()
        await restart()


@pytest.mark.usefixtures("every_decision_sampled")
async def test_a_sampled_decision_is_checked_by_another_reviewer(clients: Clients) -> None:
    deciding = clients.token("E8201", Role.REVIEWER, frozenset({DEPARTMENT}))
    checking = clients.token("E8202", Role.REVIEWER, frozenset({DEPARTMENT}))
    supervisor = clients.token("S8201", Role.REVIEWER, frozenset({DEPARTMENT}))
    await clients.appoint_supervisor("S8201", DEPARTMENT)
    _, request = await file_visa_cancellation(clients)
    await claimed_by(clients, deciding, request.request_id)
    await accept(clients, deciding, request.request_id)

    async def pending() -> list[review_pb2.QualityCheck]:
        answer = await clients.review.ListQualityChecks(
            review_pb2.ListQualityChecksRequest(department_code=DEPARTMENT),
            timeout=TIMEOUT,
            metadata=bearer(supervisor),
        )
        return [c for c in answer.checks if c.request_id == request.request_id]

    [check] = await pending()
    assert check.request_number == request.request_number
    assert check.department_code == DEPARTMENT
    assert check.decision == review_pb2.DECISION_ACCEPT
    assert check.decided_by == "E8201"
    assert check.checked_by == ""

    # Four eyes: the one who decided does not check their own decision.
    with pytest.raises(grpc.aio.AioRpcError) as own:
        await clients.review.CompleteQualityCheck(
            review_pb2.CompleteQualityCheckRequest(
                request_id=request.request_id, verdict="agree", note="Looks right to me"
            ),
            timeout=TIMEOUT,
            metadata=bearer(deciding),
        )
    assert own.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert [c.checked_by for c in await pending()] == [""]

    done = await clients.review.CompleteQualityCheck(
        review_pb2.CompleteQualityCheckRequest(
            request_id=request.request_id, verdict="agree", note="Iqama and visa match"
        ),
        timeout=TIMEOUT,
        metadata=bearer(checking),
    )
    assert (done.check.checked_by, done.check.verdict) == ("E8202", "agree")
    # Checked: off the list of checks to make, and kept among the department's checks.
    assert await pending() == []
    every = await clients.review.ListQualityChecks(
        review_pb2.ListQualityChecksRequest(department_code=DEPARTMENT, include_done=True),
        timeout=TIMEOUT,
        metadata=bearer(supervisor),
    )
    [kept] = [c for c in every.checks if c.request_id == request.request_id]
    assert (kept.checked_by, kept.verdict, kept.note) == ("E8202", "agree", "Iqama and visa match")
    # And on the case's history, for the office only.
    case = await clients.review.GetCase(
        review_pb2.GetCaseRequest(request_id=request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(supervisor),
    )
    assert [
        (h.actor, h.text, h.internal) for h in case.history if h.action == "quality_checked"
    ] == [("E8202", "agree: Iqama and visa match", True)]
