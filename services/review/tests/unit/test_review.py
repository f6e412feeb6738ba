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
            and i.state != State.DECIDED
            and (after is None or i.position > after)
        ]
        return sorted(open_items, key=lambda i: i.position)[:limit]

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
    await handlers.enqueue(uow=uow, event_id="e2", item=item())
    assert (
        len(await handlers.list_queue(uow=uow, reviewer=ALI, department="passports", limit=0)) == 2
    )


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
