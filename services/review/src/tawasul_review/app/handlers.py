"""Review's use cases."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any

from tawasul_calendar import RIYADH, WorkingCalendar
from tawasul_platform.catalog import Catalog, SubService
from tawasul_platform.errors import (
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from tawasul_platform.i18n import CHARACTERS, Bilingual, at_most
from tawasul_platform.identity import Principal, Role
from tawasul_platform.ports import claim_each
from tawasul_platform.retention import INBOX_KEEP

from tawasul_review.app.ports import Attachment, Documents, QueueFilter, UnitOfWork
from tawasul_review.domain.assignment import Mode, choose
from tawasul_review.domain.model import (
    NOT_IN_YOUR_DEPARTMENTS,
    OPEN_STATES,
    UNFINISHED,
    Decision,
    HistoryEntry,
    Missing,
    QueuePosition,
    Reason,
    Receipt,
    State,
    WorkItem,
)
from tawasul_review.domain.quality import NO_SUCH_CHECK, QualityCheck, QualityPosition, sampled
from tawasul_review.domain.reviewers import DEFAULT_CAPACITY, Reviewer
from tawasul_review.domain.search import (
    MAX_QUERY,
    MIN_TERM,
    Criteria,
    Kind,
    SearchPosition,
    SlaState,
    classify,
    mobile_key,
    number_candidates,
    person_id,
    request_number,
    terms,
)

log = logging.getLogger(__name__)

CONSUMER = "review"
DEFAULT_PAGE = 50
MAX_PAGE = 200
# A page of quality checks: the whole list it was before it had pages, by default.
MAX_QUALITY_PAGE = 500
DEFAULT_RESPOND_WITHIN_DAYS = 5
MAX_RESPOND_WITHIN_DAYS = 30
SWEEP_BATCH = 200
# A cancellation or follow-up that came before its request waits this long for it: the
# submission may reach routing, and the routed request review, as late as a dead letter of
# each may be replayed (retention.INBOX_KEEP each). Arrived or not, it is forgotten then.
EARLY_KEEP = 2 * INBOX_KEEP
# A ClaimNext's key says its item lapsed this long after the claim; a retry comes in seconds.
CLAIM_KEY_KEEP = timedelta(days=1)
FORGET_BATCH = 1000


@dataclass(frozen=True)
class Policy:
    """What every use case consults: the calendar, the catalogs and the lease."""

    calendar: WorkingCalendar
    catalog: Catalog
    reasons: dict[str, Reason]
    # A claim lapses after this long without an action of its holder.
    lease: timedelta = timedelta(minutes=30)
    # Employee ids that manage reviewers in every department (the directorate's admins).
    admins: frozenset[str] = frozenset()
    # The share of decisions, in per cent, sampled for a second look, and the key of the draw
    # (quality.sampled): the process's own, unknown to anyone.
    quality_percent: int = 10
    quality_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)


# --- arriving and leaving ---------------------------------------------------------------


async def enqueue(
    *,
    uow: UnitOfWork,
    routed: Sequence[tuple[str, WorkItem]],
    policy: Policy,
    now: datetime,
) -> None:
    """Puts each routed request (event id, item) in its queue once, in the order given; a
    transferred one moves to its new queue. A poll's worth takes a few statements whatever its
    size, but each assignment of a pushing queue."""
    async with uow:
        fresh = await claim_each(uow, CONSUMER, routed)
        ids = list(dict.fromkeys(item.request_id for item in fresh))
        # A cancellation can overtake routing, or be applied at the same time: it travels on
        # another topic. Neither sees the other's rows uncommitted, so each takes the request.
        await uow.items.lock(ids)
        here = await uow.items.get_many(ids, for_update=True)
        arriving = [i for i in ids if i not in here]
        withdrawn = await uow.items.withdrawals(arriving)
        followed = await uow.items.follow_ups(arriving)
        modes = await uow.queues.modes({item.queue for item in fresh})
        pushed = [i for i in fresh if modes.get(i.queue, Mode.PULL) is not Mode.PULL]
        await _lock_pushing(uow, {i.queue for i in pushed}, {i.department for i in pushed})
        for item in fresh:
            existing = here.get(item.request_id)
            if existing is not None:
                if not existing.rerouted(
                    department=item.department,
                    queue=item.queue,
                    priority=item.priority,
                    now=now,
                    sequence=item.routed_sequence,
                    transfer_sequence=item.routed_transfer,
                ):
                    log.warning(
                        "skipping routing of request %s to %s: its place %d.%d is no later"
                        " than %d.%d, applied already",
                        existing.request_number,
                        item.queue,
                        item.routed_transfer,
                        item.routed_sequence,
                        existing.routed_transfer,
                        existing.routed_sequence,
                    )
                    continue
                if existing.state in UNFINISHED:
                    # A finished item's clock stopped: its due date stays where it stopped
                    # (a follow-up sent before the decision may be routed after it).
                    existing.schedule(policy.calendar, now)
                await _push(uow, existing, policy, now, modes.get(existing.queue, Mode.PULL))
            else:
                # What came before it, in time order: follow-ups after a cancellation are not
                # on the record of a request withdrawn then (`followed_up`).
                cancelled = withdrawn.get(item.request_id)
                for at, message in followed.get(item.request_id, []):
                    if cancelled is None or at <= cancelled[0]:
                        item.followed_up(message=message, now=at)
                if cancelled is not None:
                    at, reason, by_office = cancelled
                    item.withdraw(reason=reason, now=at, by_office=by_office)
                item.schedule(policy.calendar, now)
                await uow.items.add(item)
                here[item.request_id] = item
                await _push(uow, item, policy, now, modes.get(item.queue, Mode.PULL))
        await uow.commit()


async def _lock_pushing(
    uow: UnitOfWork,
    queues: Collection[str],
    departments: Collection[str],
    also: Collection[str] = (),
) -> None:
    """Takes pushing queues and their departments' reviewers (and `also`) up front, each kind
    in one sorted statement, the queues first, before any other reviewer's lock: pushing one
    by one took them in the order of the items, and two polls (or a poll and an appeal)
    taking the same ones in another order deadlocked. Every push takes them so."""
    if queues:
        await uow.queues.lock(*queues)
    reviewers = set(also)
    for department in departments:
        reviewers |= {r.reviewer_id for r in await uow.reviewers.in_department(department)}
    await uow.reviewers.lock(*reviewers)


async def _pushing(
    uow: UnitOfWork,
    departments: Collection[str],
    *,
    freed: Collection[str] = (),
    also: Collection[str] = (),
    queues: Collection[str] = (),
) -> dict[str, Mode]:
    """The pushing queues of the departments and of those the `freed` reviewers work in,
    locked for `_refill` with their reviewers (and `also`, whom the caller locks next; and
    `queues`, which may push once the caller changed them)."""
    wider = set(departments)
    for reviewer_id in freed:
        record = await uow.reviewers.get(reviewer_id)
        wider |= record.departments if record else frozenset()
    modes = await uow.queues.pushing(wider)
    locked = {*modes, *queues}
    await _lock_pushing(uow, locked, {_department_of(q) for q in locked}, also)
    return modes


def _department_of(queue: str) -> str:
    return queue.partition(".")[0]


# Reads of a department's waiting items a refill makes at most, when some it read went to
# nobody: bounded, as the transaction holds its queues meanwhile.
_REFILL_READS = 4


async def _refill(
    uow: UnitOfWork,
    modes: dict[str, Mode],
    policy: Policy,
    now: datetime,
    let_go: Mapping[uuid.UUID, str] | None = None,
) -> None:
    """Pushes the waiting items of the pushing queues `_pushing` took, in claim-next's order,
    as far as their reviewers have room: after items went back to their queues or reviewers
    were freed of some, so that none waits while a reviewer it may go to has room. An item
    `let_go` (released, lapsed, put back) is not pushed straight back to who let it go."""
    let_go = let_go or {}
    queues: dict[str, list[str]] = {}
    for queue in sorted(modes):
        queues.setdefault(_department_of(queue), []).append(queue)
    for department, theirs in queues.items():
        passed: set[uuid.UUID] = set()
        for _ in range(_REFILL_READS):
            room = [c for c in await uow.queues.candidates(department) if c.has_room()]
            if not room:
                break
            languages = {language for c in room for language in c.languages}
            # Those let go may take a place and go to nobody: room for as many more.
            limit = sum(c.capacity - c.load for c in room) + len(let_go)
            items = await uow.items.waiting(department, theirs, languages, limit, passed=passed)
            for item in items:
                await _push(uow, item, policy, now, modes[item.queue], let_go.get(item.request_id))
            # One nobody with room may take (an appeal of the only one with room, say) took a
            # place in the read: those behind it are read on, for the room it left.
            stayed = {item.request_id for item in items if item.state is State.QUEUED}
            if len(items) < limit or not stayed:
                break
            passed |= stayed


async def _push(
    uow: UnitOfWork,
    item: WorkItem,
    policy: Policy,
    now: datetime,
    mode: Mode,
    not_to: str | None = None,
) -> None:
    """Hands a queued item to a reviewer when its queue pushes work (round-robin or least
    loaded); a pulling queue, or one with nobody eligible, leaves it for claim-next. `mode`,
    read already, spares reading it again for a pulling queue; `not_to` just let it go."""
    if item.state is not State.QUEUED or mode is Mode.PULL:
        return
    await uow.queues.lock(item.queue)
    mode, last = await uow.queues.mode(item.queue)
    if mode is Mode.PULL:
        return
    candidates = [
        c
        for c in await uow.queues.candidates(item.department)
        if c.reviewer_id not in (item.appeal_of, not_to)
    ]
    # A candidate's load was read without their lock: claims of theirs committed meanwhile
    # count once it is held.
    while (chosen := choose(mode, candidates, language=item.contact.locale, last=last)) is not None:
        await uow.reviewers.lock(chosen)
        load = await uow.items.held_by(chosen)
        if load < next(c.capacity for c in candidates if c.reviewer_id == chosen):
            item.assign(chosen, now, policy.lease, by="queue")
            await uow.queues.assigned(item.queue, chosen)
            return
        candidates = [replace(c, load=load) if c.reviewer_id == chosen else c for c in candidates]


async def record_receipts(*, uow: UnitOfWork, receipts: Sequence[Receipt]) -> None:
    """Notify's reports of messages sent go into their requests' histories, once each."""
    async with uow:
        await uow.items.record_receipts(receipts)
        await uow.commit()


async def appeal(
    *,
    uow: UnitOfWork,
    event_id: str,
    request_id: uuid.UUID,
    reason: str,
    policy: Policy,
    now: datetime,
    appealed_at: datetime | None = None,
) -> None:
    """An appealed rejection (at `appealed_at`, applied `now`) goes back to the queue for a
    reviewer other than its own; one a queue pushes holds its lease from now."""
    async with uow:
        if not await uow.claim_event(CONSUMER, event_id):
            return
        item = await _item(uow, request_id, for_update=True)
        if item.appeal(reason=reason, now=appealed_at or now, calendar=policy.calendar):
            item.schedule(policy.calendar, now)
            await _refill(uow, await _pushing(uow, {item.department}), policy, now)
        await uow.commit()


async def follow_up(
    *, uow: UnitOfWork, event_id: str, request_id: uuid.UUID, message: str, at: datetime
) -> None:
    """A beneficiary's follow-up goes on the item's record, once per event; routing raises
    its priority if its rules say so. One that comes before its routed request (routing keeps
    an early one and routes the request after it) is kept for the item's arrival."""
    async with uow:
        if not await uow.claim_event(CONSUMER, event_id):
            return
        await uow.items.lock([request_id])  # its routed event may be being applied (enqueue)
        item = await uow.items.get(request_id, for_update=True)
        if item is None:
            await uow.items.remember_follow_up(request_id, event_id, at, message)
        else:
            item.followed_up(message=message, now=at)
        await uow.commit()


async def take_items(*, uow: UnitOfWork, request_ids: Sequence[uuid.UUID]) -> None:
    """Takes the items (each request's lock, then its row, in key order), then every queue and
    reviewer their events may push to or free (as `enqueue` takes a poll's), for the rest of
    the transaction a consumer's poll shares (tawasul_platform.uow): taken event by event, a
    second department's queue came after the first's reviewers, whom a call in that queue
    held it for."""
    async with uow:
        await uow.items.lock(request_ids)
        items = (await uow.items.get_many(request_ids, for_update=True)).values()
        holders = {i.assignee for i in items if i.state is State.CLAIMED and i.assignee}
        asked = {i.last_holder for i in items if i.last_holder}
        await _pushing(uow, {i.department for i in items}, freed=sorted(holders), also=asked)


async def withdraw(
    *,
    uow: UnitOfWork,
    event_id: str,
    request_id: uuid.UUID,
    reason: str,
    at: datetime,
    policy: Policy,
    now: datetime,
    by_office: bool = False,
) -> None:
    """A cancelled request (at `at`, applied `now`; `by_office`: the office cancelled it, not
    the beneficiary) leaves its queue; one not routed here yet is kept out on arrival. Its
    holder, freed of it, is pushed what waits from now."""
    async with uow:
        if not await uow.claim_event(CONSUMER, event_id):
            return
        await uow.items.lock([request_id])  # its routed event may be being applied (enqueue)
        item = await uow.items.get(request_id, for_update=True)
        if item is None:
            await uow.items.remember_withdrawal(request_id, at, reason, by_office)
        else:
            holder = item.assignee if item.state is State.CLAIMED else ""
            item.withdraw(reason=reason, now=at, by_office=by_office)
            if holder and item.state is State.WITHDRAWN:
                await _freed(uow, item, holder, policy, now)
        await uow.commit()


async def answered(
    *,
    uow: UnitOfWork,
    event_id: str,
    request_id: uuid.UUID,
    message: str,
    policy: Policy,
    now: datetime,
    answered_at: datetime | None = None,
    document_ids: tuple[str, ...] = (),
    fields: dict[str, str] | None = None,
) -> None:
    """The beneficiary answered (at `answered_at`, applied `now`), perhaps with documents
    and fields:
    to the reviewer who asked if they can take it, else queued."""
    async with uow:
        if not await uow.claim_event(CONSUMER, event_id):
            return
        item = await _item(uow, request_id, for_update=True)
        # Before the holder's lock: a push takes them all, in order.
        holder_id = [item.last_holder] if item.last_holder else []
        modes = await _pushing(uow, {item.department}, also=holder_id)
        free = False
        if item.last_holder:
            holder = await uow.reviewers.get(item.last_holder)
            # Away, or removed from the department since asking: to the queue.
            available = holder.available and holder.keeps(item.department) if holder else True
            capacity = holder.capacity if holder else DEFAULT_CAPACITY
            await uow.reviewers.lock(item.last_holder)
            free = available and await uow.items.held_by(item.last_holder) < capacity
        item.answered(
            message=message,
            holder_available=free,
            now=now,
            lease=policy.lease,
            calendar=policy.calendar,
            answered_at=answered_at,
            document_ids=document_ids,
            fields=fields,
        )
        if item.state is State.QUEUED:
            await _refill(uow, modes, policy, now)
        await uow.commit()


# --- the queue --------------------------------------------------------------------------


def _department(reviewer: Principal, department: str) -> None:
    if reviewer.role is not Role.REVIEWER or department not in reviewer.departments:
        raise PermissionDenied(
            Bilingual(
                f"not a reviewer of department {department!r}",
                f"لست من مراجعي القسم {department!r}",
            )
        )


async def list_queue(
    *,
    uow: UnitOfWork,
    reviewer: Principal,
    department: str,
    limit: int,
    after: QueuePosition | None = None,
    filters: QueueFilter = QueueFilter(),  # noqa: B008 - frozen
) -> tuple[list[WorkItem], QueuePosition | None]:
    """One page of a department's items, and where the next page starts (None: last)."""
    _department(reviewer, department)
    size = min(limit or DEFAULT_PAGE, MAX_PAGE)
    async with uow:
        me = await _me(uow, reviewer)
        _department(replace(reviewer, departments=me.departments), department)
        items = await uow.items.queue(department, size + 1, after, filters)
    if len(items) > size:
        return items[:size], items[size - 1].position
    return items, None


def _staff(reviewer: Principal) -> None:
    if reviewer.role is not Role.REVIEWER:
        raise PermissionDenied(Bilingual("for reviewers only", "للمراجعين فقط"))


async def _me(uow: UnitOfWork, reviewer: Principal) -> Reviewer:
    """The reviewer's record, or their token's departments with the defaults."""
    _staff(reviewer)
    record = await uow.reviewers.get(reviewer.subject)
    return Reviewer.of_token(reviewer) if record is None else record.granted(reviewer)


async def _room(uow: UnitOfWork, reviewer: Principal) -> Reviewer:
    """The reviewer's record, once they may take one more item. Their claims queue up behind
    their lock, and the record is read under it: a put of it, which takes that lock, may have
    just taken them out of a department (put_reviewer)."""
    _staff(reviewer)
    await uow.reviewers.lock(reviewer.subject)
    return await _room_locked(uow, reviewer)


async def _room_locked(uow: UnitOfWork, reviewer: Principal) -> Reviewer:
    """`_room`, the reviewer's lock taken already."""
    me = await _me(uow, reviewer)
    if not me.available:
        raise FailedPrecondition(
            Bilingual(
                "you are marked away; set yourself available first",
                "أنت مسجَّل غير متاح؛ سجِّل نفسك متاحًا أولًا",
            )
        )
    if not me.capacity:
        # Finishing an item gives them no room: only their supervisor can.
        raise FailedPrecondition(
            Bilingual(
                "your capacity is 0: ask your supervisor to raise it",
                "حدك الأقصى من الطلبات المسندة إليك 0: اطلب من مشرفك رفعه",
            )
        )
    if await uow.items.held_by(me.reviewer_id) >= me.capacity:
        raise ResourceExhausted(
            Bilingual(
                f"you hold {_items(me.capacity)}, your capacity; finish one first",
                f"بلغتَ حدك الأقصى من الطلبات المسندة إليك ({me.capacity})؛ أنجز أحدها أولًا",
            )
        )
    return me


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


async def claim_next(
    *,
    uow: UnitOfWork,
    reviewer: Principal,
    department: str,
    policy: Policy,
    now: datetime,
    key: str = "",
) -> WorkItem | None:
    """The next item of the reviewer's queues by priority, then due date; None when empty.

    Under the `key` of a claim whose answer was lost (sent again), the item it claimed while
    the reviewer still holds it, its lease renewed: a second item would stay held by them,
    unseen by their client, until its lease lapsed. Asked before their room, which that
    claim may have filled; while another transaction holds the item (a sweep, a decision),
    once it ends. Lapsed, released or taken from them by then, FAILED_PRECONDITION says so
    (for a day, CLAIM_KEY_KEEP): another item in its answer would pass for the one they had.

    Asked first without the reviewer's lock, so that a wait for the item holds nothing a
    sweep lapsing it takes next; then once more behind it, which a claim under the key still
    under way (the client asked again on its deadline) holds until it commits."""
    async with uow:
        _staff(reviewer)
        if department:
            _department(reviewer, department)
        if key and (held := await uow.items.claimed_under(reviewer.subject, key)) is not None:
            return await _claimed_again(uow, held, reviewer, now, policy)
        await uow.reviewers.lock(reviewer.subject)
        if key and (held := await uow.items.claimed_under(reviewer.subject, key)) is not None:
            return await _claimed_again(uow, held, reviewer, now, policy)
        if key and (number := await uow.items.claimed_before(reviewer.subject, key)):
            raise FailedPrecondition(_no_longer_yours(number))
        me = await _room_locked(uow, reviewer)
        departments = me.departments & {department} if department else me.departments
        item = await uow.items.next_queued(departments, me.languages, me.reviewer_id)
        if item is None:
            return None
        item.claim(reviewer, now, policy.lease)
        item.claim_key = key
        if key:
            await uow.items.remember_claim(reviewer.subject, key, item, now)
        await uow.commit()
    return item


def _no_longer_yours(number: str) -> Bilingual:
    return Bilingual(
        f"request {number}, which you claimed under this idempotency key, is no longer yours:"
        " its claim lapsed (its lease expired), or it was released or given to another; claim"
        " again under a new key for the next item",
        f"الطلب {number} الذي حجزته بمفتاح عدم التكرار هذا لم يعد لك: انتهت مهلة حجزه، أو أُعيد"
        " إلى قائمة الانتظار أو أُسند إلى غيرك؛ اطلب التالي بمفتاح جديد",
    )


async def _claimed_again(
    uow: UnitOfWork, item: WorkItem, reviewer: Principal, now: datetime, policy: Policy
) -> WorkItem:
    """The item a ClaimNext claimed, answered again to its retry: its lease renewed."""
    item.claim(reviewer, now, policy.lease)
    await uow.commit()
    return item


async def _item(uow: UnitOfWork, request_id: uuid.UUID, *, for_update: bool) -> WorkItem:
    item = await uow.items.get(request_id, for_update=for_update)
    if item is None:
        raise NotFound(NOT_IN_YOUR_DEPARTMENTS)
    return item


async def _visible(
    uow: UnitOfWork, reviewer: Principal, request_id: uuid.UUID, *, for_update: bool = True
) -> WorkItem:
    """The item, if it is in one of the reviewer's departments as their record narrows them."""
    if reviewer.role is not Role.REVIEWER:
        raise NotFound(NOT_IN_YOUR_DEPARTMENTS)
    me = await _me(uow, reviewer)
    item = await _item(uow, request_id, for_update=for_update)
    item.ensure_visible_to(replace(reviewer, departments=me.departments))
    return item


async def claim(
    *, uow: UnitOfWork, reviewer: Principal, request_id: uuid.UUID, now: datetime, policy: Policy
) -> WorkItem:
    async with uow:
        item = await _visible(uow, reviewer, request_id)
        # Held by another, it is that which the reviewer is told, not their own capacity.
        if item.state is State.QUEUED:
            me = await _room(uow, reviewer)
            item.ensure_visible_to(replace(reviewer, departments=me.departments))
        item.claim(reviewer, now, policy.lease)
        await uow.commit()
    return item


async def _links(documents: Documents, item: WorkItem, token: str) -> list[Attachment] | None:
    """A download link per attachment (none for one docs will not give), or None while docs
    is unavailable: the reviewer still reads the rest of the request. Docs' other answers (a
    caller it refuses, …) stand."""
    try:
        return await documents.download_links(item.document_ids, token)
    except Unavailable:
        return None


async def open_item(
    *, uow: UnitOfWork, documents: Documents, reviewer: Principal, token: str, request_id: uuid.UUID
) -> tuple[WorkItem, list[Attachment] | None]:
    """The item with a download link per attachment (None: docs is unavailable)."""
    async with uow:
        item = await _visible(uow, reviewer, request_id, for_update=False)
    return item, await _links(documents, item, token)


@dataclass(frozen=True)
class Case:
    item: WorkItem
    # None: docs is unavailable.
    attachments: list[Attachment] | None
    # The whole history, internal notes included.
    history: list[HistoryEntry]
    # The rejected request this one corrects, when it is in one of the reviewer's
    # departments: why it was rejected.
    corrects: WorkItem | None = None


async def open_case(
    *, uow: UnitOfWork, documents: Documents, reviewer: Principal, token: str, request_id: uuid.UUID
) -> Case:
    async with uow:
        item = await _visible(uow, reviewer, request_id, for_update=False)
        history = await uow.items.history(request_id)
        corrects = await _rejection_corrected(uow, item, reviewer)
    return Case(item, await _links(documents, item, token), history, corrects)


async def _rejection_corrected(
    uow: UnitOfWork, item: WorkItem, reviewer: Principal
) -> WorkItem | None:
    """The rejected request of the same applicant that `item` corrects, if the reviewer may
    see it; intake let the beneficiary cite only such a request of theirs."""
    if not item.cites_request_number:
        return None
    departments = (await _me(uow, reviewer)).departments
    if not departments:
        return None
    criteria = Criteria(departments=departments, numbers=(item.cites_request_number,))
    for cited in await uow.items.search(criteria, 1, None):
        if cited.applicant_id == item.applicant_id and cited.decision is Decision.REJECT:
            return cited
    return None


# --- actions ----------------------------------------------------------------------------


async def decide(
    *,
    uow: UnitOfWork,
    reviewer: Principal,
    request_id: uuid.UUID,
    decision: Decision,
    message: str,
    reason_code: str,
    policy: Policy,
    now: datetime,
) -> WorkItem:
    reason = policy.reasons.get(reason_code) if reason_code else None
    if reason_code and reason is None:
        raise InvalidArgument(
            {
                "reason_code": Bilingual(
                    "not a reason of ListReasons", "ليس سببًا من قائمة الأسباب (ListReasons)"
                )
            }
        )
    async with uow:
        item = await _visible(uow, reviewer, request_id)
        item.decide(reviewer, decision, message, reason, now, policy.calendar)
        await _sample(uow, item, policy, now)
        await _freed(uow, item, reviewer.subject, policy, now)
        await uow.commit()
    return item


async def mark_processed(
    *,
    uow: UnitOfWork,
    reviewer: Principal,
    request_id: uuid.UUID,
    message: str,
    policy: Policy,
    now: datetime,
) -> WorkItem:
    """An accepted request's transaction was carried out by its department."""
    async with uow:
        item = await _visible(uow, reviewer, request_id)
        history = await uow.items.history(item.request_id)
        item.mark_processed(reviewer, message, now, policy.calendar, history)
        await uow.commit()
    return item


async def _sample(uow: UnitOfWork, item: WorkItem, policy: Policy, now: datetime) -> None:
    """A share of decisions gets a quality check. A decision on an appeal takes the place of
    the one it replaced in that one's check, if it was sampled; else it is drawn like any
    other."""
    if item.appeal_of:
        earlier = await uow.quality.get(item.request_id)
        if earlier is not None:
            await uow.quality.save(earlier.replaced_on_appeal(item, now))
            return
    if sampled(
        item.request_id, policy.quality_percent, key=policy.quality_key, appeal_of=item.appeal_of
    ):
        await uow.quality.add(QualityCheck.of(item, now))


async def add_note(
    *,
    uow: UnitOfWork,
    reviewer: Principal,
    request_id: uuid.UUID,
    text: str,
    policy: Policy,
    now: datetime,
) -> WorkItem:
    async with uow:
        item = await _visible(uow, reviewer, request_id)
        item.note(reviewer, text, now, policy.lease)
        await uow.commit()
    return item


async def message_applicant(
    *,
    uow: UnitOfWork,
    reviewer: Principal,
    request_id: uuid.UUID,
    text: str,
    policy: Policy,
    now: datetime,
) -> WorkItem:
    async with uow:
        item = await _visible(uow, reviewer, request_id)
        history = await uow.items.history(item.request_id)
        item.message(reviewer, text, now, policy.lease, policy.calendar, history)
        await uow.commit()
    return item


async def request_information(
    *,
    uow: UnitOfWork,
    reviewer: Principal,
    request_id: uuid.UUID,
    missing: tuple[Missing, ...],
    message: str,
    within_working_days: int,
    policy: Policy,
    now: datetime,
) -> WorkItem:
    days = within_working_days or DEFAULT_RESPOND_WITHIN_DAYS
    if not 1 <= days <= MAX_RESPOND_WITHIN_DAYS:
        raise InvalidArgument(
            {
                "respond_within_working_days": Bilingual(
                    f"from 1 to {MAX_RESPOND_WITHIN_DAYS}", f"من 1 إلى {MAX_RESPOND_WITHIN_DAYS}"
                )
            }
        )
    # The beneficiary is told a day (SMS, tracking view): the deadline is the end of that day
    # in Riyadh, not the hour of it at which the reviewer happened to ask.
    last_day = policy.calendar.add_working_days(now, days).astimezone(RIYADH).date()
    respond_by = datetime.combine(last_day, time.max, tzinfo=RIYADH)
    async with uow:
        item = await _visible(uow, reviewer, request_id)
        _check_asked(missing, policy.catalog.sub_services.get(item.sub_service_code))
        item.request_information(reviewer, missing, message, respond_by, now, policy.calendar)
        await _freed(uow, item, reviewer.subject, policy, now)
        await uow.commit()
    return item


def _check_asked(missing: tuple[Missing, ...], sub_service: SubService | None) -> None:
    """A document or a field asked for is one of the sub-service's, by its catalog name: the
    beneficiary's page offers that document's upload or that field's input, and intake takes
    the answer under it (SPEC §6.3). Anything else is asked as "other"."""
    if sub_service is None:  # no longer in the catalog: nothing to check against
        return
    kinds = sorted(d.kind for d in sub_service.documents)
    names = sorted(f.name for f in sub_service.fields)
    problems: dict[str, Bilingual] = {}
    for index, item in enumerate(missing):
        if item.kind == "document" and item.name not in kinds:
            problems[f"missing[{index}].name"] = Bilingual(
                f"a document kind of {sub_service.code}: {', '.join(kinds)}",
                f"نوع مستند من أنواع الخدمة الفرعية {sub_service.code}: {'، '.join(kinds)}",
            )
        elif item.kind == "field" and item.name not in names:
            problems[f"missing[{index}].name"] = Bilingual(
                f"a field of {sub_service.code}: {', '.join(names) or 'it has none'}",
                f"حقل من حقول الخدمة الفرعية {sub_service.code}:"
                f" {'، '.join(names) or 'لا حقول لها'}",
            )
    if problems:
        raise InvalidArgument(problems)


async def transfer(
    *,
    uow: UnitOfWork,
    reviewer: Principal,
    request_id: uuid.UUID,
    department: str,
    reason: str,
    policy: Policy,
    now: datetime,
) -> WorkItem:
    if department not in policy.catalog.departments:
        raise InvalidArgument(
            {"department_code": Bilingual("not a department of the catalog", "ليس قسمًا من الدليل")}
        )
    async with uow:
        item = await _visible(uow, reviewer, request_id)
        item.transfer(
            reviewer,
            department,
            reason,
            now,
            policy.calendar,
            catalog_version=policy.catalog.version,
        )
        await _freed(uow, item, reviewer.subject, policy, now)
        await uow.commit()
    return item


async def release(
    *, uow: UnitOfWork, reviewer: Principal, request_id: uuid.UUID, policy: Policy, now: datetime
) -> WorkItem:
    async with uow:
        item = await _visible(uow, reviewer, request_id)
        item.release(reviewer, now, policy.lease)
        await _freed(uow, item, reviewer.subject, policy, now)
        await uow.commit()
    return item


async def _freed(
    uow: UnitOfWork, item: WorkItem, holder: str, policy: Policy, now: datetime
) -> None:
    """The holder let go of the item (back to its queue, or on its way): pushes what waits to
    whoever has room, them included, though not that item."""
    modes = await _pushing(uow, {item.department}, freed=[holder])
    await _refill(uow, modes, policy, now, {item.request_id: holder})


# --- time passing -----------------------------------------------------------------------


async def sweep(*, uow: UnitOfWork, policy: Policy, now: datetime) -> int:
    """Lapsed claims back to the queue, expired information requests closed, SLA alerts.

    Replicas sweep side by side: each locks the rows it takes and skips the others'.
    """
    async with uow:
        items = await uow.items.due_for_sweep(now, SWEEP_BATCH)
        supervisors: dict[str, tuple[str, ...]] = {}
        lapsed: dict[uuid.UUID, str] = {}
        departments: set[str] = set()
        for item in items:
            holder = item.assignee
            if item.lapse(now):
                lapsed[item.request_id] = holder
                departments.add(item.department)
            item.expire(now, policy.calendar)
            if item.sla_next_at is not None and item.sla_next_at <= now:
                if item.department not in supervisors:
                    found = await uow.reviewers.supervisors_of(item.department)
                    supervisors[item.department] = tuple(found)
                item.check_sla(policy.calendar, now, supervisors[item.department])
        if lapsed:
            modes = await _pushing(uow, departments, freed=sorted(set(lapsed.values())))
            await _refill(uow, modes, policy, now, lapsed)
        await uow.commit()
    return len(items)


async def forget_leftovers(*, uow: UnitOfWork, now: datetime, batch: int = FORGET_BATCH) -> bool:
    """Deletes what was kept for a while only: the cancellations and follow-ups that came
    before their request, EARLY_KEEP after them (one whose request never came, dead-lettered
    by routing and never replayed, stayed for good), and ClaimNext's keys CLAIM_KEY_KEEP
    after their claim. True while a full batch was deleted (there may be more)."""
    async with uow:
        gone = await uow.items.forget(
            kept_before=now - EARLY_KEEP, keys_before=now - CLAIM_KEY_KEEP, limit=batch
        )
        await uow.commit()
    return gone >= batch


async def reschedule(
    *,
    uow: UnitOfWork,
    policy: Policy,
    now: datetime,
    after: uuid.UUID | None = None,
    limit: int = SWEEP_BATCH,
) -> uuid.UUID | None:
    """The unfinished items' due dates and SLA marks computed again with the policy's
    calendar when they follow another version of it (a holiday declared, Eid announced: an
    operator's newer file, loaded at start): `limit` items from `after` on, answering where
    the next batch starts; None once all follow it, which is recorded, so that a start with
    the same version reads one row."""
    version = policy.calendar.config.version
    async with uow:
        if after is None and await uow.items.scheduled_with() == version:
            return None
        items = await uow.items.unfinished(after, limit)
        for item in items:
            item.schedule(policy.calendar, now)
        following = items[-1].request_id if len(items) == limit else None
        if following is None:
            await uow.items.follow_calendar(version)
        await uow.commit()
    return following


# --- supervisors and administrators -------------------------------------------------------


def _not_supervisor(department: str) -> Bilingual:
    return Bilingual(
        f"not a supervisor of department {department!r}", f"لست مشرفًا على القسم {department!r}"
    )


async def backlog(
    *, uow: UnitOfWork, reviewer: Principal, department: str, policy: Policy, now: datetime
) -> list[object]:
    async with uow:
        me = await _me(uow, reviewer)
        if department not in me.supervises:
            raise PermissionDenied(_not_supervisor(department))
        soon = policy.calendar.add_working_days(now, 1)
        return list(await uow.items.backlog(department, now, soon))


async def office_backlog(*, uow: UnitOfWork, policy: Policy, now: datetime) -> dict[str, list[Any]]:
    """Every department's queues as GetBacklog counts them, for the service's gauges."""
    soon = policy.calendar.add_working_days(now, 1)
    async with uow:
        return {d: list(await uow.items.backlog(d, now, soon)) for d in policy.catalog.departments}


async def reassign(
    *,
    uow: UnitOfWork,
    supervisor: Principal,
    request_id: uuid.UUID,
    reviewer_id: str,
    policy: Policy,
    now: datetime,
) -> WorkItem:
    """A supervisor gives an open item to a reviewer of its department, or back to the queue."""
    async with uow:
        me = await _me(uow, supervisor)
        item = await _visible(uow, supervisor, request_id)
        if item.department not in me.supervises:
            raise PermissionDenied(_not_supervisor(item.department))
        held = item.state is State.CLAIMED and item.assignee != reviewer_id
        freed = [item.assignee] if held else []
        modes: dict[str, Mode] = {}
        if freed:
            # Before the reviewer's lock: a push takes them all, in order.
            also = [reviewer_id] if reviewer_id else []
            modes = await _pushing(uow, {item.department}, freed=freed, also=also)
        if not reviewer_id:
            item.unassign(now, by=supervisor.subject)
        else:
            target = await uow.reviewers.get(reviewer_id)
            if target is None or item.department not in target.departments:
                raise InvalidArgument(
                    {
                        "reviewer_id": Bilingual(
                            "not a reviewer of the item's department", "ليس من مراجعي قسم الطلب"
                        )
                    }
                )
            if not (item.state is State.CLAIMED and item.assignee == reviewer_id):
                # Under their lock, as their own claims and the queues' pushes count.
                await uow.reviewers.lock(reviewer_id)
                if not target.capacity:
                    # Freeing one of theirs gives them no room: only raising it does.
                    raise FailedPrecondition(
                        Bilingual(
                            f"{reviewer_id}'s capacity is 0: raise it first, or give the item to"
                            " another reviewer",
                            f"حد {reviewer_id} الأقصى من الطلبات المسندة إليه 0: ارفعه أولًا أو"
                            " أسنِد الطلب إلى مراجع آخر",
                        )
                    )
                if await uow.items.held_by(reviewer_id) >= target.capacity:
                    raise ResourceExhausted(
                        Bilingual(
                            f"{reviewer_id} holds {_items(target.capacity)}, their capacity; give"
                            " it to another reviewer or free one of theirs first",
                            f"بلغ {reviewer_id} حده الأقصى من الطلبات المسندة إليه"
                            f" ({target.capacity})؛ أسنِد الطلب إلى مراجع آخر أو أعِد أحد طلباته"
                            " إلى قائمة الانتظار أولًا",
                        )
                    )
            item.assign(reviewer_id, now, policy.lease, by=supervisor.subject)
        await _refill(uow, modes, policy, now, {item.request_id: freed[0]} if freed else None)
        await uow.commit()
    return item


async def put_queue_settings(
    *, uow: UnitOfWork, caller: Principal, queue: str, mode: Mode, policy: Policy, now: datetime
) -> tuple[str, Mode]:
    """A queue that pushes from now on is pushed what waits in it."""
    department, _, name = queue.partition(".")
    if department not in policy.catalog.departments or not name:
        raise InvalidArgument(
            {
                "settings.queue": Bilingual(
                    "a queue of a catalog department, '<dept>.<name>'",
                    "قائمة انتظار لقسم من أقسام الدليل، بالصيغة '<dept>.<name>'",
                )
            }
        )
    async with uow:
        me = await _me(uow, caller)
        if caller.subject not in policy.admins and department not in me.supervises:
            raise PermissionDenied(
                Bilingual(
                    "only an administrator or the department's supervisor",
                    "لمسؤول النظام أو مشرف القسم فقط",
                )
            )
        # Locked before its row is written: a push holding the queue's lock writes it.
        modes = await _pushing(uow, {department}, queues=[queue])
        await uow.queues.put(queue, mode)
        if mode is not Mode.PULL:
            # The queues locked, not those pushing now: one another put made pushing since
            # is refilled by that put, under its lock.
            await _refill(uow, modes | {queue: mode}, policy, now)
        await uow.commit()
    return queue, mode


async def quality_checks(
    *,
    uow: UnitOfWork,
    reviewer: Principal,
    department: str,
    include_done: bool,
    limit: int = 0,
    after: QualityPosition | None = None,
) -> tuple[list[QualityCheck], QualityPosition | None]:
    """One page of a department's quality checks, and where the next page starts (None:
    last)."""
    size = min(limit or MAX_QUALITY_PAGE, MAX_QUALITY_PAGE)
    async with uow:
        me = await _me(uow, reviewer)
        if department not in me.supervises:
            raise PermissionDenied(_not_supervisor(department))
        checks = await uow.quality.in_department(
            department, include_done=include_done, limit=size + 1, after=after
        )
    if len(checks) > size:
        return checks[:size], checks[size - 1].position
    return checks, None


async def complete_quality_check(
    *,
    uow: UnitOfWork,
    reviewer: Principal,
    request_id: uuid.UUID,
    verdict: str,
    note: str,
    now: datetime,
) -> QualityCheck:
    async with uow:
        me = await _me(uow, reviewer)
        check = await uow.quality.get(request_id)
        if check is None:
            raise NotFound(NO_SUCH_CHECK)
        done = check.complete(replace(reviewer, departments=me.departments), verdict, note)
        await uow.quality.save(done)
        item = await _item(uow, request_id, for_update=True)
        item.quality_checked(done.checked_by, str(done.verdict), done.note, now)
        await uow.commit()
    return done


async def put_reviewer(
    *, uow: UnitOfWork, caller: Principal, reviewer: Reviewer, policy: Policy, now: datetime
) -> Reviewer:
    """Administrators manage anyone; a supervisor manages reviewers of their departments, and
    decides their membership of those only: whatever else their token grants stays theirs, so
    a supervisor's record of no department takes the reviewer out of theirs (one of theirs:
    on record in one, or holding an item there). An
    administrator's decides every department, so it names one at least.
    What they hold in a department they leave goes back to its queue; one available is pushed
    what waits for them (their room may have grown)."""
    admin = caller.subject in policy.admins
    if admin and not reviewer.departments:
        raise InvalidArgument(
            {
                "reviewer.departments": Bilingual(
                    "at least one department: an administrator's record sets all of the"
                    " reviewer's departments",
                    "قسم واحد على الأقل: سجل مسؤول النظام يحدد أقسام المراجع كلها",
                )
            }
        )
    async with uow:
        me = await _me(uow, caller)
        existing = await uow.reviewers.get(reviewer.reviewer_id)
        if not admin:
            # What the existing record decides, not what it holds: one a reviewer wrote by
            # marking themselves away holds their token's departments and decides none.
            touched = reviewer.departments | (existing.decided() if existing else frozenset())
            # A record of no department touches none: only a supervisor writes one.
            if not me.supervises or not touched <= me.supervises:
                raise PermissionDenied(
                    Bilingual(
                        "only an administrator or the departments' supervisor",
                        "لمسؤول النظام أو مشرف الأقسام المعنية فقط",
                    )
                )
            decided = existing.scope if existing else frozenset()
            reviewer = replace(reviewer, scope=None if decided is None else decided | me.supervises)
        # Their claims in the departments they leave go back to the queues now: hidden from
        # them at once, they waited out the lease for anyone else. The queues that may push to
        # them, then they, are taken first, as a push takes them and their own claims take
        # them: a claim of theirs is then committed and read here, or made once this commits,
        # under the record as this leaves it.
        # A reviewer with no record worked their token's departments, which only their claims
        # name here: what they give back there may be pushed to a colleague.
        was = (
            existing.departments
            if existing
            else frozenset((await uow.items.claimed_in(reviewer.reviewer_id)).values())
        )
        if not admin and not reviewer.departments and not was & me.supervises:
            # It touches none of theirs: it would only set the capacity and availability of
            # someone who works elsewhere (or of nobody yet).
            raise PermissionDenied(
                Bilingual(
                    f"{reviewer.reviewer_id} is not a reviewer of a department you supervise",
                    f"{reviewer.reviewer_id} ليس من مراجعي قسم تشرف عليه",
                )
            )
        modes = await _pushing(uow, was | reviewer.departments, also=[reviewer.reviewer_id])
        await _unchanged(uow, reviewer.reviewer_id, existing)
        held = await uow.items.claimed_by(reviewer.reviewer_id)
        left = [item for item in held if not reviewer.keeps(item.department)]
        taken = {item.request_id for item in held}
        busy = await uow.items.claimed_in(reviewer.reviewer_id)
        if any(not reviewer.keeps(d) for r, d in busy.items() if r not in taken):
            # One another call holds (their note on it, a poll of the beneficiary's) could not
            # be waited for behind the queues: this put is tried again once it is done with.
            raise Conflict(f"an item {reviewer.reviewer_id} holds is being changed")
        await uow.reviewers.put(reviewer)
        for item in left:
            item.unassign(now, by=caller.subject)
        if left or reviewer.available:
            let_go = {item.request_id: reviewer.reviewer_id for item in left}
            await _refill(uow, modes, policy, now, let_go)
        await uow.commit()
    return reviewer


async def _unchanged(uow: UnitOfWork, reviewer_id: str, read: Reviewer | None) -> None:
    """Refuses a put whose record changed between its read and its locks (another put of the
    same reviewer, committed meanwhile): what the caller built from the read (the queues it
    locked, a supervisor's scope, the departments kept) would overwrite that change."""
    if await uow.reviewers.get(reviewer_id) != read:
        raise Conflict(f"{reviewer_id}'s record changed meanwhile")


async def announce_reviewers(*, uow: UnitOfWork) -> int:
    """Publishes once the records written before review published them, so that docs,
    notify and routing narrow those reviewers' tokens too; how many."""
    async with uow:
        announced = await uow.reviewers.announce()
        await uow.commit()
    if announced:
        log.info("published %d reviewers' records written before records were published", announced)
    return announced


async def list_reviewers(
    *, uow: UnitOfWork, caller: Principal, department: str, policy: Policy
) -> list[Reviewer]:
    async with uow:
        if caller.subject not in policy.admins:
            me = await _me(uow, caller)
            _department(replace(caller, departments=me.departments), department)
        return await uow.reviewers.in_department(department)


async def get_reviewer(
    *, uow: UnitOfWork, caller: Principal, reviewer_id: str, policy: Policy
) -> Reviewer:
    """One reviewer's record, for whoever could list it (ListReviewers: administrators, the
    reviewers of its departments) and the reviewer themselves. A record of no department is
    in no list: it is a supervisor's to read when it is of a reviewer of theirs, as a put of
    such a record is (put_reviewer), i.e. it took them out of a department they supervise,
    or they hold an item there."""
    async with uow:
        admin = caller.subject in policy.admins
        me = None if admin else await _me(uow, caller)
        record = await uow.reviewers.get(reviewer_id)
        if record is None:
            raise NotFound(_NO_SUCH_REVIEWER)
        if me is None or reviewer_id == caller.subject or record.departments & me.departments:
            return record
        if not record.departments and me.supervises:
            # Its scope is what it decides, so what it took them out of (None: every one).
            took_out = me.supervises if record.scope is None else record.scope & me.supervises
            holds = frozenset((await uow.items.claimed_in(reviewer_id)).values())
            if took_out or holds & me.supervises:
                return record
        raise PermissionDenied(
            Bilingual(
                f"{reviewer_id}'s record is for the reviewer, an administrator, the reviewers of"
                " their departments and the supervisor of one it took them out of",
                f"سجل {reviewer_id} للمراجع نفسه ومسؤول النظام ومراجعي أقسامه ومشرف قسم أخرجه"
                " منه فقط",
            )
        )


_NO_SUCH_REVIEWER = Bilingual("no such reviewer", "لا يوجد هذا المراجع")
_THEIR_OWN = Bilingual(
    "only the reviewer, their supervisor or an administrator",
    "للمراجع نفسه أو مشرفه أو مسؤول النظام فقط",
)


async def set_availability(
    *,
    uow: UnitOfWork,
    caller: Principal,
    reviewer_id: str,
    available: bool,
    policy: Policy,
    now: datetime,
) -> Reviewer:
    """Reviewers mark themselves away or back; supervisors and admins may do it for them.
    One back is pushed what waits for them."""
    async with uow:
        me = await _me(uow, caller)
        target_id = reviewer_id or caller.subject
        other = target_id != caller.subject
        if other and caller.subject not in policy.admins and not me.supervises:
            raise PermissionDenied(_THEIR_OWN)
        stored = record = await uow.reviewers.get(target_id)
        if record is None:
            if other:
                raise NotFound(_NO_SUCH_REVIEWER)
            # A record that decides no department: they keep following their token.
            record = replace(me, scope=frozenset())
        # A record of no department (taken out of every one on record) is no supervisor's.
        if (
            other
            and caller.subject not in policy.admins
            and not (record.departments and record.departments <= me.supervises)
        ):
            raise PermissionDenied(_THEIR_OWN)
        updated = replace(record, available=available)
        # As put_reviewer, before the record is written: the queues, then the reviewer.
        modes = await _pushing(uow, updated.departments, also=[target_id])
        await _unchanged(uow, target_id, stored)
        await uow.reviewers.put(updated)
        if available:
            await _refill(uow, modes, policy, now)
        await uow.commit()
    return updated if other else updated.granted(caller)


# --- search -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchFilters:
    department: str = ""
    sub_service_code: str = ""
    states: tuple[State, ...] = ()
    submitted_from: datetime | None = None
    submitted_before: datetime | None = None
    sla: SlaState | None = None


@dataclass(frozen=True)
class SearchResult:
    kind: Kind
    items: list[WorkItem]
    # Where the next page starts; None on the last.
    following: SearchPosition | None = None
    # For a request number whose check digit is missing or wrong: the requests of the
    # caller's departments one typing mistake away.
    suggestions: list[WorkItem] = field(default_factory=list)


async def search(
    *,
    uow: UnitOfWork,
    reviewer: Principal,
    query: str,
    kind: Kind | None,
    filters: SearchFilters,
    limit: int,
    after: SearchPosition | None,
    policy: Policy,
    now: datetime,
) -> SearchResult:
    """Requests of the caller's departments by number, ID, mobile, name or text, as typed.

    Only what the caller could open (GetCase's rule: the item's department is one of the
    caller's, as review's record narrows their token); one department of theirs when named.
    """
    if len(query) > MAX_QUERY:
        raise InvalidArgument({"query": at_most(CHARACTERS, MAX_QUERY)})
    start, end = filters.submitted_from, filters.submitted_before
    if start is not None and end is not None and start >= end:
        raise InvalidArgument(
            {
                "submitted_before": Bilingual(
                    "must be after submitted_from", "يلزم أن يكون بعد submitted_from"
                )
            }
        )
    size = min(limit or DEFAULT_PAGE, MAX_PAGE)
    kind = kind or (classify(query) if query.strip() else Kind.TEXT)
    numbers: tuple[str, ...] = ()
    candidates: list[str] = []
    found_id, key, words = "", "", tuple[str, ...]()
    if kind is Kind.NUMBER:
        digits = request_number(query)
        if digits is None:
            raise InvalidArgument(
                {
                    "query": Bilingual(
                        "a request number: TW and 8 or 9 digits", "رقم طلب: TW ثم 8 أو 9 أرقام"
                    )
                }
            )
        exact, candidates = number_candidates(digits)
        numbers = (exact,) if exact else ()
    elif kind is Kind.PERSON_ID:
        found_id = person_id(query) or ""
        if not found_id:
            raise InvalidArgument(
                {
                    "query": Bilingual(
                        "a national ID, iqama or border number: 10 digits",
                        "رقم هوية وطنية أو إقامة أو رقم حدود: 10 أرقام",
                    )
                }
            )
    elif kind is Kind.MOBILE:
        key = mobile_key(query)
        if not key:
            raise InvalidArgument(
                {
                    "query": Bilingual(
                        "a Saudi mobile: 05XXXXXXXX or +9665XXXXXXXX",
                        "رقم جوال سعودي: 05XXXXXXXX أو +9665XXXXXXXX",
                    )
                }
            )
    elif query.strip():
        words = tuple(terms(query))
        if not words:
            raise InvalidArgument(
                {
                    "query": Bilingual(
                        f"at least one word of {MIN_TERM} letters or more",
                        f"كلمة واحدة على الأقل من {MIN_TERM} أحرف فأكثر",
                    )
                }
            )
    states, due_after, due_by = filters.states, None, None
    if filters.sla is not None:
        # Only open items run against their SLA; "soon" is within the next working day.
        soon = policy.calendar.add_working_days(now, 1)
        states = tuple(s for s in sorted(OPEN_STATES) if not states or s in states)
        due_after, due_by = {
            SlaState.BREACHED: (None, now),
            SlaState.DUE_SOON: (now, soon),
            SlaState.ON_TRACK: (soon, None),
        }[filters.sla]
        if not states:
            return SearchResult(kind, [])
    async with uow:
        me = await _me(uow, reviewer)
        departments = me.departments
        if filters.department:
            _department(replace(reviewer, departments=departments), filters.department)
            departments = frozenset({filters.department})
        if not departments:
            return SearchResult(kind, [])
        criteria = Criteria(
            departments=departments,
            numbers=numbers,
            person_id=found_id,
            mobile_key=key,
            terms=words,
            sub_service_code=filters.sub_service_code,
            states=states,
            submitted_from=filters.submitted_from,
            submitted_before=filters.submitted_before,
            due_after=due_after,
            due_by=due_by,
        )
        if kind is Kind.NUMBER and not numbers:
            if not candidates:  # never for 8 or 9 digits; an empty list would match all
                return SearchResult(kind, [])
            near = replace(criteria, numbers=tuple(candidates))
            return SearchResult(kind, [], None, await uow.items.search(near, MAX_PAGE, None))
        items = await uow.items.search(criteria, size + 1, after)
    if len(items) > size:
        last = items[size - 1]
        return SearchResult(
            kind, items[:size], SearchPosition(last.clock.started_at, last.request_number)
        )
    return SearchResult(kind, items)
