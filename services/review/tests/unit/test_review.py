import uuid
from datetime import UTC, datetime
from typing import Self

import pytest
from tawasul_platform.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from tawasul_platform.identity import Principal, Role
from tawasul_platform.testing import FakeInbox, FakeTransaction
from tawasul_review.app import handlers
from tawasul_review.app.ports import Attachment
from tawasul_review.domain.model import (
    OPEN_STATES,
    Contact,
    Decision,
    QueuePosition,
    State,
    Status,
    StatusChanged,
    WorkItem,
)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ALI = Principal("E100", Role.REVIEWER, frozenset({"passports"}))
SARA = Principal("E200", Role.REVIEWER, frozenset({"passports", "visas"}))
VISAS_ONLY = Principal("E300", Role.REVIEWER, frozenset({"visas"}))


def item(department: str = "passports", documents: tuple[str, ...] = ()) -> WorkItem:
    return WorkItem.enqueue(
        request_id=uuid.uuid4(),
        request_number="TW2600000001",
        department=department,
        queue=f"{department}.default",
        sub_service_code="passports.issue-renewal-problem",
        description="The photo does not appear when renewing passport",
        applicant_id="1000000008",
        document_ids=documents,
        contact=Contact("+966551234567", "", "ar"),
        now=NOW,
    )


class FakeUnitOfWork(FakeTransaction, FakeInbox):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[uuid.UUID, WorkItem] = {}
        self.withdrawals: dict[uuid.UUID, tuple[datetime, str]] = {}
        self.published: list[StatusChanged] = []

    @property
    def items(self) -> Self:
        return self

    async def add(self, item: WorkItem) -> None:
        self.rows[item.request_id] = item

    async def get(self, request_id: uuid.UUID, *, for_update: bool = False) -> WorkItem | None:
        return self.rows.get(request_id)

    async def queue(
        self, department: str, limit: int, after: QueuePosition | None
    ) -> list[WorkItem]:
        open_items = [
            i
            for i in self.rows.values()
            if i.department == department
            and i.state in OPEN_STATES
            and (after is None or i.position > after)
        ]
        return sorted(open_items, key=lambda i: i.position)[:limit]

    async def withdrawal(self, request_id: uuid.UUID) -> tuple[datetime, str] | None:
        return self.withdrawals.get(request_id)

    async def remember_withdrawal(self, request_id: uuid.UUID, at: datetime, reason: str) -> None:
        self.withdrawals.setdefault(request_id, (at, reason))

    async def commit(self) -> None:
        for i in self.rows.values():
            self.published.extend(i.events)
            i.events.clear()


class FakeDocuments:
    def __init__(self) -> None:
        self.tokens: list[str] = []

    async def download_links(self, document_ids: tuple[str, ...], token: str) -> list[Attachment]:
        self.tokens.append(token)
        return [
            Attachment(d, "a.pdf", "application/pdf", 10, f"http://s3/{d}", NOW)
            for d in document_ids
        ]


async def queued(uow: FakeUnitOfWork, department: str = "passports") -> WorkItem:
    new = item(department, documents=("d1",))
    await handlers.enqueue(uow=uow, event_id=str(new.request_id), item=new)
    return new


async def test_a_routed_request_is_queued_once() -> None:
    uow = FakeUnitOfWork()
    new = item()
    for _ in range(2):
        await handlers.enqueue(uow=uow, event_id="e1", item=new)
    other = item()
    await handlers.enqueue(uow=uow, event_id="e2", item=other)
    page, following = await handlers.list_queue(
        uow=uow, reviewer=ALI, department="passports", limit=0
    )
    assert sorted(i.request_id for i in page) == sorted([new.request_id, other.request_id])
    assert following is None


async def test_only_the_departments_reviewers_see_its_queue() -> None:
    uow = FakeUnitOfWork()
    await queued(uow)
    with pytest.raises(PermissionDenied):
        await handlers.list_queue(uow=uow, reviewer=VISAS_ONLY, department="passports", limit=10)


async def test_claim_then_accept_publishes_each_status() -> None:
    uow = FakeUnitOfWork()
    new = await queued(uow)
    await handlers.claim(uow=uow, reviewer=ALI, request_id=new.request_id, now=NOW)
    decided = await handlers.decide(
        uow=uow,
        reviewer=ALI,
        request_id=new.request_id,
        decision=Decision.ACCEPT,
        message="",
        now=NOW,
    )
    assert decided.state is State.DECIDED
    assert [(e.status, e.actor) for e in uow.published] == [
        (Status.UNDER_REVIEW, "E100"),
        (Status.ACCEPTED, "E100"),
    ]
    assert await handlers.list_queue(uow=uow, reviewer=ALI, department="passports", limit=10) == (
        [],
        None,
    )


async def test_a_claimed_request_belongs_to_its_claimer() -> None:
    uow = FakeUnitOfWork()
    new = await queued(uow)
    await handlers.claim(uow=uow, reviewer=ALI, request_id=new.request_id, now=NOW)
    await handlers.claim(uow=uow, reviewer=ALI, request_id=new.request_id, now=NOW)
    with pytest.raises(FailedPrecondition, match="E100"):
        await handlers.claim(uow=uow, reviewer=SARA, request_id=new.request_id, now=NOW)
    with pytest.raises(FailedPrecondition):
        await handlers.decide(
            uow=uow,
            reviewer=SARA,
            request_id=new.request_id,
            decision=Decision.ACCEPT,
            message="",
            now=NOW,
        )
    assert len(uow.published) == 1


async def test_deciding_needs_a_claim_and_a_rejection_needs_a_reason() -> None:
    uow = FakeUnitOfWork()
    new = await queued(uow)
    with pytest.raises(FailedPrecondition):
        await handlers.decide(
            uow=uow,
            reviewer=ALI,
            request_id=new.request_id,
            decision=Decision.ACCEPT,
            message="",
            now=NOW,
        )
    await handlers.claim(uow=uow, reviewer=ALI, request_id=new.request_id, now=NOW)
    with pytest.raises(InvalidArgument) as caught:
        await handlers.decide(
            uow=uow,
            reviewer=ALI,
            request_id=new.request_id,
            decision=Decision.REJECT,
            message="no",
            now=NOW,
        )
    assert "message" in caught.value.violations


async def test_opening_an_item_fetches_links_with_the_reviewers_token() -> None:
    uow, documents = FakeUnitOfWork(), FakeDocuments()
    new = await queued(uow)
    opened, attachments = await handlers.open_item(
        uow=uow, documents=documents, reviewer=ALI, token="tok", request_id=new.request_id
    )
    assert opened is new
    assert [a.download_url for a in attachments] == ["http://s3/d1"]
    assert documents.tokens == ["tok"]
    with pytest.raises(PermissionDenied):
        await handlers.open_item(
            uow=uow, documents=documents, reviewer=VISAS_ONLY, token="t", request_id=new.request_id
        )
    with pytest.raises(NotFound):
        await handlers.open_item(
            uow=uow, documents=documents, reviewer=ALI, token="t", request_id=uuid.uuid4()
        )


async def test_every_transition_is_in_the_history() -> None:
    uow = FakeUnitOfWork()
    new = await queued(uow)
    await handlers.claim(uow=uow, reviewer=ALI, request_id=new.request_id, now=NOW)
    await handlers.decide(
        uow=uow,
        reviewer=ALI,
        request_id=new.request_id,
        decision=Decision.REJECT,
        message="The attached photo is not clear",
        now=NOW,
    )
    assert [(h.actor, h.action) for h in new.new_history] == [
        ("routing", "queued"),
        ("E100", "claimed"),
        ("E100", "reject"),
    ]


async def test_a_long_queue_is_read_page_by_page_oldest_first() -> None:
    uow = FakeUnitOfWork()
    for n in range(7):
        new = item()
        new.request_number = f"TW26{n:08d}"
        await handlers.enqueue(uow=uow, event_id=str(n), item=new)
    seen: list[str] = []
    after: QueuePosition | None = None
    while True:
        page, after = await handlers.list_queue(
            uow=uow, reviewer=ALI, department="passports", limit=3, after=after
        )
        seen.extend(i.request_number for i in page)
        if after is None:
            break
    assert seen == [f"TW26{n:08d}" for n in range(7)]


async def test_a_follow_up_moves_the_item_ahead_of_older_ones() -> None:
    uow = FakeUnitOfWork()
    older, newer = await queued(uow), item()
    newer.queued_at = NOW.replace(hour=10)
    await handlers.enqueue(uow=uow, event_id="e-newer", item=newer)
    page, _ = await handlers.list_queue(uow=uow, reviewer=ALI, department="passports", limit=10)
    assert [i.request_id for i in page] == [older.request_id, newer.request_id]
    for _ in range(2):
        await handlers.follow_up(
            uow=uow, event_id="f1", request_id=newer.request_id, count=1, message="news?", at=NOW
        )
    page, _ = await handlers.list_queue(uow=uow, reviewer=ALI, department="passports", limit=10)
    assert [(i.request_id, i.priority) for i in page] == [
        (newer.request_id, 1),
        (older.request_id, 0),
    ]
    first, following = await handlers.list_queue(
        uow=uow, reviewer=ALI, department="passports", limit=1
    )
    assert [i.request_id for i in first] == [newer.request_id]
    assert following is not None
    rest, _ = await handlers.list_queue(
        uow=uow, reviewer=ALI, department="passports", limit=1, after=following
    )
    assert [i.request_id for i in rest] == [older.request_id]


async def test_a_cancelled_request_leaves_the_queue_even_before_it_arrives() -> None:
    uow = FakeUnitOfWork()
    present = await queued(uow)
    await handlers.withdraw(
        uow=uow, event_id="c1", request_id=present.request_id, reason="Solved", at=NOW
    )
    late = item()
    await handlers.withdraw(
        uow=uow, event_id="c2", request_id=late.request_id, reason="Changed my mind", at=NOW
    )
    await handlers.enqueue(uow=uow, event_id="r-late", item=late)
    page, _ = await handlers.list_queue(uow=uow, reviewer=ALI, department="passports", limit=10)
    assert page == []
    assert (uow.rows[present.request_id].state, uow.rows[late.request_id].state) == (
        State.WITHDRAWN,
        State.WITHDRAWN,
    )
    with pytest.raises(FailedPrecondition):
        await handlers.claim(uow=uow, reviewer=ALI, request_id=late.request_id, now=NOW)


async def test_a_decided_item_keeps_its_decision_when_cancelled_late() -> None:
    uow = FakeUnitOfWork()
    new = await queued(uow)
    await handlers.claim(uow=uow, reviewer=ALI, request_id=new.request_id, now=NOW)
    await handlers.decide(
        uow=uow,
        reviewer=ALI,
        request_id=new.request_id,
        decision=Decision.ACCEPT,
        message="Done",
        now=NOW,
    )
    await handlers.withdraw(uow=uow, event_id="c1", request_id=new.request_id, reason="x", at=NOW)
    assert uow.rows[new.request_id].state is State.DECIDED
