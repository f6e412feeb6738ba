"""Review's use cases."""

from __future__ import annotations

import uuid
from datetime import datetime

from tawasul_platform.errors import NotFound, PermissionDenied
from tawasul_platform.identity import Principal, Role

from tawasul_review.app.ports import Attachment, Documents, UnitOfWork
from tawasul_review.domain.model import Decision, QueuePosition, WorkItem

CONSUMER = "review"
DEFAULT_PAGE = 50
MAX_PAGE = 200


async def enqueue(*, uow: UnitOfWork, event_id: str, item: WorkItem) -> None:
    """Puts a routed request in its queue once, however often the event arrives."""
    async with uow:
        if not await uow.claim_event(CONSUMER, event_id):
            return
        if await uow.items.get(item.request_id) is None:
            # A cancellation can overtake routing: it travels on another topic.
            withdrawn = await uow.items.withdrawal(item.request_id)
            if withdrawn is not None:
                item.withdraw(reason=withdrawn[1], now=withdrawn[0])
            await uow.items.add(item)
        await uow.commit()


async def follow_up(
    *, uow: UnitOfWork, event_id: str, request_id: uuid.UUID, count: int, message: str, at: datetime
) -> None:
    """A beneficiary's follow-up raises the item in its queue, once per event."""
    async with uow:
        if not await uow.claim_event(CONSUMER, event_id):
            return
        item = await _item(uow, request_id, for_update=True)
        item.followed_up(count=count, message=message, now=at)
        await uow.commit()


async def withdraw(
    *, uow: UnitOfWork, event_id: str, request_id: uuid.UUID, reason: str, at: datetime
) -> None:
    """A cancelled request leaves its queue; one not routed here yet is kept out on arrival."""
    async with uow:
        if not await uow.claim_event(CONSUMER, event_id):
            return
        item = await uow.items.get(request_id, for_update=True)
        if item is None:
            await uow.items.remember_withdrawal(request_id, at, reason)
        else:
            item.withdraw(reason=reason, now=at)
        await uow.commit()


async def list_queue(
    *,
    uow: UnitOfWork,
    reviewer: Principal,
    department: str,
    limit: int,
    after: QueuePosition | None = None,
) -> tuple[list[WorkItem], QueuePosition | None]:
    """One page of a department's open items, and where the next page starts (None: last)."""
    if reviewer.role is not Role.REVIEWER or department not in reviewer.departments:
        raise PermissionDenied(f"not a reviewer of department {department!r}")
    size = min(limit or DEFAULT_PAGE, MAX_PAGE)
    async with uow:
        items = await uow.items.queue(department, size + 1, after)
    if len(items) > size:
        return items[:size], items[size - 1].position
    return items, None


async def _item(uow: UnitOfWork, request_id: uuid.UUID, *, for_update: bool) -> WorkItem:
    item = await uow.items.get(request_id, for_update=for_update)
    if item is None:
        raise NotFound(f"no request {request_id} in any queue")
    return item


async def claim(
    *, uow: UnitOfWork, reviewer: Principal, request_id: uuid.UUID, now: datetime
) -> WorkItem:
    async with uow:
        item = await _item(uow, request_id, for_update=True)
        item.claim(reviewer, now)
        await uow.commit()
    return item


async def decide(
    *,
    uow: UnitOfWork,
    reviewer: Principal,
    request_id: uuid.UUID,
    decision: Decision,
    message: str,
    now: datetime,
) -> WorkItem:
    async with uow:
        item = await _item(uow, request_id, for_update=True)
        item.decide(reviewer, decision, message, now)
        await uow.commit()
    return item


async def open_item(
    *, uow: UnitOfWork, documents: Documents, reviewer: Principal, token: str, request_id: uuid.UUID
) -> tuple[WorkItem, list[Attachment]]:
    """The item with a download link per attachment."""
    async with uow:
        item = await _item(uow, request_id, for_update=False)
    item.ensure_visible_to(reviewer)
    return item, await documents.download_links(item.document_ids, token)
