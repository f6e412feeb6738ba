"""Review's real gRPC servers, built by its composition root, in-process on a real PostgreSQL.

Kafka is left out: events are delivered to the subscriptions review's bootstrap builds, as
its consumer groups would (work items of a test's own SLA are queued through the enqueue use
case the routed subscriber calls), and what review publishes is read back from its outbox
table. Docs stands outside this tier (a stand-in); the clock is the test's, passed to the
servers, the subscribers and the sweeps.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, TypeVar, cast

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncEngine
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul.review.v1 import review_pb2, review_pb2_grpc
from tawasul_calendar import RIYADH, CalendarConfig, Closure, Sla
from tawasul_devstack.journey import eventually
from tawasul_platform.errors import (
    Conflict,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from tawasul_platform.events import timestamp
from tawasul_platform.grpc import bearer, field_violations, status_details
from tawasul_platform.hygiene import CONTROL, TOO_LONG
from tawasul_platform.identity import Principal, Role
from tawasul_platform.migrations import upgrade
from tawasul_platform.sql import Session
from tawasul_platform.testing import RecordedStatements, async_engine, emptied, on_loop
from tawasul_platform.topics import (
    APPLICANT_ACTIONS,
    NOTIFICATION_EVENTS,
    REQUEST_ROUTED,
    REQUEST_STATUS_CHANGED,
    SLA_ALERTS,
    STAFF_REVIEWERS,
)
from tawasul_platform.uow import Messaging, shared_transaction
from tawasul_review import bootstrap
from tawasul_review.adapters import tables
from tawasul_review.adapters.repository import ReviewUnitOfWork, SqlQualityRepository
from tawasul_review.app import handlers
from tawasul_review.app.ports import Attachment
from tawasul_review.domain.assignment import Mode
from tawasul_review.domain.model import ANSWER_IN_FLIGHT, Contact, WorkItem
from tawasul_review.domain.reviewers import Reviewer
from tawasul_review.entrypoints.events import on_applicant_actions

from .served import IDENTITY, LEASE, MIGRATIONS, START, Served, served, token

ADMIN_ID = "A001"
T = TypeVar("T")


def riyadh(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant of January 2026 in Riyadh (the 4th is a Sunday)."""
    return datetime(2026, 1, day, hour, minute, tzinfo=RIYADH)


def end_of(day: int) -> datetime:
    """The last instant of a day of January 2026 in Riyadh: where a deadline falls."""
    return datetime.combine(riyadh(day, 0).date(), time.max, tzinfo=RIYADH)


ADMIN = token(ADMIN_ID)
ALI = token("E100", "passports")
SARA = token("E200", "passports", "visas")
VISAS_ONLY = token("E300", "visas")
BOSS = token("S001", "passports")
CITIZEN = IDENTITY.token_for(Principal("1000000008", Role.CITIZEN))
MISSING_PHOTO = common_pb2.MissingItem(
    kind="document", name="personal_photo", description="A recent photo on a white background"
)
MISSING_DATE = common_pb2.MissingItem(
    kind="field", name="loss_date", description="The date the passport was lost"
)


class Docs:
    """Docs stands outside this tier: a link per document, and the tokens it was asked with."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        # What docs answers instead of the links, as the adapter translates it.
        self.error: DomainError | None = None
        # Documents docs will not give (the adapter lists them without a link).
        self.not_given: set[str] = set()

    async def download_links(self, document_ids: tuple[str, ...], token: str) -> list[Attachment]:
        self.tokens.append(token)
        if self.error is not None:
            raise self.error
        expires = START + timedelta(minutes=5)
        return [
            Attachment.not_given(d)
            if d in self.not_given
            else Attachment(
                d, f"{d}.pdf", "application/pdf", 1000, f"https://s3/{d}", expires, kind=f"k{d}"
            )
            for d in document_ids
        ]


class Review:
    def __init__(self, server: Served, reader: AsyncEngine, docs: Docs) -> None:
        """`reader`: an engine of the test's own, apart from the server's pool."""
        self.database = server.database
        self.rules = server.rules
        self.clock = server.clock
        self.subscriptions = bootstrap.subscriptions(self.uow, self.rules, now=self.clock)
        self.receipts = bootstrap.receipts(self.uow)
        self.stub = review_pb2_grpc.ReviewServiceStub(server.channel)
        self.admin = review_pb2_grpc.ReviewAdminServiceStub(server.channel)
        self.engine = reader
        self.docs = docs
        self.numbers = 0

    def uow(self) -> ReviewUnitOfWork:
        return ReviewUnitOfWork(self.database)

    def routed(
        self,
        department: str = "passports",
        *,
        sla: Sla | None = None,
        locale: str = "ar",
        request_id: uuid.UUID | None = None,
        priority: int = 0,
        sub_service: str = "",
    ) -> WorkItem:
        """The work item review's routed-event subscriber makes of a routed request (of a
        sub-service not in the catalog unless named)."""
        self.numbers += 1
        return WorkItem.enqueue(
            request_id=request_id or uuid.uuid4(),
            request_number=f"TW{self.numbers:09d}",
            department=department,
            queue=f"{department}.default",
            sub_service_code=sub_service or f"{department}.general",
            description="The photo does not appear when renewing passport",
            applicant_id="1000000008",
            document_ids=("d1", "d2"),
            contact=Contact("+966551234567", "", locale),
            now=self.clock.now,
            sla=sla or Sla.days(5),
            priority=priority,
        )

    async def enqueue(
        self,
        department: str = "passports",
        *,
        sla: Sla | None = None,
        locale: str = "ar",
        sub_service: str = "",
    ) -> str:
        """A routed request joins its queue, as review's routed-event subscriber does it."""
        item = self.routed(department, sla=sla, locale=locale, sub_service=sub_service)
        await handlers.enqueue(
            uow=self.uow(),
            routed=[(str(uuid.uuid4()), item)],
            policy=self.rules,
            now=self.clock.now,
        )
        return str(item.request_id)

    async def sweep(self) -> int:
        return await handlers.sweep(uow=self.uow(), policy=self.rules, now=self.clock.now)

    async def act(self, at: datetime | None = None, event_id: str = "", **action: Any) -> None:
        """The beneficiary's action (`request_cancelled=…`, say) taken by intake at `at` (now
        by default), delivered to review's group now."""
        ((field, payload),) = action.items()
        event = events_pb2.Envelope(
            event_id=event_id or str(uuid.uuid4()),
            event_type="tawasul.requests.applicant-action",
            request_id=payload.request_id,
            occurred_at=timestamp(at or self.clock.now),
        )
        getattr(event, field).CopyFrom(payload)
        await self.subscriptions.deliver(APPLICANT_ACTIONS, event)

    async def answered(
        self,
        request_id: str,
        event_id: str = "",
        answered_at: datetime | None = None,
        document_ids: tuple[str, ...] = (),
        fields: dict[str, str] | None = None,
    ) -> None:
        """The beneficiary's answer applied now, given then or at `answered_at`."""
        answer = events_pb2.RequestAnswered(
            request_id=request_id,
            message="I added the photo",
            document_ids=document_ids,
            fields=fields or {},
        )
        await self.act(answered_at, event_id, request_answered=answer)

    async def cancelled(self, request_id: str, reason: str, at: datetime | None = None) -> None:
        cancellation = events_pb2.RequestCancelled(request_id=request_id, reason=reason)
        await self.act(at, request_cancelled=cancellation)

    async def prioritised(self, request_id: str, priority: int) -> None:
        """Routing decided again where the request is, at a higher priority (its rules on the
        beneficiary's follow-ups)."""
        item = self.routed(request_id=uuid.UUID(request_id), priority=priority)
        await handlers.enqueue(
            uow=self.uow(),
            routed=[(str(uuid.uuid4()), item)],
            policy=self.rules,
            now=self.clock.now,
        )

    async def outbox(self, topic: str) -> list[events_pb2.Envelope]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(tables.outbox)
                    .where(tables.outbox.c.topic == topic)
                    .order_by(tables.outbox.c.id)
                )
            ).all()
        return [events_pb2.Envelope.FromString(row.payload) for row in rows]

    async def statuses(self, request_id: str) -> list[events_pb2.RequestStatusChanged]:
        return [
            e.request_status_changed
            for e in await self.outbox(REQUEST_STATUS_CHANGED)
            if e.request_id == request_id
        ]

    async def claim_next(self, who: str, department: str = "") -> str:
        """The claimed item's id, or "" when nothing waits."""
        answer = await self.stub.ClaimNext(
            review_pb2.ClaimNextRequest(department_code=department),
            timeout=10,
            metadata=bearer(who),
        )
        return answer.item.request_id if answer.HasField("item") else ""

    async def case(self, request_id: str, who: str = ALI) -> review_pb2.GetCaseResponse:
        return await self.stub.GetCase(
            review_pb2.GetCaseRequest(request_id=request_id), timeout=5, metadata=bearer(who)
        )

    async def queue(
        self,
        who: str = ALI,
        department: str = "passports",
        *,
        assignee: str = "",
        state: review_pb2.WorkItemState.ValueType = review_pb2.WORK_ITEM_STATE_UNSPECIFIED,
    ) -> list[review_pb2.WorkItem]:
        """Every page of the queue, followed to the end."""
        items: list[review_pb2.WorkItem] = []
        page_token = ""
        while True:
            page = await self.stub.ListQueue(
                review_pb2.ListQueueRequest(
                    department_code=department,
                    page_token=page_token,
                    assignee_id=assignee,
                    state=state,
                ),
                timeout=5,
                metadata=bearer(who),
            )
            items += page.items
            page_token = page.next_page_token
            if not page_token:
                return items

    async def put_reviewer(
        self,
        reviewer_id: str,
        *,
        departments: tuple[str, ...] = ("passports",),
        capacity: int = 20,
        supervises: tuple[str, ...] = (),
        caller: str = ADMIN,
    ) -> review_pb2.Reviewer:
        answer = await self.admin.PutReviewer(
            review_pb2.PutReviewerRequest(
                reviewer=review_pb2.Reviewer(
                    reviewer_id=reviewer_id,
                    departments=departments,
                    languages=["ar", "en"],
                    capacity=capacity,
                    available=True,
                    supervises=supervises,
                )
            ),
            timeout=5,
            metadata=bearer(caller),
        )
        return answer.reviewer


@pytest.fixture
async def review(database_url: str) -> AsyncIterator[Review]:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    docs = Docs()
    async with served(
        database_url, documents=docs, pool_size=20, admins=f" {ADMIN_ID} , "
    ) as server:
        reader = async_engine(database_url, pool_size=2)
        yield Review(server, reader, docs)
        await reader.dispose()


def routed_event(
    event_id: str, item: WorkItem, sequence: int = 0, transfer_sequence: int = 0
) -> events_pb2.Envelope:
    """Routing's event placing `item` (as Review.routed makes it) in its department's queue;
    `sequence`: routing's count of its decisions on the request (0: from before it counted);
    `transfer_sequence`: the status change of the latest transfer the decision applied."""
    request_id = str(item.request_id)
    return events_pb2.Envelope(
        event_id=event_id,
        event_type="tawasul.requests.routed",
        request_id=request_id,
        request_routed=events_pb2.RequestRouted(
            request_id=request_id,
            request_number=item.request_number,
            department_code=item.department,
            queue=item.queue,
            sub_service_code=item.sub_service_code,
            description=item.description,
            applicant_id=item.applicant_id,
            document_ids=item.document_ids,
            contact=common_pb2.Contact(mobile=item.contact.mobile, locale=item.contact.locale),
            priority=item.priority,
            submitted_at=timestamp(item.clock.started_at),
            sequence=sequence,
            transfer_sequence=transfer_sequence,
        ),
    )


def at(stamp: Timestamp) -> datetime:
    """A protobuf Timestamp as an aware datetime."""
    return stamp.ToDatetime(tzinfo=UTC)


async def refused(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


# --- claim-next ---------------------------------------------------------------------------


async def test_claim_next_takes_priority_first_then_the_earliest_due(review: Review) -> None:
    slow = await review.enqueue(sla=Sla.days(7))
    review.clock.now += timedelta(minutes=1)
    quick = await review.enqueue(sla=Sla.days(2))
    review.clock.now += timedelta(minutes=1)
    chased = await review.enqueue(sla=Sla.days(7))
    await review.prioritised(chased, 15)
    # The list reads by priority, then oldest first; claim-next by priority, then due date.
    assert [i.request_id for i in await review.queue()] == [chased, slow, quick]
    claimed = [await review.claim_next(ALI) for _ in range(4)]
    assert claimed == [chased, quick, slow, ""]
    listed = await review.queue()
    assert {(i.state, i.assignee_id) for i in listed} == {
        (review_pb2.WORK_ITEM_STATE_CLAIMED, "E100")
    }
    assert {at(i.claimed_until) for i in listed} == {review.clock.now + LEASE}
    assert [s.status for s in await review.statuses(quick)] == [
        common_pb2.REQUEST_STATUS_UNDER_REVIEW
    ]


async def test_fifty_reviewers_claim_a_thousand_items_each_exactly_once(review: Review) -> None:
    reviewers = [f"R{n:03d}" for n in range(50)]
    for reviewer_id in reviewers:
        stored = await review.put_reviewer(reviewer_id, capacity=500)
        assert stored.capacity == 500
    made: list[str] = []
    for _ in range(20):
        made += await asyncio.gather(*(review.enqueue() for _ in range(50)))
    assert len(set(made)) == 1000

    async def work(reviewer_id: str) -> list[tuple[str, str]]:
        who = token(reviewer_id, "passports")
        taken: list[tuple[str, str]] = []
        while request_id := await review.claim_next(who):
            taken.append((request_id, reviewer_id))
        return taken

    claims = [c for taken in await asyncio.gather(*map(work, reviewers)) for c in taken]
    per_item = Counter(request_id for request_id, _ in claims)
    assert set(per_item) == set(made)  # none skipped
    assert [n for n in per_item.values() if n != 1] == []  # none twice
    assert sum(per_item.values()) == 1000
    # What each reviewer was told they hold is what the database holds.
    async with review.engine.connect() as conn:
        rows = (
            await conn.execute(select(tables.work_items.c.request_id, tables.work_items.c.assignee))
        ).all()
    assert {(str(r.request_id), r.assignee) for r in rows} == set(claims)
    under_review = await review.outbox(REQUEST_STATUS_CHANGED)
    assert Counter(e.request_id for e in under_review) == Counter(made)


async def test_a_lapsed_claim_is_back_in_the_queue_after_a_sweep(review: Review) -> None:
    item = await review.enqueue()
    assert await review.claim_next(ALI) == item
    review.clock.now = START + LEASE - timedelta(seconds=1)
    await review.sweep()
    assert await review.claim_next(SARA) == ""
    review.clock.now = START + LEASE
    await review.sweep()
    (listed,) = await review.queue()
    assert (listed.state, listed.assignee_id, listed.HasField("claimed_until")) == (
        review_pb2.WORK_ITEM_STATE_QUEUED,
        "",
        False,
    )
    assert await review.claim_next(SARA) == item
    history = (await review.case(item)).history
    assert [(h.actor, h.action, h.text) for h in history] == [
        ("routing", "queued", "passports.default"),
        ("E100", "claimed", ""),
        ("system", "claim_lapsed", "E100"),
        ("E200", "claimed", ""),
    ]
    denied = await refused(
        review.stub.ReleaseRequest(
            review_pb2.ReleaseRequestRequest(request_id=item), timeout=5, metadata=bearer(ALI)
        )
    )
    assert denied.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_an_action_of_the_holder_renews_the_lease(review: Review) -> None:
    item = await review.enqueue()
    await review.claim_next(ALI)
    review.clock.now = START + timedelta(minutes=20)
    noted = await review.stub.AddNote(
        review_pb2.AddNoteRequest(request_id=item, text="Checking with the registry"),
        timeout=5,
        metadata=bearer(ALI),
    )
    assert at(noted.item.claimed_until) == review.clock.now + LEASE
    review.clock.now = START + LEASE + timedelta(minutes=1)
    await review.sweep()
    (listed,) = await review.queue()
    assert (listed.state, listed.assignee_id) == (review_pb2.WORK_ITEM_STATE_CLAIMED, "E100")


# --- information requests -----------------------------------------------------------------


async def request_information(
    review: Review, item: str, days: int = 3, who: str = ALI
) -> review_pb2.RequestInformationResponse:
    return await review.stub.RequestInformation(
        review_pb2.RequestInformationRequest(
            request_id=item,
            missing=[MISSING_PHOTO, MISSING_DATE],
            message="Please add what is missing",
            respond_within_working_days=days,
        ),
        timeout=5,
        metadata=bearer(who),
    )


async def test_what_is_asked_for_is_a_document_or_a_field_of_the_sub_service(
    review: Review,
) -> None:
    """The beneficiary's page offers each document asked for as its upload and each field as
    its input: a name the sub-service does not have could be answered by neither."""
    item = await review.enqueue(sub_service="passports.lost-passport-report")
    await review.claim_next(ALI)

    async def ask(*missing: common_pb2.MissingItem) -> review_pb2.RequestInformationResponse:
        return await review.stub.RequestInformation(
            review_pb2.RequestInformationRequest(
                request_id=item, missing=missing, message="Please add what is missing"
            ),
            timeout=5,
            metadata=bearer(ALI),
        )

    unknown = await refused(
        ask(
            MISSING_PHOTO,
            MISSING_DATE,
            common_pb2.MissingItem(kind="field", name="eye_colour", description="Eye colour"),
            common_pb2.MissingItem(kind="other", name="visit", description="Visit the office"),
        )
    )
    assert unknown.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(unknown) == {
        "missing[0].name": "a document kind of passports.lost-passport-report:"
        " police_report, supporting_document",
        "missing[2].name": "a field of passports.lost-passport-report: loss_city, loss_date,"
        " loss_place, national_id, passport_number",
    }
    police = common_pb2.MissingItem(
        kind="document", name="police_report", description="The police report of the loss"
    )
    asked = await ask(police, MISSING_DATE)
    assert [m.name for m in asked.item.missing] == ["police_report", "loss_date"]


async def test_an_answered_information_request_returns_to_the_same_reviewer(
    review: Review,
) -> None:
    item = await review.enqueue(sla=Sla.days(2))
    await review.claim_next(ALI)
    review.clock.now = riyadh(5, 10)  # Monday 10:00, half the SLA used
    asked = await request_information(review, item)
    assert (asked.item.state, asked.item.assignee_id) == (
        review_pb2.WORK_ITEM_STATE_WAITING_ON_APPLICANT,
        "",
    )
    assert at(asked.item.respond_by) == end_of(8)  # three working days: Thursday, to its end
    assert at(asked.item.due_at) == riyadh(6, 10)
    needs = (await review.statuses(item))[-1]
    assert (needs.status, needs.actor_id, needs.message) == (
        common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
        "E100",
        "Please add what is missing",
    )
    assert list(needs.missing) == [MISSING_PHOTO, MISSING_DATE]
    assert at(needs.respond_by) == end_of(8)
    assert needs.internal.note == ""
    # While it waits it is nobody's and in no queue, and no alert falls due.
    assert await review.queue() == []
    assert await review.claim_next(SARA) == ""
    review.clock.now = riyadh(7, 9)  # Wednesday 09:00: 13 working hours waited
    assert await review.sweep() == 0
    await review.answered(item)
    (back,) = await review.queue()
    assert (back.state, back.assignee_id) == (review_pb2.WORK_ITEM_STATE_CLAIMED, "E100")
    assert at(back.claimed_until) == review.clock.now + LEASE
    assert at(back.due_at) == riyadh(8, 9)  # Tuesday 10:00 moved out by 13 working hours
    assert list(back.missing) == []
    returned = (await review.statuses(item))[-1]
    assert (returned.status, returned.actor_id) == (
        common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT,
        "applicant",
    )
    assert at(returned.due_at) == riyadh(8, 9)
    decided = await review.stub.DecideRequest(
        review_pb2.DecideRequestRequest(
            request_id=item, decision=review_pb2.DECISION_ACCEPT, reason_code="completed"
        ),
        timeout=5,
        metadata=bearer(ALI),
    )
    assert (decided.item.state, decided.item.decision, decided.item.reason_code) == (
        review_pb2.WORK_ITEM_STATE_DECIDED,
        review_pb2.DECISION_ACCEPT,
        "completed",
    )
    actions = [h.action for h in (await review.case(item)).history]
    assert actions == [
        "queued",
        "claimed",
        "information_requested",
        "answered",
        "returned_to_holder",
        "accept",
        "accept_reason",
    ]
    # Each change, each in a transaction of its own, counts on from the one before it.
    assert [(s.status, s.sequence) for s in await review.statuses(item)] == [
        (common_pb2.REQUEST_STATUS_UNDER_REVIEW, 1),
        (common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO, 2),
        (common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT, 3),
        (common_pb2.REQUEST_STATUS_ACCEPTED, 4),
    ]


async def test_the_documents_of_an_answer_are_in_the_case(review: Review) -> None:
    item = await review.enqueue()
    await review.claim_next(ALI)
    await request_information(review, item)
    await review.answered(item, document_ids=("d3",))
    case = await review.case(item)
    assert [(a.document_id, a.document_kind) for a in case.attachments] == [
        ("d1", "kd1"),
        ("d2", "kd2"),
        ("d3", "kd3"),
    ]
    assert list(case.item.document_ids) == ["d1", "d2", "d3"]


async def test_the_case_is_read_without_its_links_while_docs_is_down(review: Review) -> None:
    """A reviewer reads the request, its fields and history while docs is unavailable: only
    the attachments' links wait, and the answer says so."""
    item = await review.enqueue()
    review.docs.error = Unavailable("docs is unavailable (UNAVAILABLE)")
    case = await review.case(item)
    assert (list(case.attachments), case.documents_unavailable) == ([], True)
    assert list(case.item.document_ids) == ["d1", "d2"]
    assert [h.action for h in case.history] == ["queued"]
    shown = await review.stub.GetWorkItem(
        review_pb2.GetWorkItemRequest(request_id=item), timeout=5, metadata=bearer(ALI)
    )
    assert (list(shown.attachments), shown.documents_unavailable) == ([], True)
    assert shown.item.request_id == item
    review.docs.error = None
    case = await review.case(item)
    assert (len(case.attachments), case.documents_unavailable) == (2, False)


async def test_a_document_docs_will_not_give_is_listed_without_its_link(review: Review) -> None:
    """Docs answered NOT_FOUND for one attachment for good: the reviewer reads the case, the
    other attachment's link, and which one has none."""
    item = await review.enqueue()
    review.docs.not_given = {"d1"}
    case = await review.case(item)
    assert [(a.document_id, a.unreadable, a.download_url) for a in case.attachments] == [
        ("d1", True, ""),
        ("d2", False, "https://s3/d2"),
    ]
    assert not case.attachments[0].HasField("url_expires_at")
    assert (case.documents_unavailable, [h.action for h in case.history]) == (False, ["queued"])


async def test_docs_refusing_the_caller_still_refuses_the_case(review: Review) -> None:
    item = await review.enqueue()
    review.docs.error = FailedPrecondition("not for this caller")
    error = await refused(review.case(item))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_the_case_names_the_rejected_request_it_corrects(review: Review) -> None:
    """A rejected request is not reopened: the beneficiary files a new one with the
    corrections, linked to it (SPEC §2). Its reviewer reads which one it corrects."""
    item = review.routed()
    event = routed_event(str(uuid.uuid4()), item)
    event.request_routed.cites_request_number = "TW251234560"
    await review.subscriptions.deliver(REQUEST_ROUTED, event)
    case = await review.case(str(item.request_id))
    assert case.item.cites_request_number == "TW251234560"
    assert not case.HasField("corrects")  # a number review has no request of
    plain = await review.case(await review.enqueue())
    assert plain.item.cites_request_number == ""
    assert not plain.HasField("corrects")


async def test_the_case_says_why_the_request_it_corrects_was_rejected(review: Review) -> None:
    rejected = await review.enqueue()
    await review.claim_next(ALI)
    await reject(review, rejected, ALI)
    rejected_number = (await review.case(rejected)).item.request_number
    accepted = await review.enqueue()
    await review.claim_next(ALI)
    await decide(review, accepted, ALI)

    async def correcting(number: str, department: str = "passports") -> str:
        item = review.routed(department)
        event = routed_event(str(uuid.uuid4()), item)
        event.request_routed.cites_request_number = number
        await review.subscriptions.deliver(REQUEST_ROUTED, event)
        return str(item.request_id)

    corrected = await correcting(rejected_number)
    case = await review.case(corrected)
    reason = case.corrects.reason
    assert (
        case.corrects.request_id,
        case.corrects.request_number,
        case.corrects.reason_code,
        case.corrects.message,
    ) == (rejected, rejected_number, "documents-unclear", "The attached photo is not clear")
    assert (reason.en, reason.ar) == (
        "The attachments are unclear or unreadable",
        "المرفقات غير واضحة أو غير مقروءة",
    )
    # In a department of the visas reviewer who reads the new one, not of the rejected one's.
    in_visas = await correcting(rejected_number, "visas")
    assert not (await review.case(in_visas, VISAS_ONLY)).HasField("corrects")
    assert (await review.case(in_visas, SARA)).corrects.request_id == rejected
    # Only a rejection is shown.
    accepted_number = (await review.case(accepted)).item.request_number
    assert not (await review.case(await correcting(accepted_number))).HasField("corrects")


async def test_the_case_shows_the_requests_fields_as_answers_correct_them(
    review: Review,
) -> None:
    """The reviewer reads the numbers the request is about, and asks for a missing or wrong
    one (a missing "field"): the answer's value is what they then read."""
    item = review.routed()
    event = routed_event(str(uuid.uuid4()), item)
    event.request_routed.fields.update({"passport_number": "A1234567", "national_id": "1012345672"})
    await review.subscriptions.deliver(REQUEST_ROUTED, event)
    request_id = str(item.request_id)
    assert dict((await review.case(request_id)).item.fields) == {
        "passport_number": "A1234567",
        "national_id": "1012345672",
    }
    await review.claim_next(ALI)
    await request_information(review, request_id)
    await review.answered(request_id, fields={"passport_number": "A7654321"})
    assert dict((await review.case(request_id)).item.fields) == {
        "passport_number": "A7654321",
        "national_id": "1012345672",
    }


async def test_an_answer_goes_to_the_queue_when_the_reviewer_is_away(review: Review) -> None:
    item = await review.enqueue()
    await review.claim_next(ALI)
    await request_information(review, item)
    away = await review.admin.SetAvailability(
        review_pb2.SetAvailabilityRequest(available=False), timeout=5, metadata=bearer(ALI)
    )
    assert (away.reviewer.reviewer_id, away.reviewer.available) == ("E100", False)
    await review.answered(item)
    (back,) = await review.queue()
    assert (back.state, back.assignee_id) == (review_pb2.WORK_ITEM_STATE_QUEUED, "")
    assert await review.claim_next(SARA) == item


async def test_an_expired_deadline_closes_the_request(review: Review) -> None:
    item = await review.enqueue()
    await review.claim_next(ALI)
    asked = await request_information(review, item, days=1)
    respond_by = at(asked.item.respond_by)
    assert respond_by == end_of(5)
    # An answer given by the deadline may still be on its way: the sweep waits for it.
    review.clock.now = respond_by + ANSWER_IN_FLIGHT - timedelta(seconds=1)
    await review.sweep()
    assert (await review.case(item)).item.state == review_pb2.WORK_ITEM_STATE_WAITING_ON_APPLICANT
    review.clock.now = respond_by + ANSWER_IN_FLIGHT
    await review.sweep()
    closed = (await review.statuses(item))[-1]
    assert (closed.status, closed.actor_id) == (common_pb2.REQUEST_STATUS_CLOSED, "system")
    assert (closed.message, closed.reason_code) == ("", "no-answer")
    assert (closed.reason.ar, closed.reason.en) == (
        "لم تصل المعلومات المطلوبة في الموعد المحدد",
        "The information asked for was not received by its deadline",
    )
    assert (await review.case(item)).item.state == review_pb2.WORK_ITEM_STATE_CLOSED
    published = len(await review.outbox(REQUEST_STATUS_CHANGED))
    review.clock.now += timedelta(hours=1)
    await review.answered(item)
    assert (await review.case(item)).item.state == review_pb2.WORK_ITEM_STATE_CLOSED
    assert len(await review.outbox(REQUEST_STATUS_CHANGED)) == published


async def test_an_answer_given_by_the_deadline_reopens_the_request_closed_before_it_came(
    review: Review,
) -> None:
    item = await review.enqueue()
    await review.claim_next(ALI)
    asked = await request_information(review, item, days=1)
    respond_by = at(asked.item.respond_by)
    review.clock.now = respond_by + timedelta(hours=1)
    await review.sweep()
    assert (await review.case(item)).item.state == review_pb2.WORK_ITEM_STATE_CLOSED
    review.clock.now += timedelta(minutes=5)
    await review.answered(item, answered_at=respond_by)
    case = await review.case(item)
    assert (case.item.state, case.item.assignee_id) == (
        review_pb2.WORK_ITEM_STATE_CLAIMED,
        "E100",
    )
    assert [(h.actor, h.action) for h in case.history][-4:] == [
        ("applicant", "answered"),
        ("system", "closed"),
        ("system", "reopened"),
        ("E100", "returned_to_holder"),
    ]
    # The beneficiary, told the request closed, is told it is open again.
    assert [(s.status, s.actor_id, s.reopened) for s in await review.statuses(item)][-2:] == [
        (common_pb2.REQUEST_STATUS_CLOSED, "system", False),
        (common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT, "applicant", True),
    ]


async def test_follow_ups_go_on_the_record_and_other_actions_are_refused(review: Review) -> None:
    item = await review.enqueue()
    followed = events_pb2.RequestFollowedUp(request_id=item, message="Any news?")
    await review.act(request_followed_up=followed)
    case = await review.case(item)
    assert [(h.actor, h.action, h.text) for h in case.history][-1] == (
        "applicant",
        "followed_up",
        "Any news?",
    )
    with pytest.raises(InvalidArgument) as caught:
        await review.act(request_submitted=events_pb2.RequestSubmitted(request_id=item))
    assert set(caught.value.violations) == {"payload"}
    with pytest.raises(InvalidArgument) as caught:
        await review.act(request_followed_up=events_pb2.RequestFollowedUp(request_id="x"))
    assert caught.value.violations == {"request_id": "not a UUID"}


async def test_a_cancellation_after_the_decision_is_recorded_and_changes_nothing(
    review: Review,
) -> None:
    item = await review.enqueue()
    await review.claim_next(ALI)
    await review.stub.DecideRequest(
        review_pb2.DecideRequestRequest(
            request_id=item, decision=review_pb2.DECISION_ACCEPT, reason_code="completed"
        ),
        timeout=5,
        metadata=bearer(ALI),
    )
    published = await review.statuses(item)
    assert published[-1].status == common_pb2.REQUEST_STATUS_ACCEPTED
    review.clock.now += timedelta(seconds=2)
    await review.cancelled(item, "Solved at the office")
    case = await review.case(item)
    assert (case.item.state, case.item.decision) == (
        review_pb2.WORK_ITEM_STATE_DECIDED,
        review_pb2.DECISION_ACCEPT,
    )
    assert [(h.actor, h.action, h.text) for h in case.history][-3:] == [
        ("E100", "accept", ""),
        ("E100", "accept_reason", "completed"),
        ("applicant", "cancel_too_late", "Solved at the office"),
    ]
    # The acceptance again, for the beneficiary told of the cancellation; intake's tracking
    # took the acceptance published before.
    restated = await review.statuses(item)
    assert restated[:-1] == published
    assert (restated[-1].status, restated[-1].cancel_too_late) == (
        common_pb2.REQUEST_STATUS_ACCEPTED,
        True,
    )
    assert not any(s.cancel_too_late for s in published)


# --- the SLA ----------------------------------------------------------------------------


async def test_sla_alerts_are_published_at_50_75_and_100_percent(review: Review) -> None:
    await review.put_reviewer("S001", supervises=("passports",))
    await review.put_reviewer("S002", departments=("passports", "visas"), supervises=("visas",))
    item = await review.enqueue(sla=Sla.days(2))
    # Two working days from Sunday 10:00: 50 % on Monday 10:00, 75 % at 13:30, 100 % Tuesday
    # 10:00. ALI takes it just before the first mark; his claim lapses before the second.
    seen: list[tuple[int, datetime]] = []
    for moment in (
        riyadh(5, 9, 59),
        riyadh(5, 10),
        riyadh(5, 10, 5),
        riyadh(5, 13, 30),
        riyadh(6, 9, 59),
        riyadh(6, 10),
        riyadh(7, 10),
    ):
        review.clock.now = moment
        await review.sweep()
        fresh = (await review.outbox(SLA_ALERTS))[len(seen) :]
        seen += [(e.sla_alert.percent, moment) for e in fresh]
        if moment == riyadh(5, 9, 59):
            assert await review.claim_next(ALI) == item
    assert seen == [(50, riyadh(5, 10)), (75, riyadh(5, 13, 30)), (100, riyadh(6, 10))]
    alerts = await review.outbox(SLA_ALERTS)
    assert {(e.event_type, e.request_id) for e in alerts} == {("tawasul.requests.sla", item)}
    assert [
        (
            a.sla_alert.department_code,
            at(a.sla_alert.due_at),
            a.sla_alert.assignee_id,
            list(a.sla_alert.supervisor_ids),
        )
        for a in alerts
    ] == [
        ("passports", riyadh(6, 10), "E100", []),
        ("passports", riyadh(6, 10), "", ["S001"]),
        ("passports", riyadh(6, 10), "", ["S001"]),
    ]
    history = [(h.action, h.text, h.internal) for h in (await review.case(item)).history]
    assert [h for h in history if h[0].startswith("sla_")] == [
        ("sla_warning", "50%", True),
        ("sla_warning", "75%", True),
        ("sla_breached", "100%", True),
    ]


# --- transfer ---------------------------------------------------------------------------


async def test_a_transfer_publishes_the_department_and_keeps_the_reason_internal(
    review: Review,
) -> None:
    item = await review.enqueue()
    await review.claim_next(ALI)
    reason = "A visa question filed under passports"
    moved = await review.stub.TransferRequest(
        review_pb2.TransferRequestRequest(request_id=item, department_code="visas", reason=reason),
        timeout=5,
        metadata=bearer(ALI),
    )
    assert (moved.item.state, moved.item.assignee_id) == (
        review_pb2.WORK_ITEM_STATE_TRANSFERRED,
        "",
    )
    transferred = (await review.statuses(item))[-1]
    assert (transferred.status, transferred.transfer_to_department, transferred.message) == (
        common_pb2.REQUEST_STATUS_TRANSFERRED,
        "visas",
        "",
    )
    # The catalog visas was checked against: a routing on an older one waits for it.
    assert transferred.catalog_version == review.rules.catalog.version == 6
    assert (transferred.internal.note, transferred.internal.department_code) == (
        reason,
        "passports",
    )
    public = [h for h in (await review.case(item)).history if not h.internal]
    assert all(reason not in h.text for h in public)
    internal = [(h.action, h.text) for h in (await review.case(item)).history if h.internal]
    assert internal == [("transferred_reason", reason)]
    assert await review.queue() == []


async def test_a_routing_older_than_one_applied_moves_the_item_no_more(review: Review) -> None:
    first = review.routed()
    item = str(first.request_id)

    async def route(department: str, sequence: int) -> None:
        placed = review.routed(department, request_id=first.request_id)
        await review.subscriptions.deliver(
            REQUEST_ROUTED, routed_event(str(uuid.uuid4()), placed, sequence)
        )

    async def transfer(who: str, to: str) -> None:
        await review.claim_next(who)
        await review.stub.TransferRequest(
            review_pb2.TransferRequestRequest(
                request_id=item, department_code=to, reason="Misfiled"
            ),
            timeout=5,
            metadata=bearer(who),
        )

    async def where() -> tuple[str, str, int]:
        async with review.engine.connect() as conn:
            row = (await conn.execute(select(tables.work_items))).one()
        return row.department, row.state, row.routed_sequence

    await route("passports", 1)
    await transfer(ALI, "visas")
    await route("visas", 3)
    await transfer(VISAS_ONLY, "residents")
    # Routing's second decision, placing it in reports, replayed after its third: no order.
    await route("reports", 2)
    assert await where() == ("visas", "transferred", 3)
    await route("residents", 4)
    assert await where() == ("residents", "queued", 4)


async def test_routing_numbering_its_decisions_again_after_a_restore_still_moves_the_item(
    review: Review,
) -> None:
    first = review.routed()
    item = str(first.request_id)

    async def route(department: str, sequence: int, transfer: int = 0) -> None:
        placed = review.routed(department, request_id=first.request_id)
        await review.subscriptions.deliver(
            REQUEST_ROUTED, routed_event(str(uuid.uuid4()), placed, sequence, transfer)
        )

    async def transfer(who: str, to: str) -> int:
        await review.claim_next(who)
        await review.stub.TransferRequest(
            review_pb2.TransferRequestRequest(
                request_id=item, department_code=to, reason="Misfiled"
            ),
            timeout=5,
            metadata=bearer(who),
        )
        return (await review.statuses(item))[-1].sequence

    async def where() -> tuple[str, str, int, int]:
        async with review.engine.connect() as conn:
            row = (await conn.execute(select(tables.work_items))).one()
        return row.department, row.state, row.routed_transfer, row.routed_sequence

    await route("passports", 1)
    to_visas = await transfer(ALI, "visas")
    await route("visas", 3, to_visas)
    to_residents = await transfer(VISAS_ONLY, "residents")
    # Routing's database put back to a backup and its topics replayed: the submission and the
    # transfer to visas came in one poll, and the transfer to residents is numbered 3 now.
    await route("passports", 1)
    await route("visas", 2, to_visas)
    assert await where() == ("visas", "transferred", to_visas, 3)
    await route("residents", 3, to_residents)
    assert await where() == ("residents", "queued", to_residents, 3)


async def test_a_transfer_must_name_another_catalog_department(review: Review) -> None:
    item = await review.enqueue()
    await review.claim_next(ALI)
    for department, reason in (("passports", "Misfiled"), ("nowhere", "Misfiled"), ("visas", "")):
        error = await refused(
            review.stub.TransferRequest(
                review_pb2.TransferRequestRequest(
                    request_id=item, department_code=department, reason=reason
                ),
                timeout=5,
                metadata=bearer(ALI),
            )
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(field_violations(error)) == ({"reason"} if not reason else {"department_code"})
    assert (await review.case(item)).item.state == review_pb2.WORK_ITEM_STATE_CLAIMED


async def test_a_newer_calendar_moves_the_open_items_due_dates_once(review: Review) -> None:
    """An operator's newer calendar file declares a holiday after the due dates were set: the
    start that loads it computes the open items' due dates again; ClaimNext and the sweeps
    read them."""
    item = await review.enqueue(sla=Sla.days(2))
    before = at((await review.case(item)).item.due_at)
    old = review.rules.calendar
    holiday = Closure(
        "declared", review.clock.now, review.clock.now + timedelta(days=1), "عطلة", "Holiday"
    )
    config = CalendarConfig(version=old.config.version + 1, closures=(holiday,))
    newer = replace(review.rules, calendar=old.updated(config))
    assert await handlers.reschedule(uow=review.uow(), policy=newer, now=review.clock.now) is None
    moved = at((await review.case(item)).item.due_at)
    assert moved > before
    async with review.engine.connect() as conn:
        (sla_next_at,) = (
            await conn.execute(
                sql("SELECT sla_next_at FROM work_items WHERE request_id = :id"),
                {"id": uuid.UUID(item)},
            )
        ).one()
    assert sla_next_at > review.clock.now + timedelta(days=1)
    # The same version again: nothing to do.
    assert await handlers.reschedule(uow=review.uow(), policy=newer, now=review.clock.now) is None
    assert at((await review.case(item)).item.due_at) == moved


# --- processed ------------------------------------------------------------------------------


def arabic(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The refusal's Arabic (under ""), and each field violation's, as a caller asking for
    Arabic reads them (google.rpc.LocalizedMessage)."""
    status = status_details(error)
    assert status is not None
    found: dict[str, str] = {}
    for detail in status.details:
        said, bad = error_details_pb2.LocalizedMessage(), error_details_pb2.BadRequest()
        if detail.Unpack(said):
            found[""] = said.message
        elif detail.Unpack(bad):
            found |= {v.field: v.localized_message.message for v in bad.field_violations}
    return found


async def mark_processed(
    review: Review, item: str, who: str, message: str = "", language: str = ""
) -> review_pb2.MarkProcessedResponse:
    metadata = (*bearer(who), *((("accept-language", language),) if language else ()))
    return await review.stub.MarkProcessed(
        review_pb2.MarkProcessedRequest(request_id=item, message=message),
        timeout=5,
        metadata=metadata,
    )


async def test_an_accepted_request_is_marked_processed_by_its_department_once(
    review: Review,
) -> None:
    item = await review.enqueue()
    await review.claim_next(ALI)
    await review.stub.DecideRequest(
        review_pb2.DecideRequestRequest(request_id=item, decision=review_pb2.DECISION_ACCEPT),
        timeout=5,
        metadata=bearer(ALI),
    )
    accepted = (await review.statuses(item))[-1]
    said = "Collect the new passport from the Riyadh office"
    # Another reviewer of the department carried out the transaction; no claim is needed.
    done = await mark_processed(review, item, SARA, said)
    assert (done.item.state, done.item.decision) == (
        review_pb2.WORK_ITEM_STATE_PROCESSED,
        review_pb2.DECISION_ACCEPT,
    )
    processed = (await review.statuses(item))[-1]
    assert (processed.status, processed.actor_id, processed.message, processed.sequence) == (
        common_pb2.REQUEST_STATUS_PROCESSED,
        "E200",
        said,
        accepted.sequence + 1,
    )
    # The same call again (its reply lost) publishes nothing more; another message is refused.
    again = await mark_processed(review, item, SARA, said)
    assert again.item.state == review_pb2.WORK_ITEM_STATE_PROCESSED
    assert len(await review.statuses(item)) == processed.sequence
    other = await refused(mark_processed(review, item, ALI, "Another text", language="ar"))
    assert other.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert arabic(other) == {"": f"سبق تسجيل معالجة الطلب {processed.request_number}"}
    history = [(h.actor, h.action, h.text) for h in (await review.case(item)).history]
    assert [h for h in history if h[1] == "processed"] == [("E200", "processed", said)]
    # No appeal lies against it: the beneficiary's (intake refuses it) changes nothing.
    await review.act(request_appealed=events_pb2.RequestAppealed(request_id=item, reason="Why"))
    assert (await review.case(item)).item.state == review_pb2.WORK_ITEM_STATE_PROCESSED
    assert len(await review.statuses(item)) == processed.sequence


async def test_only_an_accepted_request_of_your_department_is_marked_processed(
    review: Review,
) -> None:
    item = await review.enqueue()
    queued = await refused(mark_processed(review, item, ALI))
    assert queued.code() == grpc.StatusCode.FAILED_PRECONDITION
    await review.claim_next(ALI)
    await reject(review, item, ALI)
    rejected = await refused(mark_processed(review, item, ALI, language="ar"))
    assert rejected.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        rejected.details()
        == "request TW000000001 is rejected: only an accepted request is processed"
    )
    assert arabic(rejected) == {"": "الطلب TW000000001 غير مقبول: لا تُسجَّل إلا معالجة طلب مقبول"}
    elsewhere = await refused(mark_processed(review, item, VISAS_ONLY))
    assert elsewhere.code() == grpc.StatusCode.NOT_FOUND
    bad = await refused(mark_processed(review, item, ALI, "Done\x1b[31m", language="ar"))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (field_violations(bad), arabic(bad)["message"]) == ({"message": CONTROL}, CONTROL.ar)
    long = await refused(mark_processed(review, item, ALI, "تم" * 1001, language="ar"))
    assert arabic(long)["message"] == "2000 حرف على الأكثر"
    assert [s.status for s in await review.statuses(item)][-1] == common_pb2.REQUEST_STATUS_REJECTED


# --- appeals --------------------------------------------------------------------------------


async def test_an_appeal_goes_to_a_different_reviewer(review: Review) -> None:
    item = await review.enqueue()
    await review.claim_next(ALI)
    await reject(review, item, ALI)
    rejected = (await review.statuses(item))[-1]
    assert (rejected.status, rejected.reason_code, rejected.reason.en) == (
        common_pb2.REQUEST_STATUS_REJECTED,
        "documents-unclear",
        "The attachments are unclear or unreadable",
    )
    assert not rejected.decides_appeal
    await review.act(
        request_appealed=events_pb2.RequestAppealed(
            request_id=item, reason="The photo is recent and clear"
        )
    )
    (appealed,) = await review.queue()
    assert (appealed.state, appealed.appeal_of_reviewer_id, appealed.decision) == (
        review_pb2.WORK_ITEM_STATE_QUEUED,
        "E100",
        review_pb2.DECISION_UNSPECIFIED,
    )
    assert await review.claim_next(ALI) == ""
    own = await refused(
        review.stub.ClaimRequest(
            review_pb2.ClaimRequestRequest(request_id=item), timeout=5, metadata=bearer(ALI)
        )
    )
    assert own.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await review.claim_next(SARA) == item
    decided = await review.stub.DecideRequest(
        review_pb2.DecideRequestRequest(request_id=item, decision=review_pb2.DECISION_ACCEPT),
        timeout=5,
        metadata=bearer(SARA),
    )
    assert (decided.item.state, decided.item.decision) == (
        review_pb2.WORK_ITEM_STATE_DECIDED,
        review_pb2.DECISION_ACCEPT,
    )
    assert [(s.status, s.actor_id, s.decides_appeal) for s in await review.statuses(item)][-2:] == [
        (common_pb2.REQUEST_STATUS_UNDER_REVIEW, "E200", False),
        # Notify offers no appeal against it.
        (common_pb2.REQUEST_STATUS_ACCEPTED, "E200", True),
    ]


async def test_the_quality_check_of_an_appealed_rejection_shows_the_decision_standing(
    review: Review,
) -> None:
    await review.put_reviewer("S001", supervises=("passports",))
    item = await review.enqueue()
    await review.claim_next(ALI)
    await reject(review, item, ALI)
    # The rejection was sampled (if the draw had not sampled it already), and checked.
    async with review.engine.begin() as conn:
        await conn.execute(
            sql(
                "INSERT INTO quality_checks (request_id, request_number, department, decision, "
                "decided_by, sampled_at, checked_by, verdict) SELECT request_id, "
                "request_number, department, 'reject', 'E100', :at, 'S001', 'agree' "
                "FROM work_items WHERE request_id = :id ON CONFLICT (request_id) DO UPDATE "
                "SET checked_by = 'S001', verdict = 'agree'"
            ),
            {"at": review.clock.now, "id": uuid.UUID(item)},
        )
    await review.act(
        request_appealed=events_pb2.RequestAppealed(request_id=item, reason="It is recent")
    )
    assert await review.claim_next(SARA) == item
    await review.stub.DecideRequest(
        review_pb2.DecideRequestRequest(request_id=item, decision=review_pb2.DECISION_ACCEPT),
        timeout=5,
        metadata=bearer(SARA),
    )
    answer = await review.stub.ListQualityChecks(
        review_pb2.ListQualityChecksRequest(department_code="passports"),
        timeout=5,
        metadata=bearer(BOSS),
    )
    assert [
        (c.request_id, c.decision, c.decided_by, c.replaced_decision, c.replaced_by, c.verdict)
        for c in answer.checks
    ] == [(item, review_pb2.DECISION_ACCEPT, "E200", review_pb2.DECISION_REJECT, "E100", "")]


async def test_the_quality_check_of_an_appeal_decided_elsewhere_moves_to_that_department(
    review: Review,
) -> None:
    await review.put_reviewer("S001", supervises=("passports",))
    await review.put_reviewer("S002", departments=("visas",), supervises=("visas",))
    visas_boss = token("S002", "visas")
    first = review.routed()
    item = str(first.request_id)
    await review.subscriptions.deliver(REQUEST_ROUTED, routed_event(str(uuid.uuid4()), first, 1))
    await review.claim_next(ALI)
    await reject(review, item, ALI)
    # The rejection was sampled in passports (if the draw had not sampled it already).
    async with review.engine.begin() as conn:
        await conn.execute(
            sql(
                "INSERT INTO quality_checks (request_id, request_number, department, decision, "
                "decided_by, sampled_at) SELECT request_id, request_number, department, "
                "'reject', 'E100', :at FROM work_items WHERE request_id = :id "
                "ON CONFLICT (request_id) DO NOTHING"
            ),
            {"at": review.clock.now, "id": uuid.UUID(item)},
        )
    await review.act(
        request_appealed=events_pb2.RequestAppealed(request_id=item, reason="It is recent")
    )
    # The appeal's reviewer finds it misfiled: visas decide it.
    assert await review.claim_next(SARA, "passports") == item
    await review.stub.TransferRequest(
        review_pb2.TransferRequestRequest(request_id=item, department_code="visas", reason="Visa"),
        timeout=5,
        metadata=bearer(SARA),
    )
    moved = review.routed("visas", request_id=first.request_id)
    await review.subscriptions.deliver(REQUEST_ROUTED, routed_event(str(uuid.uuid4()), moved, 2))
    assert await review.claim_next(VISAS_ONLY) == item
    await review.stub.DecideRequest(
        review_pb2.DecideRequestRequest(request_id=item, decision=review_pb2.DECISION_ACCEPT),
        timeout=5,
        metadata=bearer(VISAS_ONLY),
    )

    async def listed(who: str, department: str) -> list[tuple[str, str, str]]:
        answer = await review.stub.ListQualityChecks(
            review_pb2.ListQualityChecksRequest(department_code=department),
            timeout=5,
            metadata=bearer(who),
        )
        return [(c.request_id, c.department_code, c.decided_by) for c in answer.checks]

    assert await listed(visas_boss, "visas") == [(item, "visas", "E300")]
    assert await listed(BOSS, "passports") == []
    # Passports' reviewers no longer see it; visas' supervisor checks it.
    error = await refused(
        review.stub.CompleteQualityCheck(
            review_pb2.CompleteQualityCheckRequest(request_id=item, verdict="agree"),
            timeout=5,
            metadata=bearer(ALI),
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    done = await review.stub.CompleteQualityCheck(
        review_pb2.CompleteQualityCheckRequest(request_id=item, verdict="agree"),
        timeout=5,
        metadata=bearer(visas_boss),
    )
    assert (done.check.department_code, done.check.checked_by) == ("visas", "S002")


async def test_an_appeal_applied_late_is_pushed_with_a_whole_lease(review: Review) -> None:
    # Review applies the appeal hours after the beneficiary made it (a consumer that lagged, a
    # dead letter replayed once its cause was mended): the reviewer it is pushed to gets the
    # lease from now, not one that ran out before they were given the item.
    await review.put_reviewer("E100")
    await review.put_reviewer("E200", departments=("passports", "visas"))
    item = await review.enqueue()
    await review.claim_next(ALI)
    await reject(review, item, ALI)
    await round_robin(review, "passports.default")
    appealed_at = review.clock.now + timedelta(minutes=5)
    review.clock.now += timedelta(hours=3)
    await review.act(
        appealed_at,
        request_appealed=events_pb2.RequestAppealed(
            request_id=item, reason="The photo is recent and clear"
        ),
    )
    (pushed,) = await review.queue(assignee="E200")
    assert at(pushed.claimed_until) == review.clock.now + LEASE
    await review.sweep()
    (still,) = await review.queue(assignee="E200")
    assert still.state == review_pb2.WORK_ITEM_STATE_CLAIMED
    # The appeal itself is on the record when it was made.
    case = await review.case(item, SARA)
    assert [at(h.at) for h in case.history if h.action == "appealed"] == [appealed_at]


# --- who sees what --------------------------------------------------------------------------


async def test_another_departments_reviewer_finds_nothing(review: Review) -> None:
    item = await review.enqueue()
    nowhere = str(uuid.uuid4())
    calls: dict[str, Callable[[str], Awaitable[object]]] = {
        "GetCase": lambda rid: review.stub.GetCase(
            review_pb2.GetCaseRequest(request_id=rid), timeout=5, metadata=bearer(VISAS_ONLY)
        ),
        "GetWorkItem": lambda rid: review.stub.GetWorkItem(
            review_pb2.GetWorkItemRequest(request_id=rid), timeout=5, metadata=bearer(VISAS_ONLY)
        ),
        "ClaimRequest": lambda rid: review.stub.ClaimRequest(
            review_pb2.ClaimRequestRequest(request_id=rid), timeout=5, metadata=bearer(VISAS_ONLY)
        ),
        "AddNote": lambda rid: review.stub.AddNote(
            review_pb2.AddNoteRequest(request_id=rid, text="hello"),
            timeout=5,
            metadata=bearer(VISAS_ONLY),
        ),
    }
    for name, call in calls.items():
        theirs = await refused(call(item))
        none = await refused(call(nowhere))
        assert (theirs.code(), none.code()) == (grpc.StatusCode.NOT_FOUND,) * 2, name
        # The answer for an item elsewhere is the answer for no item at all.
        assert theirs.details() == none.details(), name
        assert item not in (theirs.details() or ""), name
    denied = await refused(
        review.stub.ListQueue(
            review_pb2.ListQueueRequest(department_code="passports"),
            timeout=5,
            metadata=bearer(VISAS_ONLY),
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    denied = await refused(
        review.stub.ClaimNext(
            review_pb2.ClaimNextRequest(department_code="passports"),
            timeout=5,
            metadata=bearer(VISAS_ONLY),
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await review.claim_next(VISAS_ONLY) == ""
    # Docs was never asked for another department's attachments.
    assert review.docs.tokens == []
    (listed,) = await review.queue()
    assert (listed.request_id, listed.state) == (item, review_pb2.WORK_ITEM_STATE_QUEUED)


CITIZEN_FOR_REVIEW = IDENTITY.token("1000000008", Role.CITIZEN, overrides={"aud": "tawasul-review"})


async def test_calls_without_a_reviewer_token_are_refused(review: Review) -> None:
    await review.enqueue()
    for metadata, code in (
        ((), grpc.StatusCode.UNAUTHENTICATED),
        (bearer("x.y"), grpc.StatusCode.UNAUTHENTICATED),
        # Not meant for review, and a citizen's even if it were.
        (bearer(CITIZEN), grpc.StatusCode.UNAUTHENTICATED),
        (bearer(CITIZEN_FOR_REVIEW), grpc.StatusCode.PERMISSION_DENIED),
    ):
        error = await refused(
            review.stub.ListQueue(
                review_pb2.ListQueueRequest(department_code="passports"),
                timeout=5,
                metadata=metadata,
            )
        )
        assert error.code() == code
    error = await refused(
        review.stub.ClaimNext(
            review_pb2.ClaimNextRequest(), timeout=5, metadata=bearer(CITIZEN_FOR_REVIEW)
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_an_employee_id_longer_than_review_stores_is_refused_at_the_door(
    review: Review,
) -> None:
    request_id = await review.enqueue()
    longest = token("employee." + "x" * 41, "passports")  # 50 characters
    assert await review.claim_next(longest) == request_id
    noted = await review.stub.AddNote(
        review_pb2.AddNoteRequest(request_id=request_id, text="hello"),
        timeout=5,
        metadata=bearer(longest),
    )
    assert noted.item.assignee_id == "employee." + "x" * 41
    too_long = bearer(token("employee." + "x" * 42, "passports"))
    for call in (
        review.stub.ClaimNext(review_pb2.ClaimNextRequest(), timeout=5, metadata=too_long),
        review.stub.AddNote(
            review_pb2.AddNoteRequest(request_id=request_id, text="hello"),
            timeout=5,
            metadata=too_long,
        ),
        review.admin.SetAvailability(
            review_pb2.SetAvailabilityRequest(available=False), timeout=5, metadata=too_long
        ),
    ):
        error = await refused(call)
        assert (error.code(), error.details()) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "employee token's subject is not an employee id: "
            "1 to 50 letters, digits, '.', '_' or '-'",
        )


async def test_a_case_shows_attachments_and_notes_as_internal_history(review: Review) -> None:
    item = await review.enqueue()
    await review.claim_next(ALI)
    for who, text in ((ALI, "Called the registry"), (SARA, "الصورة غير واضحة")):
        await review.stub.AddNote(
            review_pb2.AddNoteRequest(request_id=item, text=text), timeout=5, metadata=bearer(who)
        )
    # Sent twice (the first reply lost): the beneficiary is told once.
    for _ in range(2):
        await review.stub.MessageApplicant(
            review_pb2.MessageApplicantRequest(request_id=item, text="We are checking your record"),
            timeout=5,
            metadata=bearer(ALI),
        )
    case = await review.case(item, SARA)
    assert [(h.actor, h.action, h.text, h.internal) for h in case.history] == [
        ("routing", "queued", "passports.default", False),
        ("E100", "claimed", "", False),
        ("E100", "note", "Called the registry", True),
        ("E200", "note", "الصورة غير واضحة", True),
        ("E100", "message", "We are checking your record", False),
    ]
    assert [(a.document_id, a.download_url) for a in case.attachments] == [
        ("d1", "https://s3/d1"),
        ("d2", "https://s3/d2"),
    ]
    assert review.docs.tokens == [SARA]
    # Only the message reaches the beneficiary; the notes publish nothing.
    statuses = await review.statuses(item)
    assert [(s.status, s.message, s.reviewer_message) for s in statuses] == [
        (common_pb2.REQUEST_STATUS_UNDER_REVIEW, "", False),
        (common_pb2.REQUEST_STATUS_UNDER_REVIEW, "We are checking your record", True),
    ]
    assert {s.internal.note for s in statuses} == {""}


@pytest.mark.parametrize("queue", ["passports", "passports.", "nowhere.default", ".default"])
async def test_settings_are_for_a_named_queue_of_a_catalog_department(
    review: Review, queue: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await review.admin.PutQueueSettings(
            review_pb2.PutQueueSettingsRequest(
                settings=review_pb2.QueueSettings(
                    queue=queue, mode=review_pb2.ASSIGNMENT_MODE_ROUND_ROBIN
                )
            ),
            timeout=5,
            metadata=bearer(ADMIN),
        )
    assert field_violations(caught.value) == {
        "settings.queue": "a queue of a catalog department, '<dept>.<name>'"
    }


async def test_a_polls_routed_requests_are_queued_in_order_once_each_and_pushed(
    review: Review,
) -> None:
    await review.put_reviewer("E100")
    await review.put_reviewer("E200", departments=("passports", "visas"))
    await review.admin.PutQueueSettings(
        review_pb2.PutQueueSettingsRequest(
            settings=review_pb2.QueueSettings(
                queue="visas.default", mode=review_pb2.ASSIGNMENT_MODE_ROUND_ROBIN
            )
        ),
        timeout=5,
        metadata=bearer(ADMIN),
    )
    first, second = review.routed(), review.routed()
    # Routed elsewhere in the same poll, before any reviewer transferred it: it stays.
    again = review.routed("visas", request_id=first.request_id)
    pushed = [review.routed("visas") for _ in range(2)]
    ids = [str(uuid.uuid4()) for _ in range(5)]
    poll = [
        (ids[0], first),
        (ids[1], second),
        (ids[0], first),  # a redelivered event in the same poll
        (ids[2], again),
        (ids[3], pushed[0]),
        (ids[4], pushed[1]),
    ]
    events = [routed_event(event_id, item) for event_id, item in poll]
    await review.subscriptions.deliver(REQUEST_ROUTED, *events)
    await review.subscriptions.deliver(REQUEST_ROUTED, *events[:2])
    async with review.engine.connect() as conn:
        rows = {
            row.request_id: (row.department, row.state, row.assignee)
            for row in await conn.execute(select(tables.work_items))
        }
        actions = Counter(
            (row.request_id, row.action) for row in await conn.execute(select(tables.history))
        )
    assert rows[first.request_id] == ("passports", "queued", "")
    assert rows[second.request_id] == ("passports", "queued", "")
    # Visas pushes: round-robin over its one reviewer, E200.
    assert [rows[i.request_id] for i in pushed] == [("visas", "claimed", "E200")] * 2
    assert set(rows) == {first.request_id, second.request_id, *(i.request_id for i in pushed)}
    assert actions[(first.request_id, "queued")] == 1
    assert actions[(second.request_id, "queued")] == 1


async def test_the_offices_cancellation_is_the_systems_doing_before_and_after_routing(
    review: Review,
) -> None:
    """Intake cancelled the request for its account (the person off its record, another
    account filing for them): the case's history names the system, not the applicant, whether
    the item was here or routed after the cancellation (kept in `withdrawals` meanwhile)."""
    said = "cancelled automatically: the person is no longer on the filing account's record"
    here = await review.enqueue()
    late = review.routed()
    for request_id in (here, str(late.request_id)):
        cancellation = events_pb2.RequestCancelled(
            request_id=request_id, reason=said, off_record=True
        )
        await review.act(request_cancelled=cancellation)
    await handlers.enqueue(
        uow=review.uow(), routed=[(str(uuid.uuid4()), late)], policy=review.rules, now=START
    )
    for request_id in (here, str(late.request_id)):
        case = await review.case(request_id)
        assert case.item.state == review_pb2.WORK_ITEM_STATE_WITHDRAWN
        assert [(h.actor, h.action, h.text) for h in case.history][-1] == (
            "system",
            "cancelled",
            said,
        )


async def test_a_follow_up_before_its_routed_request_goes_on_the_record_on_arrival(
    review: Review,
) -> None:
    """Routing keeps a follow-up it reads before the submission and routes the request after
    it: review keeps it too (in `early_follow_ups`; it was dead-lettered), once however often
    it is delivered, and the case's history shows it once the item arrives."""
    late = review.routed()
    asked = START - timedelta(hours=1)
    followed = events_pb2.RequestFollowedUp(request_id=str(late.request_id), message="News?")
    event_id = str(uuid.uuid4())
    for _ in range(2):
        await review.act(asked, event_id, request_followed_up=followed)
    await handlers.enqueue(
        uow=review.uow(), routed=[(str(uuid.uuid4()), late)], policy=review.rules, now=START
    )
    await review.act(asked, event_id, request_followed_up=followed)
    case = await review.case(str(late.request_id))
    assert case.item.state == review_pb2.WORK_ITEM_STATE_QUEUED
    assert [(h.actor, h.action, h.text) for h in case.history] == [
        ("applicant", "followed_up", "News?"),
        ("routing", "queued", "passports.default"),
    ]


async def test_a_cancellation_applied_while_its_routing_commits_withdraws_the_item(
    review: Review,
) -> None:
    # One poll's topics are applied at once (and replicas apply partitions at once): the
    # cancellation may look for the item while the routed event's transaction has inserted it
    # but not committed. Here that transaction is held at its insert by a twin holding the same
    # request number, uncommitted, until the cancellation has either finished or is waiting.
    item, twin = review.routed(), review.routed()
    twin.request_number = item.request_number

    async def waiting() -> int | None:
        async with review.engine.connect() as conn:
            waits = await conn.scalar(
                sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            )
        return waits or None

    async with review.uow() as holding:
        await holding.items.add(twin)
        await holding.items.flush()
        enqueuing = asyncio.create_task(
            handlers.enqueue(
                uow=review.uow(), routed=[(str(uuid.uuid4()), item)], policy=review.rules, now=START
            )
        )
        await eventually(waiting, within=10, what="the routed event's insert to wait")
        withdrawing = asyncio.create_task(
            review.cancelled(str(item.request_id), "cancelled by the applicant", START)
        )

        async def withdrawn_or_waiting() -> bool | None:
            return True if withdrawing.done() or (await waiting() or 0) >= 2 else None

        await eventually(withdrawn_or_waiting, within=10, what="the cancellation to run")
    await asyncio.gather(enqueuing, withdrawing)

    async with review.engine.connect() as conn:
        state = await conn.scalar(
            select(tables.work_items.c.state).where(
                tables.work_items.c.request_id == item.request_id
            )
        )
    assert state == "withdrawn"
    assert await review.queue() == []


async def test_the_queue_is_read_page_by_page_with_filters(review: Review) -> None:
    made = []
    for _ in range(5):
        made.append(await review.enqueue())
        review.clock.now += timedelta(minutes=1)
    first = await review.stub.ListQueue(
        review_pb2.ListQueueRequest(department_code="passports", page_size=2),
        timeout=5,
        metadata=bearer(ALI),
    )
    assert [i.request_id for i in first.items] == made[:2]
    assert first.next_page_token != ""
    pages = []
    page_token = first.next_page_token
    while page_token:
        page = await review.stub.ListQueue(
            review_pb2.ListQueueRequest(
                department_code="passports", page_size=2, page_token=page_token
            ),
            timeout=5,
            metadata=bearer(ALI),
        )
        pages.append([i.request_id for i in page.items])
        page_token = page.next_page_token
    assert pages == [made[2:4], made[4:]]
    assert await review.claim_next(SARA) == made[0]
    mine = await review.queue(assignee="E200")
    assert [i.request_id for i in mine] == [made[0]]
    waiting = await review.queue(state=review_pb2.WORK_ITEM_STATE_QUEUED)
    assert [i.request_id for i in waiting] == made[1:]


# --- supervisors ----------------------------------------------------------------------------


async def test_the_backlog_counts_for_a_supervisor_only(review: Review) -> None:
    await review.put_reviewer("S001", supervises=("passports",))
    # Due Monday 10:00 (one working day from Sunday 10:00), both of them.
    breached = await review.enqueue(sla=Sla.days(1))
    asked = await review.enqueue(sla=Sla.days(1))
    review.clock.now = riyadh(5, 9)
    await review.enqueue(sla=Sla.days(7))
    soon = await review.enqueue(sla=Sla.days(1))  # due Tuesday 09:00
    assert [await review.claim_next(ALI) for _ in range(3)] == [breached, asked, soon]
    # Waiting on the beneficiary is not the office's breach, even past its due date.
    await request_information(review, asked)
    await review.enqueue("visas")
    review.clock.now = riyadh(5, 12)
    answer = await review.stub.GetBacklog(
        review_pb2.GetBacklogRequest(department_code="passports"), timeout=5, metadata=bearer(BOSS)
    )
    (queue,) = answer.queues
    assert (
        queue.queue,
        queue.size,
        at(queue.oldest_queued_at),
        queue.due_soon,
        queue.breached,
        queue.waiting_on_applicant,
    ) == ("passports.default", 3, START, 1, 1, 1)
    for who in (ALI, ADMIN, SARA, token("S001", "visas")):
        error = await refused(
            review.stub.GetBacklog(
                review_pb2.GetBacklogRequest(department_code="passports"),
                timeout=5,
                metadata=bearer(who),
            )
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The nodes of a plan (EXPLAIN's JSON) that read a relation or an index."""
    found = [plan] if "Relation Name" in plan or "Index Name" in plan else []
    return found + [node for child in plan.get("Plans", []) for node in scans(child)]


async def test_quality_checks_are_listed_apart_from_years_of_done_ones(
    review: Review,
) -> None:
    await review.put_reviewer("S001", supervises=("passports",))
    async with review.engine.begin() as conn:
        await conn.execute(
            sql(
                "INSERT INTO quality_checks (request_id, request_number, department, decision, "
                "decided_by, sampled_at, checked_by, verdict, note) "
                "SELECT gen_random_uuid(), 'TW' || lpad(n::text, 9, '0'), department, 'accept', "
                "'E100', CAST(:start AS timestamptz) - n * interval '1 hour', checker, verdict, '' "
                "FROM generate_series(1, 3000) AS n, (VALUES ('passports', 'E200', 'agree'), "
                "('visas', '', '')) AS d(department, checker, verdict)"
            ),
            {"start": START},
        )
        for number, hours in (("TW900000001", 1), ("TW900000002", 2)):
            await conn.execute(
                sql(
                    "INSERT INTO quality_checks (request_id, request_number, department, "
                    "decision, decided_by, sampled_at) VALUES "
                    "(gen_random_uuid(), :number, 'passports', 'reject', 'E100', :at)"
                ),
                {"number": number, "at": START + timedelta(hours=hours)},
            )
        await conn.execute(sql("ANALYZE quality_checks"))

    answer = await review.stub.ListQualityChecks(
        review_pb2.ListQualityChecksRequest(department_code="passports"),
        timeout=5,
        metadata=bearer(BOSS),
    )

    assert [(c.request_number, c.checked_by) for c in answer.checks] == [
        ("TW900000001", ""),
        ("TW900000002", ""),
    ]
    recorded = RecordedStatements()
    await SqlQualityRepository(cast(Session, recorded)).in_department(
        "passports", include_done=False, limit=501
    )
    (statement,) = recorded.sql()
    async with review.engine.connect() as conn:
        plan = await conn.scalar(sql(f"EXPLAIN (FORMAT JSON) {statement}"))
    (scan,) = scans(plan[0]["Plan"])
    assert (scan.get("Index Name"), scan.get("Filter")) == ("quality_checks_pending", None)
    # With the checks made: newest first, page by page down to the first ever made.
    numbers: list[str] = []
    token = ""
    for _ in range(10):
        page = await review.stub.ListQualityChecks(
            review_pb2.ListQualityChecksRequest(
                department_code="passports", include_done=True, page_token=token
            ),
            timeout=5,
            metadata=bearer(BOSS),
        )
        assert {c.department_code for c in page.checks} == {"passports"}
        numbers.extend(c.request_number for c in page.checks)
        token = page.next_page_token
        if not token:
            break
    assert numbers == [
        "TW900000002",
        "TW900000001",
        *(f"TW{n:09d}" for n in range(1, 3001)),
    ]
    # The checks still to make, a page of one at a time, oldest first.
    first = await review.stub.ListQualityChecks(
        review_pb2.ListQualityChecksRequest(department_code="passports", page_size=1),
        timeout=5,
        metadata=bearer(BOSS),
    )
    last = await review.stub.ListQualityChecks(
        review_pb2.ListQualityChecksRequest(
            department_code="passports", page_size=1, page_token=first.next_page_token
        ),
        timeout=5,
        metadata=bearer(BOSS),
    )
    assert [c.request_number for c in (*first.checks, *last.checks)] == [
        "TW900000001",
        "TW900000002",
    ]
    assert (bool(first.next_page_token), last.next_page_token) == (True, "")
    for bad, field in (
        (
            review_pb2.ListQualityChecksRequest(department_code="passports", page_size=-1),
            "page_size",
        ),
        (
            review_pb2.ListQualityChecksRequest(department_code="passports", page_token="x"),
            "page_token",
        ),
        (
            review_pb2.ListQualityChecksRequest(
                department_code="passports",
                page_token=base64.urlsafe_b64encode(b'["2026-01-04T10:00:00", "no"]').decode(),
            ),
            "page_token",
        ),
    ):
        violations = await invalid(
            review.stub.ListQualityChecks(bad, timeout=5, metadata=bearer(BOSS))
        )
        assert list(violations) == [field]


async def test_reviewers_are_managed_by_admins_and_supervisors(review: Review) -> None:
    await review.put_reviewer("S001", supervises=("passports",))
    stored = await review.put_reviewer("E100", capacity=2, caller=BOSS)
    assert (list(stored.departments), stored.capacity) == (["passports"], 2)
    for caller, departments in ((BOSS, ("visas",)), (ALI, ("passports",))):
        error = await refused(review.put_reviewer("E400", departments=departments, caller=caller))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await review.admin.ListReviewers(
        review_pb2.ListReviewersRequest(department_code="passports"),
        timeout=5,
        metadata=bearer(ALI),
    )
    assert [(r.reviewer_id, r.capacity) for r in listed.reviewers] == [("E100", 2), ("S001", 20)]
    # The capacity is enforced on claims.
    for _ in range(3):
        await review.enqueue()
    assert await review.claim_next(ALI) != ""
    assert await review.claim_next(ALI) != ""
    full = await refused(
        review.stub.ClaimNext(review_pb2.ClaimNextRequest(), timeout=5, metadata=bearer(ALI))
    )
    assert full.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_marking_oneself_away_and_back_keeps_following_the_token(review: Review) -> None:
    for available in (False, True):
        marked = await review.admin.SetAvailability(
            review_pb2.SetAvailabilityRequest(available=available),
            timeout=5,
            metadata=bearer(ALI),
        )
        assert (list(marked.reviewer.departments), marked.reviewer.available) == (
            ["passports"],
            available,
        )
    # Identity adds visas to E100's token later: they work it at once, as without a record.
    widened = token("E100", "passports", "visas")
    queued = await review.enqueue("visas")
    assert [i.request_id for i in await review.queue(widened, "visas")] == [queued]
    assert await review.claim_next(widened, "visas") == queued


async def test_a_supervisor_decides_only_the_departments_they_supervise(review: Review) -> None:
    await review.put_reviewer("S001", supervises=("passports",))
    queued = await review.enqueue("visas")
    # E200's token gives passports and visas; the passports supervisor writes their record.
    stored = await review.put_reviewer("E200", capacity=3, caller=BOSS)
    assert (list(stored.departments), stored.capacity) == (["passports"], 3)
    assert await review.claim_next(SARA, "visas") == queued
    # An administrator's record decides every department.
    await review.put_reviewer("E200")
    error = await refused(
        review.stub.ListQueue(
            review_pb2.ListQueueRequest(department_code="visas"), timeout=5, metadata=bearer(SARA)
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_supervisor_takes_a_reviewer_out_of_their_department(review: Review) -> None:
    """A record of no department from the passports supervisor takes E200 out of passports;
    visas, which he does not supervise, still follows E200's token. An administrator's record
    sets every department: it names one at least."""
    await review.put_reviewer("S001", supervises=("passports",))
    await review.put_reviewer("E200", caller=BOSS)
    stored = await review.put_reviewer("E200", departments=(), caller=BOSS)
    assert list(stored.departments) == []
    error = await refused(review.queue(SARA, "passports"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    queued = await review.enqueue("visas")
    assert await review.claim_next(SARA, "visas") == queued
    said = await invalid(review.put_reviewer("E200", departments=()))
    assert list(said) == ["reviewer.departments"]


async def test_get_reviewer_reads_a_record_no_department_lists(review: Review) -> None:
    """ListReviewers lists by department: one taken out of every department is in no list,
    yet their record is kept, and GetReviewer reads it for the supervisor who took them out,
    an administrator and themselves; the reviewers of its departments read one of some."""

    async def get(reviewer_id: str, caller: str) -> review_pb2.Reviewer:
        answer = await review.admin.GetReviewer(
            review_pb2.GetReviewerRequest(reviewer_id=reviewer_id),
            timeout=5,
            metadata=bearer(caller),
        )
        return answer.reviewer

    def shown(r: review_pb2.Reviewer) -> tuple[str, list[str], list[str], int, bool]:
        return (r.reviewer_id, list(r.departments), list(r.languages), r.capacity, r.available)

    await review.put_reviewer("S001", supervises=("passports",))
    await review.put_reviewer("E100", capacity=7)
    assert shown(await get("E100", SARA)) == ("E100", ["passports"], ["ar", "en"], 7, True)
    # Taken out of passports, the administrator's record decides every department: none.
    await review.put_reviewer("E100", departments=(), capacity=7, caller=BOSS)
    for caller in (BOSS, ADMIN, ALI):
        assert shown(await get("E100", caller)) == ("E100", [], ["ar", "en"], 7, True)
    for caller in (SARA, VISAS_ONLY):
        denied = await refused(get("E100", caller))
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert arabic(denied) == {
        "": "سجل E100 للمراجع نفسه ومسؤول النظام ومراجعي أقسامه ومشرف قسم أخرجه منه فقط"
    }
    # One the passports supervisor took out of passports only is not the visas supervisor's.
    await review.put_reviewer("E400", capacity=3, caller=BOSS)
    await review.put_reviewer("E400", departments=(), capacity=3, caller=BOSS)
    await review.put_reviewer("S002", departments=("visas",), supervises=("visas",))
    assert (await get("E400", BOSS)).capacity == 3
    denied = await refused(get("E400", token("S002", "visas")))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    # No record: NOT_FOUND, for the reviewer themselves too.
    for caller in (ADMIN, VISAS_ONLY):
        missing = await refused(get("E300", caller))
        assert (missing.code(), missing.details(), arabic(missing)) == (
            grpc.StatusCode.NOT_FOUND,
            "no such reviewer",
            {"": "لا يوجد هذا المراجع"},
        )
    for garbage in ("", "E 100", "x" * 51, NUL):
        assert list(await invalid(get(garbage, ADMIN))) == ["reviewer_id"]


async def test_a_reviewer_back_from_a_day_off_is_still_their_supervisor_s_to_manage(
    review: Review,
) -> None:
    """Marking oneself away writes a record holding one's token's departments that decides
    none of them: the passports supervisor still decides E200's passports membership."""
    await review.put_reviewer("S001", supervises=("passports",))
    for available in (False, True):
        await review.admin.SetAvailability(
            review_pb2.SetAvailabilityRequest(available=available),
            timeout=5,
            metadata=bearer(SARA),
        )
    stored = await review.put_reviewer("E200", capacity=3, caller=BOSS)
    assert (list(stored.departments), stored.capacity) == (["passports"], 3)
    # Visas, which the supervisor does not supervise, still follow E200's token.
    queued = await review.enqueue("visas")
    assert await review.claim_next(SARA, "visas") == queued


async def test_a_reviewer_their_record_takes_out_of_a_department_cannot_check_it(
    review: Review,
) -> None:
    await review.put_reviewer("E300", departments=("visas",))
    stale = token("E300", "passports", "visas")
    request_id = await review.enqueue()
    async with review.engine.begin() as conn:
        await conn.execute(
            sql(
                "INSERT INTO quality_checks (request_id, request_number, department, decision,"
                " decided_by, sampled_at) VALUES (:r, 'TW000000001', 'passports', 'accept',"
                " 'E100', now())"
            ),
            {"r": request_id},
        )
    for call in (
        review.stub.GetCase(
            review_pb2.GetCaseRequest(request_id=request_id), timeout=5, metadata=bearer(stale)
        ),
        review.stub.CompleteQualityCheck(
            review_pb2.CompleteQualityCheckRequest(request_id=request_id, verdict="agree"),
            timeout=5,
            metadata=bearer(stale),
        ),
    ):
        assert (await refused(call)).code() == grpc.StatusCode.NOT_FOUND
    error = await refused(
        review.admin.ListReviewers(
            review_pb2.ListReviewersRequest(department_code="passports"),
            timeout=5,
            metadata=bearer(stale),
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_reviewer_taken_out_of_a_department_gives_back_what_they_hold_there(
    review: Review,
) -> None:
    await review.put_reviewer("E200", departments=("passports", "visas"))
    passports = await review.enqueue()
    visas = await review.enqueue("visas")
    assert {await review.claim_next(SARA, "passports"), await review.claim_next(SARA, "visas")} == {
        passports,
        visas,
    }
    await review.put_reviewer("E200", departments=("visas",))
    # Hidden from them at once: a colleague takes it now, not once their lease lapsed.
    assert await review.claim_next(ALI) == passports
    given_back = [(h.actor, h.action) for h in (await review.case(passports)).history]
    assert given_back[-2:] == [(ADMIN_ID, "reassigned_to_queue"), ("E100", "claimed")]
    kept = (await review.case(visas, VISAS_ONLY)).item
    assert (kept.state, kept.assignee_id) == (review_pb2.WORK_ITEM_STATE_CLAIMED, "E200")


async def lock_waiter(review: Review) -> bool | None:
    """True once a transaction waits for another's lock (None until then, which `eventually`
    polls on)."""
    async with review.engine.connect() as conn:
        waiting = await conn.scalar(
            sql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND pid <> pg_backend_pid()"
            )
        )
    return True if waiting else None


async def push_round_robin(review: Review, queue: str) -> None:
    await review.admin.PutQueueSettings(
        review_pb2.PutQueueSettingsRequest(
            settings=review_pb2.QueueSettings(
                queue=queue, mode=review_pb2.ASSIGNMENT_MODE_ROUND_ROBIN
            )
        ),
        timeout=5,
        metadata=bearer(ADMIN),
    )


async def poll_beside_a_release(
    review: Review, poll: list[events_pb2.Envelope], *, released: str, by: str
) -> None:
    """Applies `poll` as review's group does (one transaction), held after its first event
    while `by` releases `released`, and let go once that call waits for a lock: both must go
    through, neither undone for the other's sake."""
    opened = 0
    first_applied, go_on = asyncio.Event(), asyncio.Event()

    class Paused(ReviewUnitOfWork):
        async def __aenter__(self) -> Paused:
            nonlocal opened
            opened += 1
            if opened == 3:  # what the poll takes first, its first event, then its second
                first_applied.set()
                await go_on.wait()
            return await super().__aenter__()

    handle = on_applicant_actions(lambda: Paused(review.database), review.rules, review.clock)

    async def applied() -> None:
        messaging = Messaging("review", tables.outbox, tables.inbox)
        async with shared_transaction(review.database, messaging):
            await handle(poll)

    polling = asyncio.create_task(applied())
    await first_applied.wait()
    releasing = asyncio.ensure_future(
        review.stub.ReleaseRequest(
            review_pb2.ReleaseRequestRequest(request_id=released), timeout=10, metadata=bearer(by)
        )
    )
    await eventually(lambda: lock_waiter(review), what="the release waiting for the poll")
    go_on.set()
    await polling
    await releasing


def applicant_action(**action: Any) -> events_pb2.Envelope:
    ((field, payload),) = action.items()
    event = events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.applicant-action",
        request_id=payload.request_id,
        occurred_at=timestamp(START),
    )
    getattr(event, field).CopyFrom(payload)
    return event


async def test_a_poll_of_actions_takes_its_items_before_a_reviewers_call_can(
    review: Review,
) -> None:
    """A cancellation freeing a reviewer takes their pushing queue; a reviewer's call takes an
    item, then that queue. Had the poll taken its next event's item only then, each would wait
    for the other until PostgreSQL undid one (the reviewer's call ABORTED)."""
    await review.put_reviewer("E100")
    await review.put_reviewer("E200", departments=("passports", "visas"))
    cancelled = await review.enqueue()
    assert await review.claim_next(ALI) == cancelled
    followed = await review.enqueue()
    assert await review.claim_next(SARA, "passports") == followed
    await push_round_robin(review, "passports.default")
    await poll_beside_a_release(
        review,
        [
            applicant_action(
                request_cancelled=events_pb2.RequestCancelled(request_id=cancelled, reason="No")
            ),
            applicant_action(
                request_followed_up=events_pb2.RequestFollowedUp(
                    request_id=followed, message="News?"
                )
            ),
        ],
        released=followed,
        by=SARA,
    )
    history = [(h.actor, h.action) for h in (await review.case(followed, SARA)).history]
    assert history[-3:] == [
        ("applicant", "followed_up"),
        ("E200", "released"),
        ("queue", "assigned"),  # to E100, whom the cancellation freed
    ]
    assert (await review.case(cancelled)).item.state == review_pb2.WORK_ITEM_STATE_WITHDRAWN


async def test_a_poll_of_actions_in_two_departments_takes_their_queues_before_a_call_can(
    review: Review,
) -> None:
    """The poll's first cancellation (passports) frees a reviewer and takes passports' queue
    and reviewers, E200 among them; its second (visas) then took visas' queue, which a release
    in visas held on its way to E200: each waited for the other until one was undone."""
    await review.put_reviewer("E100", departments=("passports",))
    await review.put_reviewer("E200", departments=("passports", "visas"))
    await review.put_reviewer("E300", departments=("visas",))
    in_passports = await review.enqueue("passports")
    assert await review.claim_next(ALI) == in_passports
    in_visas, released = await review.enqueue("visas"), await review.enqueue("visas")
    assert {await review.claim_next(VISAS_ONLY), await review.claim_next(VISAS_ONLY)} == {
        in_visas,
        released,
    }
    for queue in ("passports.default", "visas.default"):
        await push_round_robin(review, queue)
    poll = [
        applicant_action(
            request_cancelled=events_pb2.RequestCancelled(request_id=r, reason="No need")
        )
        for r in (in_passports, in_visas)
    ]
    await poll_beside_a_release(review, poll, released=released, by=VISAS_ONLY)
    states = {r: (await review.case(r, SARA)).item.state for r in (in_passports, in_visas)}
    assert set(states.values()) == {review_pb2.WORK_ITEM_STATE_WITHDRAWN}
    history = [(h.actor, h.action) for h in (await review.case(released, SARA)).history]
    assert ("E300", "released") in history


async def test_a_put_beside_a_call_holding_one_of_the_reviewers_items_is_tried_again(
    review: Review,
) -> None:
    """The put takes the queues and the reviewer before their items, so it cannot wait for
    one another call holds (their note on it): ABORTED, it goes through when tried again."""
    await review.put_reviewer("E200", departments=("passports", "visas"))
    held = await review.enqueue("passports")
    assert await review.claim_next(SARA, "passports") == held
    noting, go_on = asyncio.Event(), asyncio.Event()

    class Paused(ReviewUnitOfWork):
        async def __aenter__(self) -> Paused:
            await super().__aenter__()
            original = self.items.get

            async def got(*args: Any, **kwargs: Any) -> Any:
                item = await original(*args, **kwargs)
                noting.set()
                await go_on.wait()
                return item

            self.items.get = got  # type: ignore[method-assign]
            return self

    note = asyncio.create_task(
        handlers.add_note(
            uow=Paused(review.database),
            reviewer=Principal("E200", Role.REVIEWER, frozenset({"passports", "visas"})),
            request_id=uuid.UUID(held),
            text="Checking the photo",
            policy=review.rules,
            now=review.clock.now,
        )
    )
    await noting.wait()
    error = await refused(review.put_reviewer("E200", departments=("visas",)))
    assert error.code() == grpc.StatusCode.ABORTED
    go_on.set()
    await note
    await review.put_reviewer("E200", departments=("visas",))
    item = (await review.case(held, ALI)).item
    assert (item.state, item.assignee_id) == (review_pb2.WORK_ITEM_STATE_QUEUED, "")


async def test_an_appeal_nobody_with_room_may_take_leaves_the_room_to_those_behind_it(
    review: Review,
) -> None:
    """E100, back with room for one, rejected the appeal at the head of a pushing queue: it is
    not theirs to take, and the item behind it is."""
    await review.put_reviewer("E100", capacity=1)
    appealed = await review.enqueue()
    assert await review.claim_next(ALI) == appealed
    await reject(review, appealed, ALI)
    await review.admin.SetAvailability(
        review_pb2.SetAvailabilityRequest(available=False), timeout=5, metadata=bearer(ALI)
    )
    await push_round_robin(review, "passports.default")
    await review.act(
        request_appealed=events_pb2.RequestAppealed(request_id=appealed, reason="It is recent")
    )
    review.clock.now += timedelta(minutes=1)
    behind = await review.enqueue()
    await review.admin.SetAvailability(
        review_pb2.SetAvailabilityRequest(available=True), timeout=5, metadata=bearer(ALI)
    )
    held = {i.request_id: i.assignee_id for i in await review.queue(ALI)}
    assert held == {appealed: "", behind: "E100"}


async def test_a_first_record_taking_a_reviewer_out_of_their_token_s_department_pushes_it_on(
    review: Review,
) -> None:
    """E200 had no record and worked passports by their token; their first record leaves
    passports out: what they held there goes back, and its pushing queue hands it on."""
    held = await review.enqueue()
    assert await review.claim_next(SARA, "passports") == held
    await push_round_robin(review, "passports.default")
    await review.put_reviewer("E100")
    await review.put_reviewer("E200", departments=("visas",))
    item = (await review.case(held)).item
    assert (item.state, item.assignee_id) == (review_pb2.WORK_ITEM_STATE_CLAIMED, "E100")


def paused_after_reading(
    review: Review, target: str, reads: int
) -> tuple[Callable[[], ReviewUnitOfWork], asyncio.Event, asyncio.Event]:
    """Units of work that hold a call once it has read `target`'s record `reads` times,
    before anything locks it: the event it sets, and the one that lets it go on."""
    read, go_on = asyncio.Event(), asyncio.Event()
    count = 0

    class Paused(ReviewUnitOfWork):
        async def __aenter__(self) -> Paused:
            await super().__aenter__()
            original = self.reviewers.get

            async def got(reviewer_id: str) -> Reviewer | None:
                nonlocal count
                record = await original(reviewer_id)
                count += reviewer_id == target
                if reviewer_id == target and count == reads:
                    read.set()
                    await go_on.wait()
                return record

            self.reviewers.get = got  # type: ignore[method-assign]
            return self

    return lambda: Paused(review.database), read, go_on


async def test_a_supervisor_s_put_beside_an_administrator_s_does_not_undo_it(
    review: Review,
) -> None:
    """The supervisor's put read E200's record as theirs to decide; an administrator's put of
    E200 into visas alone committed before its locks. Written over it, E200 was back in
    passports, on a record the supervisor could no longer change: ABORTED, and refused when
    tried again."""
    await review.put_reviewer("S001", supervises=("passports",))
    await review.put_reviewer("E200", capacity=3, caller=BOSS)
    units, read, go_on = paused_after_reading(review, "E200", reads=1)
    supervisor = Principal("S001", Role.REVIEWER, frozenset({"passports"}))
    wanted = Reviewer("E200", frozenset({"passports"}), frozenset({"ar"}), 5, True, frozenset())

    def put() -> Coroutine[Any, Any, Reviewer]:
        return handlers.put_reviewer(
            uow=units(), caller=supervisor, reviewer=wanted, policy=review.rules, now=START
        )

    putting = asyncio.create_task(put())
    await read.wait()
    await review.put_reviewer("E200", departments=("visas",))
    go_on.set()
    with pytest.raises(Conflict):
        await putting
    with pytest.raises(PermissionDenied):
        await put()
    assert [p[:4] for p in await recorded(review)][-1] == ("E200", ["visas"], True, [])


async def test_marking_oneself_away_beside_a_put_of_one_s_record_does_not_undo_it(
    review: Review,
) -> None:
    """E200 had no record: marking themselves away writes one from their token (passports
    and visas, deciding none). An administrator's record of visas alone committed between its
    read and its lock; written over it, E200 worked passports again."""
    units, read, go_on = paused_after_reading(review, "E200", reads=2)  # _me's, then its own
    marking = asyncio.create_task(
        handlers.set_availability(
            uow=units(),
            caller=Principal("E200", Role.REVIEWER, frozenset({"passports", "visas"})),
            reviewer_id="",
            available=False,
            policy=review.rules,
            now=START,
        )
    )
    await read.wait()
    await review.put_reviewer("E200", departments=("visas",))
    go_on.set()
    with pytest.raises(Conflict):
        await marking
    assert [p[:4] for p in await recorded(review)] == [("E200", ["visas"], True, [])]
    queued = await review.enqueue("passports")
    assert await review.claim_next(SARA) == ""
    assert await review.claim_next(ALI) == queued


async def test_a_queue_s_settings_push_only_the_queues_they_locked_before_the_reviewers(
    review: Review,
) -> None:
    """Another queue of the department began pushing (another put committed) between this
    put's read of the pushing queues and its locks: refilled here too, it was locked after the
    reviewers, where a push holding it and waiting for a reviewer deadlocks. That put refills it
    under its own lock."""
    await review.put_reviewer("E100")
    waiting = await review.enqueue()
    taken: list[tuple[str, str]] = []
    read, go_on = asyncio.Event(), asyncio.Event()

    class Recorded(ReviewUnitOfWork):
        async def __aenter__(self) -> Recorded:
            await super().__aenter__()
            queues, reviewers = self.queues, self.reviewers
            pushing, lock_queues, lock_reviewers = queues.pushing, queues.lock, reviewers.lock

            async def paused(departments: Any) -> Any:
                modes = await pushing(departments)
                if not read.is_set():
                    read.set()
                    await go_on.wait()
                return modes

            async def queue_locks(*names: str) -> None:
                taken.extend(("queue", n) for n in names)
                await lock_queues(*names)

            async def reviewer_locks(*names: str) -> None:
                taken.extend(("reviewer", n) for n in names)
                await lock_reviewers(*names)

            queues.pushing = paused  # type: ignore[method-assign]
            queues.lock = queue_locks  # type: ignore[method-assign]
            reviewers.lock = reviewer_locks  # type: ignore[method-assign]
            return self

    putting = asyncio.create_task(
        handlers.put_queue_settings(
            uow=Recorded(review.database),
            caller=Principal(ADMIN_ID, Role.REVIEWER, frozenset()),
            queue="passports.default",
            mode=Mode.ROUND_ROBIN,
            policy=review.rules,
            now=START,
        )
    )
    await read.wait()
    async with review.engine.begin() as conn:
        await conn.execute(
            sql("UPDATE work_items SET queue = 'passports.urgent' WHERE request_id = :r"),
            {"r": waiting},
        )
        await conn.execute(
            sql(
                "INSERT INTO queue_settings (queue, mode)"
                " VALUES ('passports.urgent', 'round_robin')"
            )
        )
    go_on.set()
    await putting
    first_reviewer = next(i for i, (kind, _) in enumerate(taken) if kind == "reviewer")
    before = set(taken[:first_reviewer])
    assert [t for t in taken[first_reviewer:] if t[0] == "queue" and t not in before] == []


@pytest.mark.parametrize("paused_at", ["its lock", "its pick"])
async def test_a_claim_next_beside_a_put_taking_the_reviewer_out_leaves_them_nothing_there(
    review: Review, paused_at: str
) -> None:
    """Paused before it takes the reviewer's lock, the claim reads the record the put leaves;
    paused after, it holds the lock, and the put, waiting for it, gives back what it claimed."""
    await review.put_reviewer("E200", departments=("passports", "visas"))
    waiting = await review.enqueue()
    paused, go_on = asyncio.Event(), asyncio.Event()

    class Paused(ReviewUnitOfWork):
        async def __aenter__(self) -> Paused:
            await super().__aenter__()
            repository: Any = self.reviewers if paused_at == "its lock" else self.items
            name = "lock" if paused_at == "its lock" else "next_queued"
            original = getattr(repository, name)

            async def held(*args: Any, **kwargs: Any) -> Any:
                paused.set()
                await go_on.wait()
                return await original(*args, **kwargs)

            setattr(repository, name, held)
            return self

    claiming = asyncio.create_task(
        handlers.claim_next(
            uow=Paused(review.database),
            reviewer=Principal("E200", Role.REVIEWER, frozenset({"passports", "visas"})),
            department="",
            policy=review.rules,
            now=review.clock.now,
        )
    )
    await paused.wait()
    putting = asyncio.create_task(review.put_reviewer("E200", departments=("visas",)))
    if paused_at == "its lock":
        await putting
    else:
        await eventually(
            lambda: lock_waiter(review), what="the put waiting for the claim's lock on the reviewer"
        )
    go_on.set()
    claimed = await claiming
    await putting
    item = (await review.case(waiting)).item
    assert (item.state, item.assignee_id) == (review_pb2.WORK_ITEM_STATE_QUEUED, "")
    assert (claimed and str(claimed.request_id)) == (waiting if paused_at == "its pick" else None)


async def recorded(review: Review) -> list[tuple[str, list[str], bool, list[str], int]]:
    """Review's published records: reviewer, departments, decides all, scope, version."""
    return [
        (r.reviewer_id, list(r.departments), r.decides_all, list(r.scope), r.version)
        for r in (e.reviewer_recorded for e in await review.outbox(STAFF_REVIEWERS))
    ]


async def test_each_change_of_a_record_is_published_for_docs_and_notify(review: Review) -> None:
    await review.put_reviewer("S001", supervises=("passports",))
    await review.put_reviewer("E200", caller=BOSS)
    await review.admin.SetAvailability(
        review_pb2.SetAvailabilityRequest(reviewer_id="E200", available=False),
        timeout=5,
        metadata=bearer(BOSS),
    )
    await review.put_reviewer("E200", departments=("visas",))
    published = await recorded(review)
    assert [p[:4] for p in published] == [
        ("S001", ["passports"], True, []),
        # The supervisor decides passports only: E200's visas stay their token's.
        ("E200", ["passports"], False, ["passports"]),
        ("E200", ["passports"], False, ["passports"]),
        ("E200", ["visas"], True, []),
    ]
    versions = [p[4] for p in published[1:]]
    assert versions == sorted(set(versions)), "each change of E200 a later version"


async def test_a_restored_database_still_publishes_versions_past_the_last_published(
    review: Review,
) -> None:
    """Docs and notify ignore a version no later than one they keep: a review database put
    back to an older backup must not publish versions they already saw."""
    await review.put_reviewer("E300", departments=("visas",))
    await review.put_reviewer("E300")
    (_, first), (_, second) = [(p[1], p[4]) for p in await recorded(review)]
    async with review.engine.begin() as conn:
        await conn.execute(sql("UPDATE reviewers SET version = :v"), {"v": first})
    await review.put_reviewer("E300", departments=("visas",))
    assert (await recorded(review))[-1][4] > second


async def test_records_written_before_they_were_published_are_announced_once(
    review: Review,
) -> None:
    await review.put_reviewer("E300", departments=("visas",))
    async with review.engine.begin() as conn:
        await conn.execute(sql("UPDATE reviewers SET version = 0"))
    for _ in range(2):
        await handlers.announce_reviewers(uow=review.uow())
    announced = (await recorded(review))[1:]
    assert [p[:2] for p in announced] == [("E300", ["visas"])]
    await review.put_reviewer("E300")
    latest = (await recorded(review))[-1]
    assert latest[1] == ["passports"]
    assert latest[4] > announced[0][4] > 0


# --- bad input ----------------------------------------------------------------------------


async def invalid(call: Awaitable[object]) -> dict[str, str]:
    error = await refused(call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    return field_violations(error)


async def test_bad_input_is_invalid_argument_field_by_field(review: Review) -> None:
    item = await review.enqueue()
    await review.claim_next(ALI)
    outbox = len(await review.outbox(REQUEST_STATUS_CHANGED))
    stub, me = review.stub, bearer(ALI)
    for garbage in ("", "not-a-uuid", "x" * 100_000, "'; DROP TABLE work_items; --"):
        assert set(
            await invalid(
                stub.GetCase(review_pb2.GetCaseRequest(request_id=garbage), timeout=5, metadata=me)
            )
        ) == {"request_id"}
        assert set(
            await invalid(
                stub.ClaimRequest(
                    review_pb2.ClaimRequestRequest(request_id=garbage), timeout=5, metadata=me
                )
            )
        ) == {"request_id"}
    # A well-formed token but for its rank, written in Arabic-Indic digits.
    arabic_rank = base64.urlsafe_b64encode(
        json.dumps(["٣", "2026-01-04T07:00:00+00:00", "TW482913578"]).encode()
    ).decode()
    for page_token in ("garbage!", "e30=", "W10=", "x" * 100_000, "WzEsMiwzXQ==", arabic_rank):
        assert set(
            await invalid(
                stub.ListQueue(
                    review_pb2.ListQueueRequest(department_code="passports", page_token=page_token),
                    timeout=5,
                    metadata=me,
                )
            )
        ) == {"page_token"}, page_token
    assert set(
        await invalid(
            stub.ListQueue(
                review_pb2.ListQueueRequest(
                    department_code="passports",
                    state=review_pb2.WorkItemState.ValueType(99),
                ),
                timeout=5,
                metadata=me,
            )
        )
    ) == {"state"}
    assert set(
        await invalid(
            stub.ListQueue(
                review_pb2.ListQueueRequest(department_code="passports", page_size=-1),
                timeout=5,
                metadata=me,
            )
        )
    ) == {"page_size"}
    # Past review's own cap, the domain says so; past the platform's, it never gets there.
    for huge, problem in (("ضخم" * 1_000, "at most 2000 characters"), ("ضخم" * 50_000, TOO_LONG)):
        error = await refused(
            stub.AddNote(
                review_pb2.AddNoteRequest(request_id=item, text=huge), timeout=5, metadata=me
            )
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(error) == {"text": problem}
        assert huge[:30] not in (error.details() or "")
    assert await invalid(
        stub.MessageApplicant(
            review_pb2.MessageApplicantRequest(request_id=item, text="\x1b[31mred"),
            timeout=5,
            metadata=me,
        )
    ) == {"text": CONTROL}
    assert set(
        await invalid(
            stub.RequestInformation(
                review_pb2.RequestInformationRequest(
                    request_id=item,
                    missing=[
                        MISSING_PHOTO,
                        common_pb2.MissingItem(kind="photo", name="", description="Add it"),
                        common_pb2.MissingItem(kind="", name="x" * 101, description=""),
                    ],
                ),
                timeout=5,
                metadata=me,
            )
        )
    ) == {
        "missing[1].kind",
        "missing[1].name",
        "missing[2].kind",
        "missing[2].name",
        "missing[2].description",
    }
    assert set(
        await invalid(
            stub.RequestInformation(
                review_pb2.RequestInformationRequest(request_id=item), timeout=5, metadata=me
            )
        )
    ) == {"missing"}
    assert set(
        await invalid(
            stub.RequestInformation(
                review_pb2.RequestInformationRequest(
                    request_id=item, missing=[MISSING_PHOTO], respond_within_working_days=31
                ),
                timeout=5,
                metadata=me,
            )
        )
    ) == {"respond_within_working_days"}
    assert set(
        await invalid(
            stub.RequestInformation(
                review_pb2.RequestInformationRequest(request_id=item, missing=[MISSING_PHOTO] * 25),
                timeout=5,
                metadata=me,
            )
        )
    ) == {"missing"}
    for decide, fields in (
        (review_pb2.DecideRequestRequest(request_id=item), {"decision"}),
        (
            review_pb2.DecideRequestRequest(request_id=item, decision=review_pb2.DECISION_REJECT),
            {"message"},
        ),
        (
            review_pb2.DecideRequestRequest(
                request_id=item,
                decision=review_pb2.DECISION_REJECT,
                message="The photo is not clear",
            ),
            {"reason_code"},
        ),
        (
            review_pb2.DecideRequestRequest(
                request_id=item,
                decision=review_pb2.DECISION_REJECT,
                message="The photo is not clear",
                reason_code="x" * 10_000,
            ),
            {"reason_code"},
        ),
    ):
        assert set(await invalid(stub.DecideRequest(decide, timeout=5, metadata=me))) == fields
    (still,) = await review.queue()
    assert (still.state, still.assignee_id) == (review_pb2.WORK_ITEM_STATE_CLAIMED, "E100")
    assert len(await review.outbox(REQUEST_STATUS_CHANGED)) == outbox


async def test_text_a_reader_cannot_see_is_refused_where_text_is_required(review: Review) -> None:
    request_id = await review.enqueue()
    assert await review.claim_next(ALI) == request_id
    stub, unseen = review.stub, "\u200b\u200f\u2060\u3164" * 5
    calls: list[tuple[Callable[..., Awaitable[object]], object, str]] = [
        (
            stub.DecideRequest,
            review_pb2.DecideRequestRequest(
                request_id=request_id,
                decision=review_pb2.DECISION_REJECT,
                message="\u200b" * 10,
                reason_code="documents-unclear",
            ),
            "message",
        ),
        (stub.AddNote, review_pb2.AddNoteRequest(request_id=request_id, text=unseen), "text"),
        (
            stub.TransferRequest,
            review_pb2.TransferRequestRequest(
                request_id=request_id, department_code="visas", reason=unseen
            ),
            "reason",
        ),
        (
            stub.RequestInformation,
            review_pb2.RequestInformationRequest(
                request_id=request_id,
                missing=[common_pb2.MissingItem(kind="document", name=unseen, description="x")],
            ),
            "missing[0].name",
        ),
    ]
    for method, request, field in calls:
        assert list(await invalid(method(request, timeout=5, metadata=bearer(ALI)))) == [field]
    (item,) = await review.queue()
    assert item.state == review_pb2.WORK_ITEM_STATE_CLAIMED


async def test_bad_reviewer_records_are_invalid_argument(review: Review) -> None:
    for reviewer, fields in (
        (
            review_pb2.Reviewer(
                reviewer_id="R1", departments=["passports"], languages=["ar"], capacity=1000
            ),
            {"reviewer.capacity"},
        ),
        (
            review_pb2.Reviewer(
                reviewer_id="R1", departments=["passports"], languages=["ar"], capacity=-1
            ),
            {"reviewer.capacity"},
        ),
        (
            review_pb2.Reviewer(reviewer_id="bad id!", departments=["passports"], languages=["ar"]),
            {"reviewer.reviewer_id"},
        ),
        (
            # Line breaks pass the platform (free text has them); identifiers refuse them.
            review_pb2.Reviewer(reviewer_id="R1\n", departments=["passports"], languages=["ar\n"]),
            {"reviewer.reviewer_id", "reviewer.languages"},
        ),
        (
            review_pb2.Reviewer(reviewer_id="R1", departments=["nowhere"], languages=["ar"]),
            {"reviewer.departments"},
        ),
        (
            review_pb2.Reviewer(reviewer_id="R1", departments=["passports"], languages=["arabic"]),
            {"reviewer.languages"},
        ),
        (
            review_pb2.Reviewer(
                reviewer_id="R1", departments=["passports"], languages=["ar"], supervises=["visas"]
            ),
            {"reviewer.supervises"},
        ),
        (
            # Refused by the platform before review's own checks name the empty lists.
            review_pb2.Reviewer(reviewer_id="x" * 100_000),
            {"reviewer.reviewer_id"},
        ),
    ):
        error = await refused(
            review.admin.PutReviewer(
                review_pb2.PutReviewerRequest(reviewer=reviewer), timeout=5, metadata=bearer(ADMIN)
            )
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(field_violations(error)) == fields
    listed = await review.admin.ListReviewers(
        review_pb2.ListReviewersRequest(department_code="passports"),
        timeout=5,
        metadata=bearer(ADMIN),
    )
    assert list(listed.reviewers) == []


# --- bugs: bad input that reaches PostgreSQL and comes back INTERNAL ------------------------

# A NUL is valid in a protobuf string (valid UTF-8), but PostgreSQL text and jsonb refuse it.
NUL = "pass\x00ports"


def page_token(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


async def empty_or_invalid(call: Awaitable[Any], field: str) -> None:
    """Not INTERNAL: an empty answer (nothing matches) or INVALID_ARGUMENT naming the field."""
    try:
        answer = await call
    except grpc.aio.AioRpcError as error:
        failure: grpc.aio.AioRpcError | None = error
    else:
        failure = None
    if failure is not None:
        assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT, failure.code()
        assert field in field_violations(failure)
    else:
        assert list(answer.items if hasattr(answer, "items") else answer.reviewers) == []


@pytest.mark.parametrize("field", ["sub_service_code", "assignee_id"])
async def test_a_nul_in_a_queue_filter_is_not_internal(review: Review, field: str) -> None:
    await review.enqueue()
    await empty_or_invalid(
        review.stub.ListQueue(
            review_pb2.ListQueueRequest(
                department_code="passports",
                sub_service_code=NUL if field == "sub_service_code" else "",
                assignee_id=NUL if field == "assignee_id" else "",
            ),
            timeout=5,
            metadata=bearer(ALI),
        ),
        field,
    )


@pytest.mark.parametrize(
    "raw",
    [
        '[1e400, "2026-01-04T10:00:00+03:00", "TW000000001"]',
        '[100000000000000000000, "2026-01-04T10:00:00+03:00", "TW000000001"]',
        '[0, "0001-01-01T00:00:00+03:00", "TW000000001"]',
        '[0, "9999-12-31T23:59:59-12:00", "TW000000001"]',
        '[0, "2026-01-04T10:00:00+03:00", "TW\\u0000"]',
    ],
    ids=["infinite-rank", "rank-beyond-int64", "year-0-in-utc", "year-10000-in-utc", "nul"],
)
async def test_a_forged_page_token_is_invalid_argument(review: Review, raw: str) -> None:
    await review.enqueue()
    assert set(
        await invalid(
            review.stub.ListQueue(
                review_pb2.ListQueueRequest(
                    department_code="passports", page_token=page_token(raw)
                ),
                timeout=5,
                metadata=bearer(ALI),
            )
        )
    ) == {"page_token"}


@pytest.mark.parametrize("caller", [ADMIN, ALI], ids=["admin", "reviewer"])
async def test_set_availability_of_a_nul_reviewer_id_is_not_internal(
    review: Review, caller: str
) -> None:
    error = await refused(
        review.admin.SetAvailability(
            review_pb2.SetAvailabilityRequest(reviewer_id=NUL), timeout=5, metadata=bearer(caller)
        )
    )
    assert error.code() in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
    ), error.code()


async def test_reviewers_of_a_nul_department_are_not_internal(review: Review) -> None:
    await empty_or_invalid(
        review.admin.ListReviewers(
            review_pb2.ListReviewersRequest(department_code=NUL),
            timeout=5,
            metadata=bearer(ADMIN),
        ),
        "department_code",
    )


async def test_a_nul_in_the_missing_list_is_invalid_argument(review: Review) -> None:
    item = await review.enqueue()
    await review.claim_next(ALI)
    assert set(
        await invalid(
            review.stub.RequestInformation(
                review_pb2.RequestInformationRequest(
                    request_id=item,
                    missing=[
                        common_pb2.MissingItem(
                            kind="document", name="photo\x00", description="A photo\x00"
                        )
                    ],
                ),
                timeout=5,
                metadata=bearer(ALI),
            )
        )
    ) == {"missing[0].name", "missing[0].description"}


async def test_concurrent_claims_of_one_reviewer_keep_to_the_capacity(review: Review) -> None:
    await review.put_reviewer("E100", capacity=1)
    for _ in range(20):
        await review.enqueue()
    results = await asyncio.gather(
        *(review.claim_next(ALI) for _ in range(20)), return_exceptions=True
    )
    claimed = [r for r in results if isinstance(r, str) and r]
    refusals = {r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)}
    assert refusals <= {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert len(claimed) == 1
    assert [i.assignee_id for i in await review.queue()].count("E100") == 1


async def round_robin(review: Review, queue: str = "visas.default") -> None:
    await review.admin.PutQueueSettings(
        review_pb2.PutQueueSettingsRequest(
            settings=review_pb2.QueueSettings(
                queue=queue, mode=review_pb2.ASSIGNMENT_MODE_ROUND_ROBIN
            )
        ),
        timeout=5,
        metadata=bearer(ADMIN),
    )


async def held(review: Review, reviewer_id: str) -> int:
    async with review.engine.connect() as conn:
        count = await conn.scalar(
            select(sql("count(*)"))
            .select_from(tables.work_items)
            .where(
                (tables.work_items.c.state == "claimed")
                & (tables.work_items.c.assignee == reviewer_id)
            )
        )
    return int(count or 0)


async def test_a_poll_pushes_a_reviewer_no_more_than_their_capacity(review: Review) -> None:
    await review.put_reviewer("E200", departments=("passports", "visas"), capacity=2)
    await round_robin(review)
    pushed = [review.routed("visas") for _ in range(4)]
    await review.subscriptions.deliver(
        REQUEST_ROUTED, *(routed_event(str(uuid.uuid4()), item) for item in pushed)
    )
    assert await held(review, "E200") == 2
    states = Counter(i.state for i in await review.queue(SARA, "visas"))
    assert states == {review_pb2.WORK_ITEM_STATE_CLAIMED: 2, review_pb2.WORK_ITEM_STATE_QUEUED: 2}


async def backend(uow: ReviewUnitOfWork) -> int:
    return int(await uow.session.scalar(sql("SELECT pg_backend_pid()")) or 0)


async def lock_waits(review: Review, blocker: int) -> int | None:
    """How many backends wait for a lock the `blocker` backend holds: a wait of anything else
    on the server (another test's, a background job's) must not count."""
    async with review.engine.connect() as conn:
        waits = await conn.scalar(
            sql("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
            {"pid": blocker},
        )
    return waits or None


async def while_claiming(review: Review, reviewer: str, other: Awaitable[T]) -> T | BaseException:
    """Runs `other` while `reviewer`'s claim of a queued passports item is under way: holding
    their lock, claimed, not yet committed; it commits once `other` finished or waits."""
    me = Principal(reviewer, Role.REVIEWER, frozenset({"passports"}))
    queued = uuid.UUID(await review.enqueue())
    task: asyncio.Task[T] | None = None
    async with review.uow() as claiming:
        await claiming.reviewers.lock(reviewer)
        item = await claiming.items.get(queued, for_update=True)
        assert item is not None
        item.claim(me, review.clock.now, LEASE)
        await claiming.items.flush()
        pid = await backend(claiming)
        task = asyncio.ensure_future(other)

        async def done_or_waiting() -> bool | None:
            return True if task.done() or await lock_waits(review, pid) else None

        await eventually(done_or_waiting, within=10, what="the other to finish or wait")
        await claiming.commit()
    results = await asyncio.gather(task, return_exceptions=True)
    return results[0]


async def test_a_push_during_a_claim_keeps_to_the_capacity(review: Review) -> None:
    await review.put_reviewer("E200", departments=("passports", "visas"), capacity=1)
    await round_robin(review)
    pushed = review.routed("visas")
    await while_claiming(
        review,
        "E200",
        handlers.enqueue(
            uow=review.uow(),
            routed=[(str(uuid.uuid4()), pushed)],
            policy=review.rules,
            now=review.clock.now,
        ),
    )
    assert await held(review, "E200") == 1
    (left,) = await review.queue(SARA, "visas")
    assert (left.state, left.assignee_id) == (review_pb2.WORK_ITEM_STATE_QUEUED, "")


async def test_a_reassignment_keeps_to_the_reviewers_capacity(review: Review) -> None:
    await review.put_reviewer("S001", supervises=("passports",))
    await review.put_reviewer("E200", capacity=1)
    given = await review.enqueue()

    async def reassign() -> review_pb2.ReassignResponse:
        # A coroutine, not the call: a gRPC call starts when made, and made before the claim
        # it could take the reviewer's lock first (it did, once, on a busy machine).
        answer: review_pb2.ReassignResponse = await review.stub.Reassign(
            review_pb2.ReassignRequest(request_id=given, reviewer_id="E200"),
            timeout=10,
            metadata=bearer(BOSS),
        )
        return answer

    # During a claim of theirs that fills it, and after.
    outcome = await while_claiming(review, "E200", reassign())
    assert isinstance(outcome, grpc.aio.AioRpcError)
    assert outcome.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "capacity" in (outcome.details() or "")
    full = await refused(reassign())
    assert full.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await held(review, "E200") == 1
    # The one they hold may be given to them again (the lease renewed), and another reviewer
    # with room takes the item.
    (mine,) = [i.request_id for i in await review.queue(assignee="E200")]
    await review.stub.Reassign(
        review_pb2.ReassignRequest(request_id=mine, reviewer_id="E200"),
        timeout=5,
        metadata=bearer(BOSS),
    )
    await review.put_reviewer("E100", capacity=1)
    answer = await review.stub.Reassign(
        review_pb2.ReassignRequest(request_id=given, reviewer_id="E100"),
        timeout=5,
        metadata=bearer(BOSS),
    )
    assert answer.item.assignee_id == "E100"


async def test_pushes_claims_and_reassignments_at_once_keep_every_reviewer_within_capacity(
    review: Review,
) -> None:
    await review.put_reviewer("S001", supervises=("passports",))
    reviewers = {"E100": ALI, "E200": SARA, "E300": token("E300", "passports")}
    for reviewer_id in reviewers:
        await review.put_reviewer(reviewer_id, capacity=3)
    await round_robin(review, "passports.default")
    # Pushed two to each reviewer: the supervisor gives them around while more arrive.
    waiting = [await review.enqueue() for _ in range(6)]

    async def poll() -> None:
        items = [review.routed() for _ in range(3)]
        await handlers.enqueue(
            uow=review.uow(),
            routed=[(str(uuid.uuid4()), item) for item in items],
            policy=review.rules,
            now=review.clock.now,
        )

    async def reassign(request_id: str, reviewer_id: str) -> None:
        await review.stub.Reassign(
            review_pb2.ReassignRequest(request_id=request_id, reviewer_id=reviewer_id),
            timeout=10,
            metadata=bearer(BOSS),
        )

    calls: list[Awaitable[object]] = [poll() for _ in range(8)]
    calls += [review.claim_next(who) for who in reviewers.values() for _ in range(4)]
    calls += [reassign(r, who) for r in waiting for who in reviewers]
    await race(calls, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION)
    assert [await held(review, r) for r in reviewers] == [3, 3, 3]


# --- pushing again what is freed ----------------------------------------------------------


E300 = token("E300", "passports")


async def decide(review: Review, item: str, who: str) -> review_pb2.DecideRequestResponse:
    return await review.stub.DecideRequest(
        review_pb2.DecideRequestRequest(request_id=item, decision=review_pb2.DECISION_ACCEPT),
        timeout=10,
        metadata=bearer(who),
    )


async def race(calls: list[Awaitable[object]], *refusals: grpc.StatusCode) -> None:
    """Runs the calls at once; each ends well or with one of the expected `refusals`."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    unexpected = [
        r
        for r in results
        if isinstance(r, BaseException)
        and not (isinstance(r, grpc.aio.AioRpcError) and r.code() in refusals)
    ]
    assert unexpected == []


async def reject(review: Review, item: str, who: str) -> review_pb2.DecideRequestResponse:
    """Rejects for unclear documents, telling the beneficiary the photo is not clear."""
    return await review.stub.DecideRequest(
        review_pb2.DecideRequestRequest(
            request_id=item,
            decision=review_pb2.DECISION_REJECT,
            message="The attached photo is not clear",
            reason_code="documents-unclear",
        ),
        timeout=10,
        metadata=bearer(who),
    )


async def release(review: Review, item: str, who: str) -> review_pb2.ReleaseRequestResponse:
    return await review.stub.ReleaseRequest(
        review_pb2.ReleaseRequestRequest(request_id=item), timeout=10, metadata=bearer(who)
    )


async def holders(review: Review) -> dict[str, str]:
    """Each open passports item's holder ("" for one waiting)."""
    return {i.request_id: i.assignee_id for i in await review.queue()}


async def test_a_lapsed_claim_of_a_pushing_queue_is_pushed_to_a_reviewer_with_room(
    review: Review,
) -> None:
    await review.put_reviewer("E100", capacity=1)
    await round_robin(review, "passports.default")
    item = await review.enqueue()
    await review.put_reviewer("E300", capacity=1)
    assert await holders(review) == {item: "E100"}
    review.clock.now += LEASE + timedelta(minutes=1)
    await review.sweep()
    (pushed,) = await review.queue()
    assert (pushed.request_id, pushed.assignee_id) == (item, "E300")
    assert at(pushed.claimed_until) == review.clock.now + LEASE


async def test_a_released_item_of_a_pushing_queue_is_pushed_to_a_reviewer_with_room(
    review: Review,
) -> None:
    for reviewer_id in ("E100", "E200", "E300"):
        await review.put_reviewer(reviewer_id, capacity=1)
    await round_robin(review, "passports.default")
    first, second = await review.enqueue(), await review.enqueue()
    assert await holders(review) == {first: "E100", second: "E200"}
    await release(review, first, ALI)
    assert await holders(review) == {first: "E300", second: "E200"}


async def test_an_item_let_go_is_not_pushed_straight_back_to_who_let_it_go(
    review: Review,
) -> None:
    """A release, a lapse or a supervisor's putting it back means the holder is not the one
    to work it now: the push gives it to another reviewer with room, and the holder's room to
    what else waits; with nobody else, it waits for a claim."""
    await review.put_reviewer("S001", supervises=("passports",))
    await available(review, BOSS, False)
    await review.put_reviewer("E100", capacity=1)
    await round_robin(review, "passports.default")
    first, second = await review.enqueue(), await review.enqueue()
    assert await holders(review) == {first: "E100", second: ""}
    await release(review, first, ALI)
    assert await holders(review) == {first: "", second: "E100"}

    # E100's lease of `second` runs out while E200 is full and `third` waits.
    review.clock.now += LEASE + timedelta(minutes=1)
    await review.put_reviewer("E200", capacity=1)
    third = await review.enqueue()
    assert await holders(review) == {first: "E200", second: "E100", third: ""}
    await review.sweep()
    assert await holders(review) == {first: "E200", second: "", third: "E100"}

    # Put back by the supervisor: the same (what E100 let go before is another's matter).
    await review.stub.Reassign(
        review_pb2.ReassignRequest(request_id=third, reviewer_id=""),
        timeout=5,
        metadata=bearer(BOSS),
    )
    assert await holders(review) == {first: "E200", second: "E100", third: ""}


async def test_a_decision_that_frees_capacity_pushes_the_next_waiting_item(
    review: Review,
) -> None:
    await review.put_reviewer("E100", capacity=1)
    await round_robin(review, "passports.default")
    first, second, third = [await review.enqueue() for _ in range(3)]
    assert await holders(review) == {first: "E100", second: "", third: ""}
    await decide(review, first, ALI)
    assert await holders(review) == {second: "E100", third: ""}
    (pushed,) = await review.queue(assignee="E100")
    assert at(pushed.claimed_until) == review.clock.now + LEASE


async def available(review: Review, who: str, yes: bool) -> None:
    await review.admin.SetAvailability(
        review_pb2.SetAvailabilityRequest(available=yes), timeout=10, metadata=bearer(who)
    )


async def test_an_answer_returned_to_a_pushing_queue_is_pushed_to_a_reviewer_with_room(
    review: Review,
) -> None:
    for reviewer_id in ("E100", "E300"):
        await review.put_reviewer(reviewer_id, capacity=1)
    await round_robin(review, "passports.default")
    item = await review.enqueue()
    assert await holders(review) == {item: "E100"}
    await request_information(review, item)
    await available(review, ALI, False)
    await review.answered(item)
    assert await holders(review) == {item: "E300"}


async def test_a_reassignment_away_pushes_the_next_waiting_item_to_the_freed_reviewer(
    review: Review,
) -> None:
    # The supervisor takes no work of the queue's.
    await review.put_reviewer("S001", supervises=("passports",), capacity=0)
    for reviewer_id in ("E100", "E300"):
        await review.put_reviewer(reviewer_id, capacity=1)
    await available(review, E300, False)
    await round_robin(review, "passports.default")
    first, second = await review.enqueue(), await review.enqueue()
    assert await holders(review) == {first: "E100", second: ""}
    await review.stub.Reassign(
        review_pb2.ReassignRequest(request_id=first, reviewer_id="E300"),
        timeout=10,
        metadata=bearer(BOSS),
    )
    assert await holders(review) == {first: "E300", second: "E100"}


async def test_a_reviewer_back_from_away_is_pushed_what_waits(review: Review) -> None:
    for reviewer_id in ("E100", "E300"):
        await review.put_reviewer(reviewer_id, capacity=1)
    await available(review, E300, False)
    await round_robin(review, "passports.default")
    first, second = await review.enqueue(), await review.enqueue()
    assert await holders(review) == {first: "E100", second: ""}
    await available(review, E300, True)
    assert await holders(review) == {first: "E100", second: "E300"}


async def test_a_cancelled_claim_frees_its_reviewer_for_the_next_waiting_item(
    review: Review,
) -> None:
    await review.put_reviewer("E100", capacity=1)
    await round_robin(review, "passports.default")
    first, second = await review.enqueue(), await review.enqueue()
    assert await holders(review) == {first: "E100", second: ""}
    await review.cancelled(first, "I no longer need it")
    assert await holders(review) == {second: "E100"}


async def test_a_queue_switched_to_pushing_pushes_what_waits_in_it(review: Review) -> None:
    await review.put_reviewer("E100", capacity=2)
    first, second, third = [await review.enqueue() for _ in range(3)]
    assert await holders(review) == {first: "", second: "", third: ""}
    await round_robin(review, "passports.default")
    assert await holders(review) == {first: "E100", second: "E100", third: ""}


async def test_decisions_releases_claims_and_polls_at_once_keep_pushed_reviewers_full_not_over(
    review: Review,
) -> None:
    reviewers = {"E100": ALI, "E200": SARA, "E300": E300}
    for reviewer_id in reviewers:
        await review.put_reviewer(reviewer_id, capacity=2)
    await round_robin(review, "passports.default")
    for _ in range(12):
        await review.enqueue()
    held_now = {r: [i.request_id for i in await review.queue(assignee=r)] for r in reviewers}
    assert [len(h) for h in held_now.values()] == [2, 2, 2]

    async def poll() -> None:
        items = [review.routed() for _ in range(2)]
        await handlers.enqueue(
            uow=review.uow(),
            routed=[(str(uuid.uuid4()), item) for item in items],
            policy=review.rules,
            now=review.clock.now,
        )

    calls: list[Awaitable[object]] = [poll() for _ in range(3)]
    calls += [decide(review, held_now[r][0], who) for r, who in reviewers.items()]
    calls += [release(review, held_now[r][1], who) for r, who in reviewers.items()]
    calls += [review.claim_next(who) for who in reviewers.values()]
    calls += [review.sweep()]
    await race(calls, grpc.StatusCode.RESOURCE_EXHAUSTED)
    # Twelve items and six more, three decided: fifteen open, six held, every slot taken again.
    assert [await held(review, r) for r in reviewers] == [2, 2, 2]
    assert len(await review.queue()) == 15


async def test_every_push_at_once_over_queues_and_departments_neither_deadlocks_nor_overfills(
    review: Review,
) -> None:
    # Two pushing queues in passports, one in visas; E200 works in both departments.
    await review.put_reviewer("S001", supervises=("passports",), capacity=0)
    reviewers = {"E100": ALI, "E200": SARA, "E300": E300, "E400": token("E400", "visas")}
    for reviewer_id in reviewers:
        departments = {"E200": ("passports", "visas"), "E400": ("visas",)}
        await review.put_reviewer(
            reviewer_id, departments=departments.get(reviewer_id, ("passports",)), capacity=2
        )
    await round_robin(review, "passports.default")
    await round_robin(review, "visas.default")

    def least_loaded() -> Awaitable[object]:
        return cast(
            Awaitable[object],
            review.admin.PutQueueSettings(
                review_pb2.PutQueueSettingsRequest(
                    settings=review_pb2.QueueSettings(
                        queue="passports.vip", mode=review_pb2.ASSIGNMENT_MODE_LEAST_LOADED
                    )
                ),
                timeout=20,
                metadata=bearer(ADMIN),
            ),
        )

    await least_loaded()

    def arrivals() -> list[WorkItem]:
        vip = review.routed()
        vip.queue = "passports.vip"
        return [review.routed(), vip, review.routed("visas")]

    async def poll() -> None:
        await handlers.enqueue(
            uow=review.uow(),
            routed=[(str(uuid.uuid4()), item) for item in arrivals()],
            policy=review.rules,
            now=review.clock.now,
        )

    for _ in range(4):
        await poll()
    # E100 asks a beneficiary for more and rejects another; both come back during the rest.
    asked, rejected = [i.request_id for i in await review.queue(assignee="E100")]
    await request_information(review, asked)
    await reject(review, rejected, ALI)
    held_now: dict[str, list[str]] = {}
    for reviewer_id in reviewers:
        mine = [i.request_id for i in await review.queue(assignee=reviewer_id)]
        mine += [i.request_id for i in await review.queue(SARA, "visas", assignee=reviewer_id)]
        held_now[reviewer_id] = mine
    assert [len(h) for h in held_now.values()] == [2, 2, 2, 2]
    waiting = [i.request_id for i in await review.queue() if not i.assignee_id]

    async def reassign(request_id: str, reviewer_id: str) -> None:
        await review.stub.Reassign(
            review_pb2.ReassignRequest(request_id=request_id, reviewer_id=reviewer_id),
            timeout=20,
            metadata=bearer(BOSS),
        )

    calls: list[Awaitable[object]] = [poll() for _ in range(4)]
    calls += [decide(review, held_now[r][0], who) for r, who in reviewers.items()]
    calls += [release(review, held_now[r][1], who) for r, who in reviewers.items()]
    calls += [review.claim_next(who) for who in reviewers.values()]
    calls += [available(review, who, True) for who in reviewers.values()]
    calls += [reassign(waiting[0], "E300"), reassign(held_now["E300"][1], "")]
    calls += [review.answered(asked)]
    calls += [review.act(request_appealed=events_pb2.RequestAppealed(request_id=rejected))]
    calls += [review.sweep(), least_loaded(), round_robin(review, "visas.default")]
    await race(calls, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION)
    # Items wait in every queue: whatever was freed was taken again, and never past capacity.
    assert [await held(review, r) for r in reviewers] == [2, 2, 2, 2]


async def test_a_claim_caught_in_a_deadlock_is_aborted_not_an_internal_error(
    review: Review,
) -> None:
    # A poll of the beneficiaries' actions is one transaction: an answer returns an item to
    # E100 (their lock), then an appeal takes another item, the one E100 is claiming (which
    # holds it and waits for their lock). PostgreSQL ends one of the two: the claim, which
    # waited first. Its caller may try again; nothing is broken.
    await review.put_reviewer("E100")
    claimed = await review.enqueue()
    async with review.uow() as poll:
        await poll.reviewers.lock("E100")
        pid = await backend(poll)
        claiming = asyncio.ensure_future(
            review.stub.ClaimRequest(
                review_pb2.ClaimRequestRequest(request_id=claimed),
                timeout=10,
                metadata=bearer(ALI),
            )
        )
        await eventually(lambda: lock_waits(review, pid), within=10, what="the claim to wait")
        # Each waiter looks for a deadlock once it has waited a second: the claim, well first.
        await asyncio.sleep(0.5)
        await poll.items.get(uuid.UUID(claimed), for_update=True)
    error = await refused(claiming)
    assert error.code() == grpc.StatusCode.ABORTED
    assert "try" in (error.details() or "")
    # Tried again, it goes through.
    answer = await review.stub.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=claimed), timeout=10, metadata=bearer(ALI)
    )
    assert answer.item.assignee_id == "E100"


async def test_a_polls_delivery_receipts_join_their_histories_once(review: Review) -> None:
    first, second = await review.enqueue(), await review.enqueue()

    def sent(request_id: str, channel: str, minutes: int) -> events_pb2.Envelope:
        at = Timestamp()
        at.FromDatetime(review.clock.now + timedelta(minutes=minutes))
        return events_pb2.Envelope(
            event_id=str(uuid.uuid4()),
            event_type="tawasul.notifications.sent",
            request_id=request_id,
            occurred_at=at,
            notification_sent=events_pb2.NotificationSent(
                request_id=request_id, channel=channel, status="sent", cause_event_id="e-1"
            ),
        )

    sms, mail, other = sent(first, "sms", 1), sent(first, "email", 2), sent(second, "sms", 1)
    await review.receipts.deliver(NOTIFICATION_EVENTS, sms, mail, other)
    await review.receipts.deliver(NOTIFICATION_EVENTS, mail)  # redelivered

    def told(history: Any) -> list[tuple[str, str, str]]:
        return [(h.actor, h.action, h.text) for h in history if h.actor == "notify"]

    assert told((await review.case(first)).history) == [
        ("notify", "notification_sent", "sms: e-1"),
        ("notify", "notification_sent", "email: e-1"),
    ]
    assert told((await review.case(second)).history) == [
        ("notify", "notification_sent", "sms: e-1")
    ]


async def test_clocks_of_items_answered_before_the_clock_stopped_stop_at_the_answer(
    database_url: str,
) -> None:
    """Revision 0010 stops the SLA clock of items decided or withdrawn under earlier code."""
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url, "0009")
    engine = async_engine(database_url, pool_size=2)
    t0 = datetime(2026, 1, 4, 10, tzinfo=RIYADH)
    decided = [("claimed", 1), ("reject", 3), ("appealed", 5), ("accept", 9)]
    waited = [("information_requested", 4), ("cancelled", 6)]
    rows = {  # state, paused_since (hours after t0), history (action, hours after t0)
        "decided": ("decided", None, decided),
        "withdrawn": ("withdrawn", None, [("cancelled", 2)]),
        "withdrawn while waiting": ("withdrawn", 4, waited),
        "queued": ("queued", None, [("claimed", 1), ("released", 2)]),
    }
    ids = {name: uuid.uuid4() for name in rows}
    async with engine.begin() as conn:
        for n, (name, (state, paused, history)) in enumerate(rows.items()):
            await conn.execute(
                sql(
                    "INSERT INTO work_items (request_id, request_number, department, queue,"
                    " sub_service_code, description, applicant_id, document_ids, contact, state,"
                    " queued_at, submitted_at, sla, pauses, missing, paused_since) VALUES (:id,"
                    " :number, 'passports', 'passports.default', 'passports.general', 'x',"
                    ' \'1000000008\', \'[]\', \'{"mobile": "0551234567", "email": "",'
                    ' "locale": "ar"}\', :state, :t0, :t0, \'{"amount": 5, "unit":'
                    " \"working_days\"}', '[]', '[]', :paused)"
                ),
                {
                    "id": ids[name],
                    "number": f"TW00000000{n}",
                    "state": state,
                    "t0": t0,
                    "paused": None if paused is None else t0 + timedelta(hours=paused),
                },
            )
            for action, hours in history:
                await conn.execute(
                    sql(
                        "INSERT INTO history (request_id, at, actor, action, note, internal)"
                        " VALUES (:id, :at, 'E100', :action, '', false)"
                    ),
                    {"id": ids[name], "at": t0 + timedelta(hours=hours), "action": action},
                )
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    async with engine.connect() as conn:
        stopped = {
            r.request_id: r.paused_since
            for r in await conn.execute(sql("SELECT request_id, paused_since FROM work_items"))
        }
    await engine.dispose()
    assert {name: stopped[ids[name]] for name in rows} == {
        "decided": t0 + timedelta(hours=9),  # the last decision, after the appeal
        "withdrawn": t0 + timedelta(hours=2),
        "withdrawn while waiting": t0 + timedelta(hours=4),  # its pause, as it was
        "queued": None,
    }


# --- every event delivered again, on PostgreSQL -------------------------------------------
# Kafka delivers at least once. The unit tier's DeliveredAgain drives the handlers on the
# in-memory unit of work; this one drives review's own server and subscribers on PostgreSQL:
# one request through routing's and the beneficiary's events and two reviewers' calls, with
# every event applied so far delivered again at random moments. The request's row, its
# history, what review published and the withdrawals and follow-ups it keeps must not change;
# no call or event may fail other than as a refusal.

REFUSED = frozenset(
    {
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,  # a transfer to the department it is in
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
# ALI reviews passports only, SARA passports and visas.
REVIEWERS = {"E100": ALI, "E200": SARA}
STATES = {
    "queued": review_pb2.WORK_ITEM_STATE_QUEUED,
    "claimed": review_pb2.WORK_ITEM_STATE_CLAIMED,
    "decided": review_pb2.WORK_ITEM_STATE_DECIDED,
    "waiting_on_applicant": review_pb2.WORK_ITEM_STATE_WAITING_ON_APPLICANT,
    "closed": review_pb2.WORK_ITEM_STATE_CLOSED,
    "withdrawn": review_pb2.WORK_ITEM_STATE_WITHDRAWN,
    "transferred": review_pb2.WORK_ITEM_STATE_TRANSFERRED,
}


class Redelivery(RuleBasedStateMachine):
    def __init__(self, review: Review, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.review, self.loop = review, loop
        self.run(self._afresh())
        self.item = review.routed()
        self.request_id = str(self.item.request_id)
        self.delivered: list[Callable[[], Awaitable[None]]] = []
        self.state = review_pb2.WORK_ITEM_STATE_UNSPECIFIED
        self.holder = ""

    def run(self, work: Awaitable[T]) -> T:
        return on_loop(self.loop, work)

    async def _afresh(self) -> None:
        """Each run starts on empty tables (reviewers' capacity included), at START."""
        await emptied(self.review.engine, tables.metadata)
        self.review.clock.now = START

    async def _where(self) -> tuple[review_pb2.WorkItemState.ValueType, str]:
        w = tables.work_items
        async with self.review.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(w.c.state, w.c.assignee).where(w.c.request_id == self.item.request_id)
                )
            ).one_or_none()
        if row is None:
            return review_pb2.WORK_ITEM_STATE_UNSPECIFIED, ""
        return STATES[row.state], row.assignee or ""

    async def _committed(self) -> tuple[object, ...]:
        w, h, o, d = tables.work_items, tables.history, tables.outbox, tables.withdrawals
        f = tables.early_follow_ups
        request = self.item.request_id
        async with self.review.engine.connect() as conn:
            item = (await conn.execute(select(w).where(w.c.request_id == request))).all()
            history = (
                await conn.execute(select(h).where(h.c.request_id == request).order_by(h.c.id))
            ).all()
            published = (await conn.execute(select(o.c.topic, o.c.payload).order_by(o.c.id))).all()
            kept = (await conn.execute(select(d))).all()
            early = (await conn.execute(select(f))).all()
        return item, history, published, kept, early

    def event(self, deliver: Callable[[], Awaitable[None]]) -> None:
        """Applied now and kept to deliver again; one the consumer would dead-letter as a
        refusal (NotFound for a request not routed here yet, say) is not kept."""
        try:
            self.run(deliver())
        except (FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, ResourceExhausted):
            return
        self.delivered.append(deliver)
        self.settle()

    def call(self, start: Callable[[], Awaitable[object]]) -> None:
        """The call starts on the loop that serves it, not in hypothesis' thread."""

        async def called() -> object:
            return await start()

        answered = grpc.StatusCode.OK
        try:
            self.run(called())
        except grpc.aio.AioRpcError as error:
            answered = error.code()
        assert answered is grpc.StatusCode.OK or answered in REFUSED, answered
        self.settle()

    def settle(self) -> None:
        self.state, self.holder = self.run(self._where())

    def placed(self, *, department: str = "passports", priority: int = 0) -> None:
        envelope = routed_event(str(uuid.uuid4()), self.item)
        envelope.request_routed.department_code = department
        envelope.request_routed.queue = f"{department}.default"
        envelope.request_routed.priority = priority
        self.event(lambda: self.review.subscriptions.deliver(REQUEST_ROUTED, envelope))

    def acted(self, **action: Any) -> None:
        event_id, at = str(uuid.uuid4()), self.review.clock.now
        self.event(lambda: self.review.act(at, event_id, **action))

    def token(self, reviewer: str = "") -> str:
        return REVIEWERS.get(reviewer or self.holder, SARA)

    @rule(hours=st.integers(min_value=0, max_value=80), sweep=st.booleans())
    def time_passes(self, hours: int, sweep: bool) -> None:
        """Time passes, and the sweep (alerts, deadlines, leases) may run."""
        self.review.clock.now += timedelta(hours=hours)
        if sweep:
            self.run(self.review.sweep())
            self.settle()

    @precondition(lambda self: self.state == review_pb2.WORK_ITEM_STATE_UNSPECIFIED)
    @rule()
    def routed(self) -> None:
        self.placed()

    # Hypothesis draws an integer's bounds more often than the values between: a roll of 5
    # makes these steps rare, so that the request's life, not noise, fills most runs.
    @rule(
        kind=st.sampled_from(("moved", "prioritised", "follow_up", "cancel")),
        roll=st.integers(min_value=0, max_value=9),
    )
    def now_and_then(self, kind: str, roll: int) -> None:
        r = self.request_id
        if roll != 5:
            return
        if kind in ("moved", "prioritised"):
            self.placed(
                department="visas" if kind == "moved" else "passports",
                priority=2 if kind == "prioritised" else 0,
            )
        elif kind == "follow_up":
            self.acted(request_followed_up=events_pb2.RequestFollowedUp(request_id=r))
        else:
            self.acted(request_cancelled=events_pb2.RequestCancelled(request_id=r, reason="x"))

    @precondition(lambda self: self.state == review_pb2.WORK_ITEM_STATE_QUEUED)
    @rule(who=st.sampled_from(sorted(REVIEWERS)))
    def claim(self, who: str) -> None:
        ask = review_pb2.ClaimRequestRequest(request_id=self.request_id)
        self.call(
            lambda: self.review.stub.ClaimRequest(ask, timeout=10, metadata=bearer(self.token(who)))
        )

    @precondition(lambda self: self.state == review_pb2.WORK_ITEM_STATE_CLAIMED)
    @rule(accept=st.booleans())
    def decide(self, accept: bool) -> None:
        decision = review_pb2.DecideRequestRequest(
            request_id=self.request_id,
            decision=review_pb2.DECISION_ACCEPT if accept else review_pb2.DECISION_REJECT,
            message="The photo is unclear",
            reason_code="completed" if accept else "documents-unclear",
        )
        self.call(
            lambda: self.review.stub.DecideRequest(
                decision, timeout=10, metadata=bearer(self.token())
            )
        )

    @precondition(lambda self: self.state == review_pb2.WORK_ITEM_STATE_CLAIMED)
    @rule()
    def ask(self) -> None:
        asked = review_pb2.RequestInformationRequest(
            request_id=self.request_id, missing=[MISSING_PHOTO], message="Please add a photo"
        )
        self.call(
            lambda: self.review.stub.RequestInformation(
                asked, timeout=10, metadata=bearer(self.token())
            )
        )

    @precondition(lambda self: self.state == review_pb2.WORK_ITEM_STATE_CLAIMED)
    @rule()
    def transfer(self) -> None:
        moved = review_pb2.TransferRequestRequest(
            request_id=self.request_id, department_code="visas", reason="Misfiled"
        )
        self.call(
            lambda: self.review.stub.TransferRequest(
                moved, timeout=10, metadata=bearer(self.token())
            )
        )

    @precondition(
        lambda self: (
            self.state
            in (review_pb2.WORK_ITEM_STATE_WAITING_ON_APPLICANT, review_pb2.WORK_ITEM_STATE_CLOSED)
        )
    )
    @rule()
    def answer(self) -> None:
        answer = events_pb2.RequestAnswered(request_id=self.request_id, message="Added")
        self.acted(request_answered=answer)

    @precondition(lambda self: self.state == review_pb2.WORK_ITEM_STATE_DECIDED)
    @rule()
    def appeal(self) -> None:
        appealed = events_pb2.RequestAppealed(request_id=self.request_id, reason="Look again")
        self.acted(request_appealed=appealed)

    @precondition(lambda self: bool(self.delivered))
    @rule()
    def again(self) -> None:
        """Every event applied so far, delivered once more: the request has moved on since."""
        before = self.run(self._committed())
        for deliver in self.delivered:
            self.run(deliver())
            assert self.run(self._committed()) == before


async def test_every_event_delivered_again_changes_nothing_on_postgresql(review: Review) -> None:
    loop = asyncio.get_running_loop()

    class Run(Redelivery):
        def __init__(self) -> None:
            super().__init__(review, loop)

    await asyncio.to_thread(
        run_state_machine_as_test,
        Run,
        settings=settings(
            max_examples=100,
            stateful_step_count=50,
            deadline=None,
            derandomize=True,
            database=None,
        ),
    )


async def test_cancellations_delivered_again_are_recorded_once_on_postgresql(
    review: Review,
) -> None:
    """Runs the machine seldom draws: a cancellation before routing's event (kept aside, then
    applied on arrival) and one after the decision (too late), each delivered again."""
    loop = asyncio.get_running_loop()

    def runs() -> None:
        early = Redelivery(review, loop)
        early.now_and_then("cancel", roll=5)
        early.routed()
        assert early.state == review_pb2.WORK_ITEM_STATE_WITHDRAWN
        early.again()
        late = Redelivery(review, loop)
        late.routed()
        late.claim("E200")
        late.decide(accept=True)
        late.now_and_then("cancel", roll=5)
        assert late.state == review_pb2.WORK_ITEM_STATE_DECIDED
        late.again()

    await asyncio.to_thread(runs)
