"""Generated journeys across the real stack: a request's beneficiary (through intake) and its
department's reviewers (through review) act in any order the rules allow, or let a deadline
pass, and after every step the services must agree with a model of what each should show:
intake's status and decision for the beneficiary, review's state, holder and department for
the office, routing's department. Actions out of turn must be refused and change nothing, and
strangers find nothing; a cancellation racing any of the holder's actions, or reaching
review before it, must end the same on both sides. At the end, review's status changes on
Kafka must be exactly the ones the model expected, counted once the topic has gone quiet,
review's record must hold each follow-up, and the beneficiary's in-app inbox and texts what
notify tells of each status, follow-up and cancellation.

The service tiers test each service's rules alone; this tests the mapping between them (the
statuses review publishes against the tracking view intake keeps) over Kafka and routing.
Each step waits for both services to settle, so runs are few and short (derandomized:
TAWASUL_JOURNEY_EXAMPLES and TAWASUL_JOURNEY_RANDOM=1 try more, or new ones).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections import Counter
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
from tawasul.notify.v1 import notify_pb2
from tawasul.review.v1 import review_pb2
from tawasul.routing.v1 import routing_pb2
from tawasul_devstack.journey import Clients, eventually, new_citizen
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role
from tawasul_platform.testing import on_loop

from tests.e2e.direct import sql
from tests.e2e.topics import envelopes

T = TypeVar("T")
Status: TypeAlias = common_pb2.RequestStatus.ValueType
State: TypeAlias = review_pb2.WorkItemState.ValueType

EXAMPLES = int(os.environ.get("TAWASUL_JOURNEY_EXAMPLES", "12"))
RANDOM = os.environ.get("TAWASUL_JOURNEY_RANDOM") == "1"
TIMEOUT = DEFAULT_DEADLINE_SECONDS
ANSWER = "The payment reference is SADAD 5512 0098 7731"
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
# Notify's kind for each status review publishes.
TOLD = {
    common_pb2.REQUEST_STATUS_CLOSED: "closed",
    common_pb2.REQUEST_STATUS_UNDER_REVIEW: "under_review",
    common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO: "needs_more_info",
    common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT: "answer_received",
    common_pb2.REQUEST_STATUS_ACCEPTED: "accepted",
    common_pb2.REQUEST_STATUS_REJECTED: "rejected",
    common_pb2.REQUEST_STATUS_TRANSFERRED: "transferred",
}
# What the holder of a claim may do.
OFFICE = ("accept", "reject", "ask", "transfer", "release")
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
    # Routing's latest decision: the department a transfer named, even when the cancellation
    # that raced it left the item withdrawn where it was.
    routed_to: str = "reports"
    follow_ups: int = 0
    holder: str = ""
    # Who asked for information (the answer goes back to them) and who decided a rejection
    # under appeal (they may not take it again).
    asked_by: str = ""
    appeal_of: str = ""
    # Review's last published status, and every status change it should have published.
    public: Status = common_pb2.REQUEST_STATUS_UNSPECIFIED
    published: list[Status] = field(default_factory=list)
    # What the beneficiary's in-app inbox should hold, by kind.
    told: list[str] = field(default_factory=lambda: ["submitted"])
    # What notify tells or not by the order it reads two topics in: a change short of an
    # outcome that crossed the cancellation (told only when read before it), a cancellation
    # that crossed the decision (told only when read before review's answer to it).
    maybe: list[str] = field(default_factory=list)

    def publish(self, status: Status) -> None:
        self.public = status
        self.published.append(status)
        self.told.append(TOLD[status])

    def cancelled_too_late(self) -> None:
        """Review publishes its outcome again; the beneficiary is told the outcome stands."""
        self.published.append(self.public)
        self.told.append("cancel_too_late")


async def status_of(call: Callable[[], Awaitable[object]]) -> grpc.StatusCode:
    try:
        await call()
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def settles(disagreement: Callable[[], Awaitable[str]], what: str) -> None:
    """Polls until `disagreement` finds none; fails with the last one it found."""
    last = ""

    async def agreed() -> bool | None:
        nonlocal last
        last = await disagreement()
        return None if last else True

    try:
        await eventually(agreed, what=what)
    except TimeoutError as error:
        raise AssertionError(f"{what}: {last}") from error


class Journey(RuleBasedStateMachine):
    def __init__(self, stack: Stack, clients: Clients, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.stack, self.clients, self.loop = stack, clients, loop
        self.citizen = clients.token(new_citizen(), Role.CITIZEN)
        self.stranger = clients.token(new_citizen(), Role.CITIZEN)
        # The beneficiary's own number, as the SMS gateway records it.
        self.mobile = f"+96655{secrets.randbelow(10**7):07d}"
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
            mobile=f"0{self.mobile[4:]}",
        )

    def applicant(self, action: str, *, answer: str = ANSWER) -> grpc.StatusCode:
        intake, number = self.clients.intake, self.number
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "answer": lambda: intake.RespondToInfoRequest(
                intake_pb2.RespondToInfoRequestRequest(request_number=number, message=answer),
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
        if action == "follow_up":
            # A follow-up chases the office, which is not the one waiting for an answer.
            return e.status in OPEN and e.status != common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO
        return e.status in OPEN

    def office(self, action: str) -> Callable[[], Awaitable[object]]:
        """The holder's call for `action`, to start on the loop."""
        review, r, metadata = self.clients.review, self.request_id, bearer(self.reviewer())
        if action in ("accept", "reject"):
            _, message = DECIDED_WITH[action == "accept"]
            decision = review_pb2.DecideRequestRequest(
                request_id=r,
                decision=review_pb2.DECISION_ACCEPT
                if action == "accept"
                else review_pb2.DECISION_REJECT,
                message=message,
                reason_code="completed" if action == "accept" else "documents-unclear",
            )
            return lambda: review.DecideRequest(decision, timeout=TIMEOUT, metadata=metadata)
        if action == "ask":
            missing = common_pb2.MissingItem(
                kind="document", name="supporting_document", description="The payment receipt"
            )
            ask = review_pb2.RequestInformationRequest(
                request_id=r, missing=[missing], message="Which payment is it?"
            )
            return lambda: review.RequestInformation(ask, timeout=TIMEOUT, metadata=metadata)
        if action == "transfer":
            move = review_pb2.TransferRequestRequest(
                request_id=r, department_code=self.elsewhere(), reason="Misfiled"
            )
            return lambda: review.TransferRequest(move, timeout=TIMEOUT, metadata=metadata)
        release = review_pb2.ReleaseRequestRequest(request_id=r)
        return lambda: review.ReleaseRequest(release, timeout=TIMEOUT, metadata=metadata)

    def office_did(self, action: str) -> None:
        """What the holder's `action` leads to, once routing and intake have seen it."""
        e = self.expected
        if action in ("accept", "reject"):
            e.status, e.decision_message = DECIDED_WITH[action == "accept"]
            e.state = review_pb2.WORK_ITEM_STATE_DECIDED
            e.publish(e.status)
        elif action == "ask":
            e.state, e.asked_by = review_pb2.WORK_ITEM_STATE_WAITING_ON_APPLICANT, e.holder
            e.status = common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO
            e.publish(e.status)
        elif action == "transfer":
            e.state, e.department = QUEUED, self.elsewhere()
            e.routed_to = e.department
            e.status = common_pb2.REQUEST_STATUS_TRANSFERRED
            e.publish(e.status)
        else:
            e.state = QUEUED
        if e.state != review_pb2.WORK_ITEM_STATE_DECIDED:  # a decision keeps its decider
            e.holder = ""

    def elsewhere(self) -> str:
        return next(d for d in REVIEWERS if d != self.expected.department)

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

    async def _routed_to(self) -> str:
        try:
            answer = await self.clients.routing.GetDecision(
                routing_pb2.GetDecisionRequest(request_id=self.request_id),
                timeout=TIMEOUT,
                metadata=bearer(self.reviewer(REVIEWERS[self.expected.routed_to][0])),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:  # not routed yet
                raise
            return ""
        return answer.decision.department_code

    def mismatches(
        self, tracked: intake_pb2.Request, item: review_pb2.WorkItem | None, routed_to: str
    ) -> str:
        e = self.expected
        seen = {
            "routed to": routed_to,
            "status": common_pb2.RequestStatus.Name(tracked.status),
            "decision": tracked.decision_message,
            "state": review_pb2.WorkItemState.Name(item.state) if item else None,
            "holder": item.assignee_id if item else None,
            "department": item.department_code if item else None,
        }
        wanted = {
            "routed to": e.routed_to,
            "status": common_pb2.RequestStatus.Name(e.status),
            "decision": e.decision_message,
            "state": review_pb2.WorkItemState.Name(e.state),
            "holder": e.holder,
            "department": e.department,
        }
        if e.status not in (common_pb2.REQUEST_STATUS_ACCEPTED, common_pb2.REQUEST_STATUS_REJECTED):
            del seen["decision"], wanted["decision"]
        return "" if seen == wanted else f"{seen} != {wanted}"

    async def _disagreement(self) -> str:
        tracked, item = await self._shown()
        if item is not None and await self._lapsed(item):
            # The test stack's 20 s lease ran out on a slow machine: review's sweep put the
            # item back in the queue, as its history says.
            self.expected.state, self.expected.holder = QUEUED, ""
        return self.mismatches(tracked, item, await self._routed_to())

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
        change it made), and another citizen and another department's reviewers find
        nothing."""
        if not self.number:
            return
        self.run(settles(self._disagreement, f"{self.number} in intake and review"))
        for action in ("answer", "appeal", "cancel"):
            # Not the answer the request may have taken already: that one sent again is its
            # retry, answered with the request as it is.
            if not self.allowed(action):
                refused = self.applicant(action, answer="Another answer")
                assert refused == grpc.StatusCode.FAILED_PRECONDITION, action
        assert self.run(self._strangers()) == (
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.NOT_FOUND,
        )

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
    @rule(action=st.sampled_from(OFFICE))
    def holder_acts(self, action: str) -> None:
        """A transfer is routed into the other department's queue."""
        code = self.answered(self.office(action))
        assert code == grpc.StatusCode.OK, (action, code)
        self.office_did(action)

    def release(self) -> None:
        assert self.answered(self.office("release")) == grpc.StatusCode.OK
        self.office_did("release")

    # The second raises the priority; more would only crowd out the rest of the journey.
    @precondition(lambda self: self.allowed("follow_up") and self.expected.follow_ups < 2)
    @rule()
    def follows_up(self) -> None:
        """Days pass (a follow-up waits three working days, the next one more): the
        follow-up reaches review's record where the request is, routing's rules place it
        again there (two raise its priority), and the beneficiary is told."""
        self.run(
            sql(
                self.stack,
                "intake",
                "UPDATE requests SET submitted_at = submitted_at - interval '10 days',"
                " last_follow_up_at = last_follow_up_at - interval '10 days' WHERE id = :id",
                id=uuid.UUID(self.request_id),
            )
        )
        follow = intake_pb2.FollowUpRequest(request_number=self.number, message="Any news?")
        code = self.answered(
            lambda: self.clients.intake.FollowUp(
                follow, timeout=TIMEOUT, metadata=bearer(self.citizen)
            )
        )
        assert code == grpc.StatusCode.OK, code
        self.expected.follow_ups += 1
        self.expected.told.append("followed_up")

    @precondition(lambda self: self.allowed("answer"))
    @rule()
    def deadline_passes(self) -> None:
        """No answer by the deadline (and the two minutes one may take to arrive): review's
        sweep closes the request, and the beneficiary is told."""
        self.run(
            sql(
                self.stack,
                "review",
                "UPDATE work_items SET respond_by = now() - interval '3 minutes'"
                " WHERE request_id = :id",
                id=uuid.UUID(self.request_id),
            )
        )
        e = self.expected
        e.state, e.status = review_pb2.WORK_ITEM_STATE_CLOSED, common_pb2.REQUEST_STATUS_CLOSED
        e.publish(e.status)

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
        """Back in the queue, for a reviewer other than the one who rejected it; the
        beneficiary is told it was received."""
        e = self.expected
        assert self.applicant("appeal") == grpc.StatusCode.OK
        e.appealed, e.appeal_of, e.holder = True, e.holder, ""
        e.state, e.status = QUEUED, common_pb2.REQUEST_STATUS_UNDER_REVIEW
        e.told.append("appeal_received")

    # Cancelling a request no one has looked at yet is the e2e intake tests' case, and one
    # being worked on is the race's below; here it waits on the beneficiary, or in the queue
    # after a transfer, a release or an appeal.
    @precondition(
        lambda self: (
            self.allowed("cancel")
            and bool(self.expected.published)
            and self.expected.state != CLAIMED
        )
    )
    @rule()
    def cancels(self) -> None:
        e = self.expected
        assert self.applicant("cancel") == grpc.StatusCode.OK
        e.state, e.holder = review_pb2.WORK_ITEM_STATE_WITHDRAWN, ""
        e.status = common_pb2.REQUEST_STATUS_CANCELLED
        e.told.append("cancelled")

    @precondition(lambda self: self.expected.state == CLAIMED)
    @rule(action=st.sampled_from(OFFICE), together=st.booleans())
    def cancels_while_the_holder_acts(self, action: str, together: bool) -> None:
        """Both at once, or the holder acts once review has withdrawn the request: whichever
        reaches review first stands, on both sides."""
        e = self.expected
        cancel, acted = self.run(self._both(self.office(action), together))
        if cancel == grpc.StatusCode.OK:
            e.told.append("cancelled")
        else:  # the decision reached intake first: nothing to cancel
            assert (action, cancel) in {
                ("accept", grpc.StatusCode.FAILED_PRECONDITION),
                ("reject", grpc.StatusCode.FAILED_PRECONDITION),
            }, (action, cancel)
        if acted == grpc.StatusCode.OK:
            told = len(e.told)
            self.office_did(action)
            if e.state == review_pb2.WORK_ITEM_STATE_DECIDED:
                if cancel == grpc.StatusCode.OK:
                    e.maybe.append(e.told.pop(told - 1))
                    e.cancelled_too_late()
                return
            e.maybe.extend(e.told[told:])
            del e.told[told:]
        else:  # withdrawn before the holder's call reached review
            assert acted == grpc.StatusCode.FAILED_PRECONDITION, (action, acted)
        e.state, e.holder = review_pb2.WORK_ITEM_STATE_WITHDRAWN, ""
        e.status = common_pb2.REQUEST_STATUS_CANCELLED
        if action == "transfer" and acted == grpc.StatusCode.OK:
            # Withdrawn where the cancellation found it: before routing's placement reached
            # review, or after, in the new department; either stays.
            e.department = self.run(eventually(self._withdrawn_in, what="the withdrawal"))

    async def _withdrawn_in(self) -> str | None:
        for department, (reviewer, _) in REVIEWERS.items():
            try:
                answer = await self.clients.review.GetWorkItem(
                    review_pb2.GetWorkItemRequest(request_id=self.request_id),
                    timeout=TIMEOUT,
                    metadata=bearer(self.reviewer(reviewer)),
                )
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                continue
            if answer.item.state == review_pb2.WORK_ITEM_STATE_WITHDRAWN:
                return department
        return None

    @precondition(
        lambda self: (
            self.expected.state
            in (
                review_pb2.WORK_ITEM_STATE_DECIDED,
                review_pb2.WORK_ITEM_STATE_WITHDRAWN,
                review_pb2.WORK_ITEM_STATE_CLOSED,
            )
            and not self.allowed("appeal")
        )
    )
    @rule()
    def over(self) -> None:
        """Nothing more can happen to the request; the checks run once more."""

    async def _strangers(self) -> tuple[grpc.StatusCode, grpc.StatusCode]:
        claimed = await status_of(
            lambda: self.clients.review.ClaimRequest(
                review_pb2.ClaimRequestRequest(request_id=self.request_id),
                timeout=TIMEOUT,
                metadata=bearer(self.reviewer(REVIEWERS[self.elsewhere()][0])),
            )
        )
        return claimed, await status_of(lambda: self.clients.track(self.stranger, self.number))

    async def _both(
        self, office: Callable[[], Awaitable[object]], together: bool
    ) -> tuple[grpc.StatusCode, grpc.StatusCode]:
        cancelled = self.clients.intake.CancelRequest(
            intake_pb2.CancelRequestRequest(request_number=self.number, reason="Changed my mind"),
            timeout=TIMEOUT,
            metadata=bearer(self.citizen),
        )
        if together:
            both = await asyncio.gather(status_of(lambda: cancelled), status_of(office))
            return both[0], both[1]
        cancel = await status_of(lambda: cancelled)
        await eventually(self._withdrawn_in, what=f"{self.number} withdrawn in review")
        return cancel, await status_of(office)

    def teardown(self) -> None:
        if not self.number:
            return
        if self.expected.state == CLAIMED:
            self.release()
        told = sorted(self.expected.told)
        self.run(settles(lambda: self._untold(told), f"{self.number} in the inbox"))
        self.run(settles(self._unsent, f"{self.number}'s texts"))
        self.run(settles(self._unrecorded, f"{self.number}'s follow-ups in review"))
        changes = self.run(
            envelopes(
                self.clients.config.kafka_bootstrap,
                topics.REQUEST_STATUS_CHANGED,
                {self.request_id},
                at_least=len(self.expected.published),
                quiet=self.stack,
            )
        )
        name = common_pb2.RequestStatus.Name
        published = [name(c.request_status_changed.status) for c in changes]
        assert published == [name(s) for s in self.expected.published]
        # Read again once the topic has gone quiet, so that a late duplicate shows.
        assert self.run(self._untold(told)) == ""
        assert self.run(self._unsent()) == ""

    async def _unsent(self) -> str:
        """Every notice the inbox holds also goes by SMS, once."""
        texts = await self.clients.sms_received()
        sent = sum(m["to"] == self.mobile and self.number in m["text"] for m in texts)
        wanted = len(self.expected.told)
        at_most = wanted + len(self.expected.maybe)
        return "" if wanted <= sent <= at_most else f"{sent} texts, not {wanted}-{at_most}"

    async def _unrecorded(self) -> str:
        case = await self.clients.review.GetCase(
            review_pb2.GetCaseRequest(request_id=self.request_id),
            timeout=TIMEOUT,
            metadata=bearer(self.reviewer(REVIEWERS[self.expected.department][0])),
        )
        recorded = sum(h.action == "followed_up" for h in case.history)
        wanted = self.expected.follow_ups
        return "" if recorded == wanted else f"{recorded} != {wanted}"

    async def _untold(self, kinds: list[str]) -> str:
        inbox = await self.clients.notify.ListInbox(
            notify_pb2.ListInboxRequest(limit=200),
            timeout=TIMEOUT,
            metadata=bearer(self.citizen),
        )
        seen = Counter(m.kind for m in inbox.messages)
        wanted, maybe = Counter(kinds), Counter(self.expected.maybe)
        if all(wanted[k] <= seen[k] <= wanted[k] + maybe[k] for k in seen | wanted):
            return ""
        return (
            f"{sorted(seen.elements())} != {sorted(kinds)} (and maybe {sorted(maybe.elements())})"
        )


async def test_intake_and_review_agree_after_any_journey(stack: Stack, clients: Clients) -> None:
    loop = asyncio.get_running_loop()

    class Run(Journey):
        def __init__(self) -> None:
            super().__init__(stack, clients, loop)

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
