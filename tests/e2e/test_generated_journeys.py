"""Generated journeys across the real stack: a request's beneficiary (through intake) and its
department's reviewers (through review) act in any order the rules allow, and after every
step the two services must agree with a model of what each should show: intake's status and
decision for the beneficiary, review's state, holder and department for the office. Actions
out of turn must be refused and change nothing; a cancellation racing a decision must end
the same on both sides. At the end, review's status changes on Kafka must be exactly the ones
the model expected, counted once the topic has gone quiet.

The service tiers test each service's rules alone; this tests the mapping between them (the
statuses review publishes against the tracking view intake keeps) over Kafka and routing.
Each step waits for both services to settle, so runs are few and short (derandomized:
TAWASUL_JOURNEY_EXAMPLES and TAWASUL_JOURNEY_RANDOM=1 try more, or new ones).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar

import grpc
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from tawasul.common.v1 import common_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul.review.v1 import review_pb2
from tawasul_devstack.journey import Clients, eventually, new_citizen
from tawasul_platform import topics
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role
from tawasul_platform.testing import on_loop

from tests.e2e.topics import envelopes

T = TypeVar("T")
Status: TypeAlias = common_pb2.RequestStatus.ValueType
State: TypeAlias = review_pb2.WorkItemState.ValueType

EXAMPLES = int(os.environ.get("TAWASUL_JOURNEY_EXAMPLES", "12"))
RANDOM = os.environ.get("TAWASUL_JOURNEY_RANDOM") == "1"
TIMEOUT = DEFAULT_DEADLINE_SECONDS
# Other modules find their own requests in these queues by id, and never claim the next one
# there; every item this module leaves claimed is released, so its reviewers stay free.
SUB_SERVICE = "reports.general-inquiry"
REVIEWERS = {"reports": ("E7101", "E7102"), "residents": ("E7201", "E7202")}
OPEN = {
    common_pb2.REQUEST_STATUS_SUBMITTED,
    common_pb2.REQUEST_STATUS_UNDER_REVIEW,
    common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
    common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT,
    common_pb2.REQUEST_STATUS_TRANSFERRED,
}
DECIDED_WITH = {
    True: (common_pb2.REQUEST_STATUS_ACCEPTED, "The payment is released; try again tomorrow"),
    False: (common_pb2.REQUEST_STATUS_REJECTED, "The receipt attached is not readable"),
}
QUEUED = review_pb2.WORK_ITEM_STATE_QUEUED
CLAIMED = review_pb2.WORK_ITEM_STATE_CLAIMED


@dataclass
class Expected:
    """What each service should show once it has settled."""

    status: Status = common_pb2.REQUEST_STATUS_SUBMITTED
    decision_message: str = ""
    appealed: bool = False
    state: State = QUEUED
    department: str = "reports"
    holder: str = ""
    # Who asked for information (the answer goes back to them) and who decided a rejection
    # under appeal (they may not take it again).
    asked_by: str = ""
    appeal_of: str = ""
    # Review's last published status, and every status change it should have published.
    public: Status = common_pb2.REQUEST_STATUS_UNSPECIFIED
    published: list[Status] = field(default_factory=list)

    def publish(self, status: Status) -> None:
        self.public = status
        self.published.append(status)


async def status_of(call: Callable[[], Awaitable[object]]) -> grpc.StatusCode:
    try:
        await call()
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


class Journey(RuleBasedStateMachine):
    def __init__(self, clients: Clients, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.clients, self.loop = clients, loop
        self.citizen = clients.token(new_citizen(), Role.CITIZEN)
        self.stranger = clients.token(new_citizen(), Role.CITIZEN)
        self.expected = Expected()
        self.request_id = self.number = ""

    def run(self, work: Awaitable[T]) -> T:
        return on_loop(self.loop, work, timeout=90)

    def reviewer(self, subject: str = "") -> str:
        subject = subject or self.expected.holder or REVIEWERS[self.expected.department][0]
        department = next(d for d, ids in REVIEWERS.items() if subject in ids)
        return self.clients.token(subject, Role.REVIEWER, frozenset({department}))

    def answered(self, call: Callable[[], Awaitable[object]]) -> grpc.StatusCode:
        """The call's status, started on the loop its channel belongs to."""
        return self.run(status_of(call))

    # --- the two sides' calls --------------------------------------------------------------

    async def _submit(self) -> intake_pb2.Request:
        return await self.clients.submit(
            self.citizen,
            key=str(uuid.uuid4()),
            sub_service=SUB_SERVICE,
            description="My visa transaction has been stalled at the payment step for two weeks",
            documents=[],
            mobile="0551234567",
        )

    def applicant(self, action: str) -> grpc.StatusCode:
        intake, number = self.clients.intake, self.number
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "answer": lambda: intake.RespondToInfoRequest(
                intake_pb2.RespondToInfoRequestRequest(
                    request_number=number,
                    message="The payment reference is SADAD 5512 0098 7731",
                ),
                timeout=TIMEOUT,
                metadata=bearer(self.citizen),
            ),
            "appeal": lambda: intake.AppealRejection(
                intake_pb2.AppealRejectionRequest(
                    request_number=number, reason="The reference was in the description"
                ),
                timeout=TIMEOUT,
                metadata=bearer(self.citizen),
            ),
            "cancel": lambda: intake.CancelRequest(
                intake_pb2.CancelRequestRequest(request_number=number, reason="No longer needed"),
                timeout=TIMEOUT,
                metadata=bearer(self.citizen),
            ),
        }
        return self.answered(calls[action])

    def allowed(self, action: str) -> bool:
        e = self.expected
        if action == "answer":
            return e.status == common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO
        if action == "appeal":
            return e.status == common_pb2.REQUEST_STATUS_REJECTED and not e.appealed
        return e.status in OPEN

    def decide(self, accept: bool) -> Callable[[], Awaitable[object]]:
        _, message = DECIDED_WITH[accept]
        decision = review_pb2.DecideRequestRequest(
            request_id=self.request_id,
            decision=review_pb2.DECISION_ACCEPT if accept else review_pb2.DECISION_REJECT,
            message=message,
            reason_code="completed" if accept else "documents-unclear",
        )
        token = self.reviewer()
        return lambda: self.clients.review.DecideRequest(
            decision, timeout=TIMEOUT, metadata=bearer(token)
        )

    def decided(self, accept: bool) -> None:
        status, message = DECIDED_WITH[accept]
        self.expected.status, self.expected.decision_message = status, message
        self.expected.state = review_pb2.WORK_ITEM_STATE_DECIDED
        self.expected.publish(status)

    # --- what each side shows --------------------------------------------------------------

    async def _shown(self) -> tuple[intake_pb2.Request, review_pb2.WorkItem | None]:
        tracked = await self.clients.track(self.citizen, self.number)
        try:
            answer = await self.clients.review.GetWorkItem(
                review_pb2.GetWorkItemRequest(request_id=self.request_id),
                timeout=TIMEOUT,
                metadata=bearer(self.reviewer(REVIEWERS[self.expected.department][0])),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:  # not routed (here) yet
                raise
            return tracked, None
        return tracked, answer.item

    def mismatches(self, tracked: intake_pb2.Request, item: review_pb2.WorkItem | None) -> str:
        e = self.expected
        seen = {
            "status": common_pb2.RequestStatus.Name(tracked.status),
            "decision": tracked.decision_message,
            "state": review_pb2.WorkItemState.Name(item.state) if item else None,
            "holder": item.assignee_id if item else None,
            "department": item.department_code if item else None,
        }
        wanted = {
            "status": common_pb2.RequestStatus.Name(e.status),
            "decision": e.decision_message,
            "state": review_pb2.WorkItemState.Name(e.state),
            "holder": e.holder,
            "department": e.department,
        }
        if e.status not in (common_pb2.REQUEST_STATUS_ACCEPTED, common_pb2.REQUEST_STATUS_REJECTED):
            del seen["decision"], wanted["decision"]
        return "" if seen == wanted else f"{seen} != {wanted}"

    async def _settled(self) -> None:
        last = ""

        async def agree() -> bool | None:
            nonlocal last
            tracked, item = await self._shown()
            if item is not None and await self._lapsed(item):
                # The test stack's 20 s lease ran out on a slow machine: review's sweep put
                # the item back in the queue, as its history says.
                self.expected.state, self.expected.holder = QUEUED, ""
            last = self.mismatches(tracked, item)
            return None if last else True

        try:
            await eventually(agree, within=30, what="intake and review to agree")
        except TimeoutError as error:
            raise AssertionError(f"{self.number}: {last}") from error

    async def _lapsed(self, item: review_pb2.WorkItem) -> bool:
        if (self.expected.state, item.state, item.assignee_id) != (CLAIMED, QUEUED, ""):
            return False
        case = await self.clients.review.GetCase(
            review_pb2.GetCaseRequest(request_id=self.request_id),
            timeout=TIMEOUT,
            metadata=bearer(self.reviewer(REVIEWERS[self.expected.department][0])),
        )
        actions = [h.action for h in case.history if not h.action.startswith("notification_")]
        return actions[-1:] == ["claim_lapsed"]

    # --- the journey -----------------------------------------------------------------------

    @initialize()
    def submit(self) -> None:
        request = self.run(self._submit())
        assert request.status == common_pb2.REQUEST_STATUS_SUBMITTED
        self.request_id, self.number = request.request_id, request.request_number

    @invariant()
    def both_sides_agree(self) -> None:
        """And what the beneficiary may not do now is refused (the next check would see a
        change it made)."""
        if not self.number:
            return
        self.run(self._settled())
        for action in ("answer", "appeal", "cancel"):
            if not self.allowed(action):
                assert self.applicant(action) == grpc.StatusCode.FAILED_PRECONDITION, action

    @precondition(lambda self: self.expected.state == QUEUED)
    @rule(second=st.booleans())
    def claim(self, second: bool) -> None:
        e = self.expected
        who = REVIEWERS[e.department][int(second)]
        token = self.reviewer(who)
        code = self.answered(
            lambda: self.clients.review.ClaimRequest(
                review_pb2.ClaimRequestRequest(request_id=self.request_id),
                timeout=TIMEOUT,
                metadata=bearer(token),
            )
        )
        if who == e.appeal_of:
            assert code == grpc.StatusCode.FAILED_PRECONDITION, code
            return
        assert code == grpc.StatusCode.OK, code
        e.state, e.holder, e.status = CLAIMED, who, common_pb2.REQUEST_STATUS_UNDER_REVIEW
        if e.public != common_pb2.REQUEST_STATUS_UNDER_REVIEW:
            e.publish(common_pb2.REQUEST_STATUS_UNDER_REVIEW)

    @precondition(lambda self: self.expected.state == CLAIMED)
    @rule(accept=st.booleans())
    def decides(self, accept: bool) -> None:
        assert self.answered(self.decide(accept)) == grpc.StatusCode.OK
        self.decided(accept)

    @precondition(lambda self: self.expected.state == CLAIMED)
    @rule()
    def asks(self) -> None:
        e = self.expected
        ask = review_pb2.RequestInformationRequest(
            request_id=self.request_id,
            missing=[
                common_pb2.MissingItem(
                    kind="document", name="other", description="The payment receipt"
                )
            ],
            message="Which payment is it?",
        )
        token = self.reviewer()
        code = self.answered(
            lambda: self.clients.review.RequestInformation(
                ask, timeout=TIMEOUT, metadata=bearer(token)
            )
        )
        assert code == grpc.StatusCode.OK, code
        e.state, e.asked_by, e.holder = (
            review_pb2.WORK_ITEM_STATE_WAITING_ON_APPLICANT,
            e.holder,
            "",
        )
        e.status = common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO
        e.publish(e.status)

    @precondition(lambda self: self.expected.state == CLAIMED)
    @rule()
    def transfers(self) -> None:
        """Routing places it in the other department's queue."""
        e = self.expected
        other = next(d for d in REVIEWERS if d != e.department)
        move = review_pb2.TransferRequestRequest(
            request_id=self.request_id, department_code=other, reason="Misfiled"
        )
        token = self.reviewer()
        code = self.answered(
            lambda: self.clients.review.TransferRequest(
                move, timeout=TIMEOUT, metadata=bearer(token)
            )
        )
        assert code == grpc.StatusCode.OK, code
        e.state, e.holder, e.department = QUEUED, "", other
        e.status = common_pb2.REQUEST_STATUS_TRANSFERRED
        e.publish(e.status)

    @precondition(lambda self: self.expected.state == CLAIMED)
    @rule()
    def releases(self) -> None:
        self.release()

    def release(self) -> None:
        token = self.reviewer()
        code = self.answered(
            lambda: self.clients.review.ReleaseRequest(
                review_pb2.ReleaseRequestRequest(request_id=self.request_id),
                timeout=TIMEOUT,
                metadata=bearer(token),
            )
        )
        assert code == grpc.StatusCode.OK, code
        self.expected.state, self.expected.holder = QUEUED, ""

    @precondition(lambda self: self.allowed("answer"))
    @rule()
    def answers(self) -> None:
        """Back to the reviewer who asked, who holds no more than their capacity."""
        e = self.expected
        assert self.applicant("answer") == grpc.StatusCode.OK
        e.state, e.holder = CLAIMED, e.asked_by
        e.status = common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT
        e.publish(e.status)

    @precondition(lambda self: self.allowed("appeal"))
    @rule()
    def appeals(self) -> None:
        """Back in the queue, for a reviewer other than the one who rejected it."""
        e = self.expected
        assert self.applicant("appeal") == grpc.StatusCode.OK
        e.appealed, e.appeal_of, e.holder = True, e.holder, ""
        e.state, e.status = QUEUED, common_pb2.REQUEST_STATUS_UNDER_REVIEW

    # Cancelling a request no one has looked at yet is the e2e intake tests' case; here the
    # office has acted first.
    @precondition(lambda self: self.allowed("cancel") and bool(self.expected.published))
    @rule()
    def cancels(self) -> None:
        e = self.expected
        assert self.applicant("cancel") == grpc.StatusCode.OK
        e.state, e.holder = review_pb2.WORK_ITEM_STATE_WITHDRAWN, ""
        e.status = common_pb2.REQUEST_STATUS_CANCELLED

    @precondition(lambda self: self.expected.state == CLAIMED)
    @rule(accept=st.booleans())
    def cancels_while_deciding(self, accept: bool) -> None:
        """Both at once: whichever reaches review first stands on both sides."""
        e = self.expected
        cancel, decide = self.run(self._both(self.decide(accept)))
        if decide == grpc.StatusCode.OK:
            self.decided(accept)
            if cancel == grpc.StatusCode.OK:  # too late: review tells its outcome again
                e.published.append(e.public)
            else:
                assert cancel == grpc.StatusCode.FAILED_PRECONDITION, cancel
            return
        # Withdrawn before the reviewer's decision reached review.
        assert (cancel, decide) == (grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION)
        e.state, e.holder = review_pb2.WORK_ITEM_STATE_WITHDRAWN, ""
        e.status = common_pb2.REQUEST_STATUS_CANCELLED

    @rule()
    def strangers_look(self) -> None:
        """Another citizen and another department's reviewers find nothing, at any point of
        the journey (a rule always possible, also once the request is over)."""
        other = next(d for d in REVIEWERS if d != self.expected.department)
        token = self.reviewer(REVIEWERS[other][0])
        claimed = self.answered(
            lambda: self.clients.review.ClaimRequest(
                review_pb2.ClaimRequestRequest(request_id=self.request_id),
                timeout=TIMEOUT,
                metadata=bearer(token),
            )
        )
        tracked = self.answered(lambda: self.clients.track(self.stranger, self.number))
        assert (claimed, tracked) == (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.NOT_FOUND)

    async def _both(
        self, decide: Callable[[], Awaitable[object]]
    ) -> tuple[grpc.StatusCode, grpc.StatusCode]:
        cancelled = self.clients.intake.CancelRequest(
            intake_pb2.CancelRequestRequest(request_number=self.number, reason="Changed my mind"),
            timeout=TIMEOUT,
            metadata=bearer(self.citizen),
        )
        both = await asyncio.gather(status_of(lambda: cancelled), status_of(decide))
        return both[0], both[1]

    def teardown(self) -> None:
        if not self.number:
            return
        if self.expected.state == CLAIMED:
            self.release()
        changes = self.run(
            envelopes(
                self.clients.config.kafka_bootstrap,
                topics.REQUEST_STATUS_CHANGED,
                {self.request_id},
                at_least=len(self.expected.published),
            )
        )
        name = common_pb2.RequestStatus.Name
        published = [name(c.request_status_changed.status) for c in changes]
        assert published == [name(s) for s in self.expected.published]


async def test_intake_and_review_agree_after_any_journey(clients: Clients) -> None:
    loop = asyncio.get_running_loop()

    class Run(Journey):
        def __init__(self) -> None:
            super().__init__(clients, loop)

    await asyncio.to_thread(
        run_state_machine_as_test,
        Run,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=10,
            deadline=None,
            derandomize=not RANDOM,
            database=None,
            # Every example tried while shrinking waits out a timeout: a failure is reported
            # as found, at most ten steps long.
            phases=(Phase.explicit, Phase.reuse, Phase.generate),
        ),
    )
