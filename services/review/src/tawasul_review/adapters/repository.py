"""PostgreSQL-backed repositories and unit of work for review."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Self

from sqlalchemy import (
    BigInteger,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.elements import ColumnElement
from tawasul_calendar import Sla, SlaClock, SlaUnit
from tawasul_platform import tracing
from tawasul_platform.db import among, any_of
from tawasul_platform.identity import StaffRecord
from tawasul_platform.sql import Database, Row, Session
from tawasul_platform.staff import recorded
from tawasul_platform.uow import Messaging, SqlUnitOfWork

from tawasul_review.adapters import tables
from tawasul_review.adapters.events import to_event
from tawasul_review.app.ports import QueueFilter
from tawasul_review.domain.assignment import Candidate, Mode
from tawasul_review.domain.model import (
    ANSWER_IN_FLIGHT,
    OPEN_STATES,
    UNFINISHED,
    Contact,
    Decision,
    HistoryEntry,
    Missing,
    QueuePosition,
    Receipt,
    State,
    Status,
    WorkItem,
)
from tawasul_review.domain.quality import QualityCheck, QualityPosition, Verdict
from tawasul_review.domain.reviewers import Reviewer
from tawasul_review.domain.search import (
    Criteria,
    SearchPosition,
    mobile_key,
    public_texts,
    searchable,
    tokens,
    whole,
)

SERVICE = "review"
_OPEN = [s.value for s in OPEN_STATES]
_UNFINISHED = sorted(s.value for s in UNFINISHED)


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


# How many of each department's newest items a search for words reads first (`_recent_page`):
# enough for words in one item in twenty to fill a page of 50; matching them costs PostgreSQL
# about 3 µs of CPU an item (6.4 ms a two-department search that reads the table after all).
RECENT_WINDOW = 1000


def _item(row: Row) -> WorkItem:
    return WorkItem(
        request_id=row.request_id,
        request_number=row.request_number,
        department=row.department,
        queue=row.queue,
        sub_service_code=row.sub_service_code,
        description=row.description,
        applicant_id=row.applicant_id,
        document_ids=tuple(row.document_ids),
        contact=Contact(**row.contact),
        state=State(row.state),
        queued_at=row.queued_at,
        clock=SlaClock(
            started_at=row.submitted_at,
            sla=Sla(row.sla["amount"], SlaUnit(row.sla["unit"])),
            pauses=tuple((_at(a), _at(b)) for a, b in row.pauses),
            paused_since=row.paused_since,
        ),
        assignee=row.assignee,
        decision=Decision(row.decision) if row.decision else None,
        decision_message=row.decision_message,
        reason_code=row.reason_code,
        priority=row.priority,
        claimed_until=row.claimed_until,
        last_holder=row.last_holder,
        missing=tuple(Missing(**m) for m in row.missing),
        respond_by=row.respond_by,
        public_status=Status(row.public_status) if row.public_status else None,
        sla_alerted=row.sla_alerted,
        sla_next_at=row.sla_next_at,
        due_at=row.due_at,
        appeal_of=row.appeal_of,
        subject_id=row.subject_id,
        names=tuple(row.names),
        fields=dict(row.fields),
        cites_request_number=row.cites_number,
        status_sequence=row.status_sequence,
        routed_sequence=row.routed_sequence,
        routed_transfer=row.routed_transfer,
        claim_key=row.claim_key,
    )


# Built once, the values given at execution: `.values(...)` built and keyed a new statement per
# call (a quarter of a millisecond for the insert's 25 columns).
_INSERT_ITEM = insert(tables.work_items)
_UPDATE_ITEM = update(tables.work_items).where(
    tables.work_items.c.request_id == bindparam("b_request_id")
)
_INSERT_HISTORY = insert(tables.history)
_RECORD_RECEIPT = pg_insert(tables.receipts).on_conflict_do_nothing()
# Every routed poll reads these: built per call, each was keyed again every time.
# Key order: two transactions locking overlapping sets never wait on each other in turn.
_MANY = (
    select(tables.work_items)
    .where(among(tables.work_items.c.request_id, "ids"))
    .order_by(tables.work_items.c.request_id)
)
_MANY_FOR_UPDATE = _MANY.with_for_update()
_WITHDRAWALS = select(tables.withdrawals).where(among(tables.withdrawals.c.request_id, "ids"))
_FOLLOW_UPS = (
    select(tables.early_follow_ups)
    .where(among(tables.early_follow_ups.c.request_id, "ids"))
    .order_by(tables.early_follow_ups.c.at, tables.early_follow_ups.c.event_id)
)
_MODES = select(tables.queue_settings.c.queue, tables.queue_settings.c.mode).where(
    among(tables.queue_settings.c.queue, "queues")
)

# The queues are named `<department>.<name>` (PutQueueSettings, routing's rules).
_PUSHING = select(tables.queue_settings.c.queue, tables.queue_settings.c.mode).where(
    (tables.queue_settings.c.mode != Mode.PULL.value)
    & among(func.split_part(tables.queue_settings.c.queue, ".", 1, type_=Text), "departments")
)


def _state(item: WorkItem) -> dict[str, Any]:
    """The columns an item's life changes."""
    clock = item.clock
    return {
        "department": item.department,
        "queue": item.queue,
        "state": item.state.value,
        "assignee": item.assignee,
        "decision": item.decision.value if item.decision else None,
        "decision_message": item.decision_message,
        "reason_code": item.reason_code,
        "priority": item.priority,
        "queued_at": item.queued_at,
        "sla": {"amount": clock.sla.amount, "unit": clock.sla.unit.value},
        "pauses": [[a.isoformat(), b.isoformat()] for a, b in clock.pauses],
        "paused_since": clock.paused_since,
        "claimed_until": item.claimed_until,
        "last_holder": item.last_holder,
        "missing": [
            {"kind": m.kind, "name": m.name, "description": m.description} for m in item.missing
        ],
        "respond_by": item.respond_by,
        "public_status": item.public_status.value if item.public_status else None,
        "sla_alerted": item.sla_alerted,
        "sla_next_at": item.sla_next_at,
        "due_at": item.due_at,
        "appeal_of": item.appeal_of,
        # An answer to an information request adds its documents and fields.
        "document_ids": list(item.document_ids),
        "fields": dict(item.fields),
        "status_sequence": item.status_sequence,
        "routed_sequence": item.routed_sequence,
        "routed_transfer": item.routed_transfer,
        "claim_key": item.claim_key,
    }


class SqlWorkItemRepository:
    def __init__(self, session: Session) -> None:
        self._session = session
        self.seen: dict[uuid.UUID, WorkItem] = {}
        self._new: set[uuid.UUID] = set()

    async def add(self, item: WorkItem) -> None:
        self.seen[item.request_id] = item
        self._new.add(item.request_id)

    async def get(self, request_id: uuid.UUID, *, for_update: bool = False) -> WorkItem | None:
        query = select(tables.work_items).where(tables.work_items.c.request_id == request_id)
        row = (
            await self._session.execute(query.with_for_update() if for_update else query)
        ).first()
        return None if row is None else self._opened(row)

    async def lock(self, request_ids: Collection[uuid.UUID]) -> None:
        await self._session.lock(*(f"request:{r}" for r in request_ids))

    async def get_many(
        self, request_ids: Sequence[uuid.UUID], *, for_update: bool = False
    ) -> dict[uuid.UUID, WorkItem]:
        if not request_ids:
            return {}
        rows = await self._session.execute(
            _MANY_FOR_UPDATE if for_update else _MANY, {"ids": list(request_ids)}
        )
        return {row.request_id: self._opened(row) for row in rows}

    async def queue(
        self,
        department: str,
        limit: int,
        after: QueuePosition | None,
        filters: QueueFilter,
    ) -> list[WorkItem]:
        t = tables.work_items.c
        states = [filters.state.value] if filters.state else _OPEN
        where = (t.department == department) & any_of(t.state, states)
        if filters.sub_service_code:
            where &= t.sub_service_code == filters.sub_service_code
        if filters.assignee:
            where &= t.assignee == filters.assignee
        if after is not None:
            where &= tuple_(-t.priority, t.queued_at, t.request_number) > tuple_(
                literal(after.rank), literal(after.queued_at), literal(after.request_number)
            )
        rows = await self._session.execute(
            select(tables.work_items)
            .where(where)
            .order_by(t.priority.desc(), t.queued_at, t.request_number)
            .limit(limit)
        )
        return [_item(r) for r in rows]

    async def next_queued(
        self, departments: frozenset[str], languages: frozenset[str], reviewer_id: str
    ) -> WorkItem | None:
        """The next item to claim, locked; others claiming at once skip it, never wait.

        An appeal is never offered to the reviewer whose decision it appeals.
        """
        t = tables.work_items.c
        query = (
            select(tables.work_items)
            .where(
                (t.state == State.QUEUED.value)
                & any_of(t.department, sorted(departments))
                & any_of(t.contact["locale"].astext, sorted(languages))
                & (t.appeal_of != reviewer_id)
            )
            .order_by(t.priority.desc(), t.due_at, t.request_number)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        row = (await self._session.execute(query)).first()
        return None if row is None else self._opened(row)

    async def claimed_under(self, reviewer_id: str, key: str) -> WorkItem | None:
        """Waits for the row another transaction holds (a sweep checking its SLA, a decision):
        passed over, the retry would claim a second item. Once it is free, PostgreSQL reads
        its committed row again, which no longer matches if the claim lapsed or went to
        another meanwhile."""
        t = tables.work_items.c
        query = (
            select(tables.work_items)
            .where(
                (t.state == State.CLAIMED.value)
                & (t.assignee == reviewer_id)
                & (t.claim_key == key)
            )
            .limit(1)
            .with_for_update()
        )
        row = (await self._session.execute(query)).first()
        return None if row is None else self._opened(row)

    async def remember_claim(
        self, reviewer_id: str, key: str, item: WorkItem, at: datetime
    ) -> None:
        values = {
            "reviewer_id": reviewer_id,
            "key": key,
            "request_id": item.request_id,
            "request_number": item.request_number,
            "claimed_at": at,
        }
        await self._session.execute(insert(tables.claim_keys).values(values))

    async def claimed_before(self, reviewer_id: str, key: str) -> str | None:
        t = tables.claim_keys.c
        number = await self._session.scalar(
            select(t.request_number).where((t.reviewer_id == reviewer_id) & (t.key == key))
        )
        return None if number is None else str(number)

    async def forget(self, *, kept_before: datetime, keys_before: datetime, limit: int) -> int:
        """Each table's oldest first, none of them indexed on its time: a sequential scan
        per table and round, over tables this keeps small."""
        w, f, k = tables.withdrawals, tables.early_follow_ups, tables.claim_keys
        withdrawals = select(w.c.request_id).where(w.c.at < kept_before).limit(limit)
        follow_ups = select(f.c.request_id, f.c.event_id).where(f.c.at < kept_before).limit(limit)
        keys = select(k.c.reviewer_id, k.c.key).where(k.c.claimed_at < keys_before).limit(limit)
        gone = [
            await self._session.execute(
                delete(w)
                .where(w.c.request_id.in_(withdrawals.scalar_subquery()))
                .returning(w.c.request_id)
            ),
            await self._session.execute(
                delete(f)
                .where(tuple_(f.c.request_id, f.c.event_id).in_(follow_ups))
                .returning(f.c.event_id)
            ),
            await self._session.execute(
                delete(k).where(tuple_(k.c.reviewer_id, k.c.key).in_(keys)).returning(k.c.key)
            ),
        ]
        return max(len(rows.all()) for rows in gone)

    def _opened(self, row: Row) -> WorkItem:
        """An item opened to work on; the span doing it links to the trace that filed it."""
        tracing.link(row.origin)
        return self.seen.setdefault(row.request_id, _item(row))

    async def search(
        self, criteria: Criteria, limit: int, after: SearchPosition | None
    ) -> list[WorkItem]:
        """A page of items, newest first; each statement one snapshot.

        Two words of text or more are looked for first among each department's newest items
        (`_recent_page`). Otherwise, and when those cannot settle the page: a page of keys per
        department in index order, merged, then those rows. Each department's branch reads
        work_items_submitted in order (or an ID, mobile, token or trigram index, whichever the
        planner finds cheaper for the values searched) and stops at `limit` keys, however
        many departments the caller has.
        """
        t = tables.work_items.c
        where: list[ColumnElement[bool]] = []
        if criteria.numbers:
            where.append(any_of(t.request_number, criteria.numbers))
        if criteria.person_id:
            where.append(
                (t.applicant_id == criteria.person_id) | (t.subject_id == criteria.person_id)
            )
        if criteria.mobile_key:
            where.append(t.mobile_key == criteria.mobile_key)
        # normalise() leaves letters, digits and spaces only: no LIKE wildcard to escape.
        patterns = [f"%{term}%" for term in criteria.terms if not whole(term)]
        for term in criteria.terms:
            if whole(term):
                where.append(t.search_tokens.contains([term]))
        if criteria.sub_service_code:
            where.append(t.sub_service_code == criteria.sub_service_code)
        if criteria.states:
            where.append(any_of(t.state, [s.value for s in criteria.states]))
        if criteria.submitted_from is not None:
            where.append(t.submitted_at >= criteria.submitted_from)
        if criteria.submitted_before is not None:
            where.append(t.submitted_at < criteria.submitted_before)
        if criteria.due_after is not None:
            where.append(t.due_at > criteria.due_after)
        if criteria.due_by is not None:
            where.append(t.due_at <= criteria.due_by)
        if after is not None:
            where.append(
                tuple_(t.submitted_at, t.request_number)
                < tuple_(literal(after.submitted_at), literal(after.request_number))
            )
        # Whether reading in order or through the trigram index is cheaper depends on the words
        # searched for (a word in an eighth of the rows, or in none): planned for each search's
        # own values, never with the generic plan a prepared statement falls back to (which
        # took 2 s a call at 1M stored requests for a common word; issue 15, P8).
        await self._session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        if len(patterns) > 1:
            recent = await self._recent_page(sorted(criteria.departments), where, patterns, limit)
            if recent is not None:
                return recent
        where.extend(t.search_text.like(p) for p in patterns)
        # Keys first, then the rows: a branch's filters on state, due date and sub-service are
        # read off work_items_submitted itself (an index-only scan), so passing over open items
        # not yet due costs index entries, not a heap page each.
        key = (t.request_id, t.submitted_at, t.request_number)
        order = (t.submitted_at.desc(), t.request_number.desc())
        branches = [
            select(*key).where(t.department == department, *where).order_by(*order).limit(limit)
            for department in sorted(criteria.departments)
        ]
        if len(branches) == 1:
            page = branches[0].subquery()
        else:
            merged = union_all(*(b.subquery().select() for b in branches)).subquery()
            page = (
                select(merged)
                .order_by(merged.c.submitted_at.desc(), merged.c.request_number.desc())
                .limit(limit)
                .subquery()
            )
        query = (
            select(tables.work_items)
            .join(page, page.c.request_id == t.request_id)
            .order_by(page.c.submitted_at.desc(), page.c.request_number.desc())
        )
        rows = await self._session.execute(query)
        return [_item(r) for r in rows]

    async def _recent_page(
        self,
        departments: list[str],
        where: list[ColumnElement[bool]],
        patterns: list[str],
        limit: int,
    ) -> list[WorkItem] | None:
        """The page from each department's RECENT_WINDOW newest items that pass `where`,
        matched against the words; None when those cannot settle it.

        The planner multiplies the words' selectivities as if they were independent, so two
        words of one common phrase look rare to it: it read every item holding them through
        the trigram index to sort them (370 ms a page at 1.5M items, P8's common_text, where
        reading in order took 1 ms). One word's estimate comes from the column's statistics
        alone and is left to the planner: a rare word would pay for the window for nothing.
        A department's part of the page is settled when its window holds `limit` matches or
        all its items, or reaches back past the page's last.
        """
        t = tables.work_items.c
        branches = []
        for department in departments:
            newest = (
                select(
                    t.request_id,
                    t.submitted_at,
                    t.request_number,
                    and_(*(t.search_text.like(p) for p in patterns)).label("hit"),
                )
                .where(t.department == department, *where)
                .order_by(t.submitted_at.desc(), t.request_number.desc())
                .limit(RECENT_WINDOW)
                .subquery()
            )
            n = newest.c
            in_order = (n.submitted_at.desc(), n.request_number.desc())
            counted = select(
                n.request_id,
                n.hit,
                func.row_number().over(order_by=in_order).label("seen"),
                func.count().filter(n.hit).over(order_by=in_order).label("hits"),
            ).subquery()
            c = counted.c
            taken = c.hit & (c.hits <= limit)
            branches.append(
                select(c.request_id, taken.label("taken"), c.seen).where(
                    taken | (c.seen == RECENT_WINDOW)
                )
            )
        found = union_all(*branches).subquery()
        query = select(tables.work_items, found.c.taken, found.c.seen).join(
            found, found.c.request_id == t.request_id
        )
        rows = (await self._session.execute(query)).all()
        matches = sorted(
            (r for r in rows if r.taken),
            key=lambda r: (r.submitted_at, r.request_number),
            reverse=True,
        )
        page = matches[:limit]
        for floor in (r for r in rows if r.seen == RECENT_WINDOW):
            if sum(1 for r in matches if r.department == floor.department) >= limit:
                continue
            last = (page[-1].submitted_at, page[-1].request_number) if len(page) == limit else None
            if last is None or last < (floor.submitted_at, floor.request_number):
                return None
        return [_item(r) for r in page]

    async def held_by(self, reviewer_id: str) -> int:
        """The committed claims of the reviewer, as this transaction left them: the items it
        holds are counted as it changed them (a poll pushes several to one reviewer)."""
        t = tables.work_items.c
        claimed = (t.state == State.CLAIMED.value) & (t.assignee == reviewer_id)
        # Nothing of this transaction's to leave out: the plain count (an empty array has no
        # type in the SQL that bench EXPLAINs).
        if not self.seen:
            return int(await self._session.scalar(select(func.count()).where(claimed)) or 0)
        query = select(func.count()).where(claimed & ~among(t.request_id, "seen"))
        stored = int(await self._session.scalar(query, {"seen": list(self.seen)}) or 0)
        return stored + self.holding().get(reviewer_id, 0)

    async def claimed_in(self, reviewer_id: str) -> dict[uuid.UUID, str]:
        t = tables.work_items.c
        rows = await self._session.execute(
            select(t.request_id, t.department).where(
                (t.state == State.CLAIMED.value) & (t.assignee == reviewer_id)
            )
        )
        return {row.request_id: row.department for row in rows}

    async def claimed_by(self, reviewer_id: str) -> list[WorkItem]:
        t = tables.work_items
        rows = await self._session.execute(
            select(t)
            .where((t.c.state == State.CLAIMED.value) & (t.c.assignee == reviewer_id))
            .order_by(t.c.request_id)
            .with_for_update(skip_locked=True)
        )
        return [self._opened(row) for row in rows]

    async def waiting(
        self,
        department: str,
        queues: Collection[str],
        languages: Collection[str],
        limit: int,
        *,
        passed: Collection[uuid.UUID] = (),
    ) -> list[WorkItem]:
        """The queued items of the queues, as this transaction leaves them, in claim-next's
        order (work_items_next's): `limit` at most, locked; those others hold are skipped, and
        those `passed` (read already, so among those it read: `seen`)."""
        t = tables.work_items.c
        where = (
            (t.state == State.QUEUED.value)
            & (t.department == department)
            & any_of(t.queue, sorted(queues))
            & any_of(t.contact["locale"].astext, sorted(languages))
        )
        # Those of this transaction's are read as it left them (one it released reads as
        # claimed here until it is flushed).
        if self.seen:
            where &= ~among(t.request_id, "seen")
        rows = await self._session.execute(
            select(tables.work_items)
            .where(where)
            .order_by(t.priority.desc(), t.due_at, t.request_number)
            .limit(limit)
            .with_for_update(skip_locked=True),
            {"seen": list(self.seen)} if self.seen else {},
        )
        found = [self._opened(r) for r in rows]
        mine = [
            i
            for i in self.seen.values()
            if i.state is State.QUEUED
            and i.department == department
            and i.queue in queues
            and i.contact.locale in languages
            and i.request_id not in passed
        ]
        last = datetime.max.replace(tzinfo=UTC)
        return sorted(
            {i.request_id: i for i in (*found, *mine)}.values(),
            key=lambda i: (-i.priority, i.due_at or last, i.request_number),
        )[:limit]

    def holding(self) -> Counter[str]:
        """How many of the items this transaction holds each reviewer holds in it."""
        return Counter(i.assignee for i in self.seen.values() if i.state is State.CLAIMED)

    async def due_for_sweep(self, now: datetime, limit: int) -> list[WorkItem]:
        """Lapsed claims, passed information deadlines and SLA marks reached, locked."""
        t = tables.work_items.c
        query = (
            select(tables.work_items)
            .where(
                ((t.state == State.CLAIMED.value) & (t.claimed_until <= now))
                | ((t.state == State.WAITING.value) & (t.respond_by <= now - ANSWER_IN_FLIGHT))
                | (t.sla_next_at <= now)
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = (await self._session.execute(query)).all()
        return [self.seen.setdefault(r.request_id, _item(r)) for r in rows]

    async def history(self, request_id: uuid.UUID) -> list[HistoryEntry]:
        """The item's history with notify's delivery receipts, in time order."""
        h = tables.history.c
        rows = await self._session.execute(
            select(tables.history).where(h.request_id == request_id).order_by(h.at, h.id)
        )
        entries = [HistoryEntry(r.at, r.actor, r.action, r.note, r.internal) for r in rows]
        r = tables.receipts.c
        receipts = await self._session.execute(
            select(tables.receipts).where(r.request_id == request_id).order_by(r.at)
        )
        entries += [
            HistoryEntry(x.at, "notify", f"notification_{x.status}", f"{x.channel}: {x.cause}")
            for x in receipts
        ]
        return sorted(entries, key=lambda e: e.at)

    async def record_receipts(self, receipts: Sequence[Receipt]) -> None:
        if not receipts:
            return
        await self._session.execute(
            _RECORD_RECEIPT,
            [
                {
                    "event_id": r.event_id,
                    "request_id": r.request_id,
                    "at": r.at,
                    "channel": r.channel[:20],
                    "status": r.status[:20],
                    "cause": r.cause[:100],
                }
                for r in receipts
            ],
        )

    async def backlog(self, department: str, now: datetime, soon: datetime) -> list[Row]:
        t = tables.work_items.c
        open_items = any_of(t.state, _OPEN)
        query = (
            select(
                t.queue,
                func.count().filter(open_items).label("size"),
                func.min(t.queued_at).filter(open_items).label("oldest"),
                func.count()
                .filter(open_items & (t.due_at > now) & (t.due_at <= soon))
                .label("due_soon"),
                func.count().filter(open_items & (t.due_at <= now)).label("breached"),
                func.count().filter(t.state == State.WAITING.value).label("waiting"),
            )
            .where((t.department == department) & any_of(t.state, [*_OPEN, State.WAITING.value]))
            .group_by(t.queue)
            .order_by(t.queue)
        )
        return list((await self._session.execute(query)).all())

    async def withdrawals(
        self, request_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[datetime, str, bool]]:
        if not request_ids:
            return {}
        rows = await self._session.execute(_WITHDRAWALS, {"ids": list(request_ids)})
        return {row.request_id: (row.at, row.reason, row.by_office) for row in rows}

    async def remember_withdrawal(
        self, request_id: uuid.UUID, at: datetime, reason: str, by_office: bool
    ) -> None:
        t = tables.withdrawals
        values = {"request_id": request_id, "at": at, "reason": reason, "by_office": by_office}
        await self._session.execute(pg_insert(t).values(values).on_conflict_do_nothing())

    async def follow_ups(
        self, request_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[tuple[datetime, str]]]:
        if not request_ids:
            return {}
        followed: dict[uuid.UUID, list[tuple[datetime, str]]] = {}
        for row in await self._session.execute(_FOLLOW_UPS, {"ids": list(request_ids)}):
            followed.setdefault(row.request_id, []).append((row.at, row.message))
        return followed

    async def remember_follow_up(
        self, request_id: uuid.UUID, event_id: str, at: datetime, message: str
    ) -> None:
        values = {"request_id": request_id, "event_id": event_id, "at": at, "message": message}
        await self._session.execute(
            pg_insert(tables.early_follow_ups).values(values).on_conflict_do_nothing()
        )

    async def scheduled_with(self) -> int | None:
        t = tables.schedule_calendar.c
        row = (await self._session.execute(select(t.version).where(t.id == 1))).first()
        return None if row is None else int(row.version)

    async def follow_calendar(self, version: int) -> None:
        t = tables.schedule_calendar
        await self._session.execute(
            pg_insert(t)
            .values(id=1, version=version)
            .on_conflict_do_update(index_elements=[t.c.id], set_={"version": version})
        )

    async def unfinished(self, after: uuid.UUID | None, limit: int) -> list[WorkItem]:
        """Up to `limit` unfinished items after `after` in key order, locked."""
        t = tables.work_items.c
        where = any_of(t.state, _UNFINISHED)
        if after is not None:
            where &= t.request_id > after
        query = (
            select(tables.work_items)
            .where(where)
            .order_by(t.request_id)
            .limit(limit)
            .with_for_update()
        )
        rows = (await self._session.execute(query)).all()
        return [self.seen.setdefault(r.request_id, _item(r)) for r in rows]

    async def flush(self) -> None:
        t = tables.work_items
        # Whatever their number, the new items are one statement and the history another.
        new: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        for item in self.seen.values():
            # The search columns change in the same statement as what they index.
            said = public_texts(item.new_history)
            if item.request_id in self._new:
                indexed = searchable(item.description, *item.names, *said)
                new.append(
                    {
                        "request_id": item.request_id,
                        "request_number": item.request_number,
                        "sub_service_code": item.sub_service_code,
                        "description": item.description,
                        "applicant_id": item.applicant_id,
                        "contact": {
                            "mobile": item.contact.mobile,
                            "email": item.contact.email,
                            "locale": item.contact.locale,
                        },
                        "submitted_at": item.clock.started_at,
                        "subject_id": item.subject_id,
                        "names": list(item.names),
                        "cites_number": item.cites_request_number,
                        "mobile_key": mobile_key(item.contact.mobile),
                        "search_text": indexed,
                        "search_tokens": tokens(indexed),
                        "origin": tracing.request_traceparent(str(item.request_id)),
                        **_state(item),
                    }
                )
            else:
                values = _state(item)
                # Names an answer corrected are indexed as messages are, added: the old ones
                # stay findable, being what the request was filed under.
                named: list[str] = []
                if item.renamed_from is not None:
                    values["names"] = list(item.names)
                    named = [n for n in item.names if n not in item.renamed_from]
                    item.renamed_from = None
                added = searchable(*named, *said)
                if added:
                    values["search_text"] = func.concat_ws(" ", t.c.search_text, added)
                    values["search_tokens"] = func.array_cat(
                        t.c.search_tokens, literal(tokens(added), ARRAY(Text))
                    )
                    await self._session.execute(
                        update(t).where(t.c.request_id == item.request_id).values(**values)
                    )
                else:
                    await self._session.execute(
                        _UPDATE_ITEM, {"b_request_id": item.request_id, **values}
                    )
            history.extend(
                {
                    "request_id": item.request_id,
                    "at": h.at,
                    "actor": h.actor,
                    "action": h.action,
                    "note": h.note,
                    "internal": h.internal,
                }
                for h in item.new_history
            )
            item.new_history.clear()
        if new:
            await self._session.execute(_INSERT_ITEM, new)
        if history:
            await self._session.execute(_INSERT_HISTORY, history)
        self._new.clear()


def _reviewer(row: Row) -> Reviewer:
    return Reviewer(
        reviewer_id=row.reviewer_id,
        departments=frozenset(row.departments),
        languages=frozenset(row.languages),
        capacity=row.capacity,
        available=row.available,
        supervises=frozenset(row.supervises),
        scope=None if row.scope is None else frozenset(row.scope),
    )


# A record's version: the microseconds of the clock when it was written (and always past the
# one before), so that a review database restored from a backup or started again empty still
# writes versions past those the other services keep, which they would otherwise ignore.
_RECORDED_NOW = cast(func.extract("epoch", func.clock_timestamp()) * 1_000_000, BigInteger)


class SqlReviewerRepository:
    def __init__(self, session: Session) -> None:
        self._session = session
        # Records changed in this unit of work, with their new versions, to publish.
        self.recorded: list[StaffRecord] = []

    async def get(self, reviewer_id: str) -> Reviewer | None:
        t = tables.reviewers
        row = (await self._session.execute(select(t).where(t.c.reviewer_id == reviewer_id))).first()
        return None if row is None else _reviewer(row)

    async def lock(self, *reviewer_ids: str) -> None:
        await self._session.lock(*(f"reviewer:{r}" for r in reviewer_ids))

    async def put(self, reviewer: Reviewer) -> None:
        t = tables.reviewers
        values = {
            "departments": sorted(reviewer.departments),
            "languages": sorted(reviewer.languages),
            "capacity": reviewer.capacity,
            "available": reviewer.available,
            "supervises": sorted(reviewer.supervises),
            "scope": None if reviewer.scope is None else sorted(reviewer.scope),
        }
        version = await self._session.scalar(
            pg_insert(t)
            .values(reviewer_id=reviewer.reviewer_id, version=_RECORDED_NOW, **values)
            .on_conflict_do_update(
                index_elements=[t.c.reviewer_id],
                set_=values | {"version": func.greatest(t.c.version + 1, _RECORDED_NOW)},
            )
            .returning(t.c.version)
        )
        self.recorded.append(reviewer.record(version))

    async def announce(self) -> int:
        """Publishes the records never published (those of before versions), once each."""
        t = tables.reviewers
        rows = await self._session.execute(
            update(t).where(t.c.version == 0).values(version=_RECORDED_NOW).returning(t)
        )
        before = len(self.recorded)
        self.recorded.extend(_reviewer(r).record(r.version) for r in rows)
        return len(self.recorded) - before

    async def in_department(self, department: str) -> list[Reviewer]:
        t = tables.reviewers
        rows = await self._session.execute(
            select(t).where(t.c.departments.contains([department])).order_by(t.c.reviewer_id)
        )
        return [_reviewer(r) for r in rows]

    async def supervisors_of(self, department: str) -> list[str]:
        t = tables.reviewers
        rows = await self._session.execute(
            select(t.c.reviewer_id)
            .where(t.c.supervises.contains([department]))
            .order_by(t.c.reviewer_id)
        )
        return [r.reviewer_id for r in rows]


class SqlQueueRepository:
    def __init__(self, session: Session, items: SqlWorkItemRepository) -> None:
        self._session = session
        self._items = items

    async def mode(self, queue: str) -> tuple[Mode, str]:
        """The queue's assignment mode and the reviewer it gave work to last."""
        t = tables.queue_settings
        row = (await self._session.execute(select(t).where(t.c.queue == queue))).first()
        return (Mode.PULL, "") if row is None else (Mode(row.mode), row.last_assigned)

    async def modes(self, queues: Collection[str]) -> dict[str, Mode]:
        if not queues:
            return {}
        rows = await self._session.execute(_MODES, {"queues": list(queues)})
        return {row.queue: Mode(row.mode) for row in rows}

    async def pushing(self, departments: Collection[str]) -> dict[str, Mode]:
        if not departments:
            return {}
        rows = await self._session.execute(_PUSHING, {"departments": sorted(departments)})
        return {row.queue: Mode(row.mode) for row in rows}

    async def put(self, queue: str, mode: Mode) -> None:
        t = tables.queue_settings
        await self._session.execute(
            pg_insert(t)
            .values(queue=queue, mode=mode.value)
            .on_conflict_do_update(index_elements=[t.c.queue], set_={"mode": mode.value})
        )

    async def assigned(self, queue: str, reviewer_id: str) -> None:
        t = tables.queue_settings
        await self._session.execute(
            update(t).where(t.c.queue == queue).values(last_assigned=reviewer_id)
        )

    async def lock(self, *queues: str) -> None:
        """One assignment per queue at a time, so round-robin's pointer is never raced."""
        await self._session.lock(*(f"queue:{queue}" for queue in queues))

    async def candidates(self, department: str) -> list[Candidate]:
        """The department's reviewers with their loads as `held_by` counts them."""
        r, w = tables.reviewers.c, tables.work_items.c
        # Each reviewer's own claims (work_items_held), not every claim of the office.
        load = (
            select(func.count())
            .where(
                (w.state == State.CLAIMED.value)
                & (w.assignee == r.reviewer_id)
                & ~among(w.request_id, "seen")
            )
            .scalar_subquery()
        )
        rows = await self._session.execute(
            select(tables.reviewers, load.label("load")).where(
                r.departments.contains([department])
            ),
            {"seen": list(self._items.seen)},
        )
        holding = self._items.holding()
        return [
            Candidate(
                reviewer_id=row.reviewer_id,
                available=row.available,
                languages=frozenset(row.languages),
                capacity=row.capacity,
                load=row.load + holding.get(row.reviewer_id, 0),
            )
            for row in rows
        ]


def _check(row: Row) -> QualityCheck:
    return QualityCheck(
        request_id=row.request_id,
        request_number=row.request_number,
        department=row.department,
        decision=Decision(row.decision),
        decided_by=row.decided_by,
        sampled_at=row.sampled_at,
        checked_by=row.checked_by,
        verdict=Verdict(row.verdict) if row.verdict else None,
        note=row.note,
        replaced_decision=Decision(row.replaced_decision) if row.replaced_decision else None,
        replaced_by=row.replaced_by,
    )


def _replaced(check: QualityCheck) -> str:
    return check.replaced_decision.value if check.replaced_decision else ""


class SqlQualityRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def add(self, check: QualityCheck) -> None:
        await self._session.execute(
            pg_insert(tables.quality_checks)
            .values(
                request_id=check.request_id,
                request_number=check.request_number,
                department=check.department,
                decision=check.decision.value,
                decided_by=check.decided_by,
                sampled_at=check.sampled_at,
                replaced_decision=_replaced(check),
                replaced_by=check.replaced_by,
            )
            .on_conflict_do_nothing()
        )

    async def get(self, request_id: uuid.UUID) -> QualityCheck | None:
        t = tables.quality_checks
        row = (
            await self._session.execute(
                select(t).where(t.c.request_id == request_id).with_for_update()
            )
        ).first()
        return None if row is None else _check(row)

    async def save(self, check: QualityCheck) -> None:
        t = tables.quality_checks
        await self._session.execute(
            update(t)
            .where(t.c.request_id == check.request_id)
            .values(
                # An appeal's decision takes the place of the one it replaced, in the
                # department that made it (a transfer may have moved the request).
                request_number=check.request_number,
                department=check.department,
                decision=check.decision.value,
                decided_by=check.decided_by,
                sampled_at=check.sampled_at,
                replaced_decision=_replaced(check),
                replaced_by=check.replaced_by,
                checked_by=check.checked_by,
                verdict=check.verdict.value if check.verdict else "",
                note=check.note,
            )
        )

    async def in_department(
        self,
        department: str,
        *,
        include_done: bool,
        limit: int,
        after: QualityPosition | None = None,
    ) -> list[QualityCheck]:
        t = tables.quality_checks.c
        key = tuple_(t.sampled_at, t.request_id)
        query = select(tables.quality_checks).where(t.department == department).limit(limit)
        if include_done:
            query = query.order_by(t.sampled_at.desc(), t.request_id.desc())
        else:
            query = query.where(t.checked_by == "").order_by(t.sampled_at, t.request_id)
        if after is not None:
            position = tuple_(literal(after.sampled_at), literal(after.request_id))
            query = query.where(key < position if include_done else key > position)
        rows = await self._session.execute(query)
        return [_check(r) for r in rows]


class ReviewUnitOfWork(SqlUnitOfWork):
    items: SqlWorkItemRepository
    reviewers: SqlReviewerRepository
    queues: SqlQueueRepository
    quality: SqlQualityRepository

    def __init__(self, database: Database) -> None:
        super().__init__(database, Messaging(SERVICE, tables.outbox, tables.inbox))

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.items = SqlWorkItemRepository(self.session)
        self.reviewers = SqlReviewerRepository(self.session)
        self.queues = SqlQueueRepository(self.session, self.items)
        self.quality = SqlQualityRepository(self.session)
        return self

    async def commit(self) -> None:
        await self.items.flush()
        for item in self.items.seen.values():
            for event in item.events:
                self.publish(to_event(event))
            item.events.clear()
        now = datetime.now(UTC)
        for record in self.reviewers.recorded:
            self.publish(recorded(record, producer=SERVICE, at=now))
        self.reviewers.recorded.clear()
        await super().commit()
