"""Docs reads three topics apart: intake's submissions, routing's placements and the
beneficiary's actions. Each keeps a request's events in order, but one topic may lag behind
another by any amount, and each delivers at least once. A state machine (hypothesis) delivers
one request's events in generated interleavings, delivers applied ones again at random, on
PostgreSQL, and checks after every step which department holds each document and which
attachments docs published."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tawasul_docs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from tawasul.events.v1 import events_pb2
from tawasul_docs import bootstrap
from tawasul_docs.adapters import tables
from tawasul_docs.adapters.repository import DocsUnitOfWork
from tawasul_docs.app import handlers
from tawasul_docs.domain.inspection import Kind
from tawasul_docs.domain.model import Document
from tawasul_platform.db import among
from tawasul_platform.errors import NotFound
from tawasul_platform.identity import Principal, Role
from tawasul_platform.migrations import upgrade
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine
from tawasul_platform.topics import (
    APPLICANT_ACTIONS,
    DOCUMENT_EVENTS,
    REQUEST_ROUTED,
    REQUEST_SUBMITTED,
)

MIGRATIONS = Path(tawasul_docs.__file__).resolve().parent / "migrations"
DEPARTMENTS = ("passports", "visas", "residency")
TOPICS = (REQUEST_SUBMITTED, REQUEST_ROUTED, APPLICANT_ACTIONS)
CREATED = datetime(2026, 12, 5, 9, tzinfo=UTC)


def envelope(request_id: uuid.UUID, **payload: Any) -> events_pb2.Envelope:
    return events_pb2.Envelope(event_id=str(uuid.uuid4()), request_id=str(request_id), **payload)


def carried(event: events_pb2.Envelope) -> set[uuid.UUID]:
    """The documents an event brings to its request."""
    for field in ("request_submitted", "request_routed", "request_answered"):
        if event.HasField(field):
            return {uuid.UUID(d) for d in getattr(event, field).document_ids}
    return set()


class Arrivals(RuleBasedStateMachine):
    def __init__(self, runner: asyncio.Runner, uow: Callable[[], DocsUnitOfWork]) -> None:
        super().__init__()
        self.runner = runner
        self.uow = uow
        self.subscriptions = bootstrap.subscriptions(uow)
        self.request_id = uuid.uuid4()
        self.submitted_with = (uuid.uuid4(), uuid.uuid4())
        self.answers = ((uuid.uuid4(),), (), (uuid.uuid4(), uuid.uuid4()))
        self.stray = uuid.uuid4()  # uploaded, never sent with the request
        self.documents = [*self.submitted_with, *(d for a in self.answers for d in a), self.stray]
        self.runner.run(self._store())
        self.streams: dict[str, list[events_pb2.Envelope]] = {}
        self.delivered: dict[str, int] = dict.fromkeys(TOPICS, 0)

    async def _store(self) -> None:
        uow = self.uow()
        async with uow:
            for document_id in self.documents:
                await uow.documents.add(
                    Document(
                        id=document_id,
                        owner_id="1000000008",
                        filename="scan.pdf",
                        content_type=Kind.PDF,
                        size_bytes=1,
                        sha256="0" * 64,
                        object_key=f"documents/{document_id}",
                        created_at=CREATED,
                    )
                )
            await uow.commit()

    @initialize(placed=st.lists(st.sampled_from(DEPARTMENTS), min_size=1, max_size=3))
    def events(self, placed: list[str]) -> None:
        """Routing places the request, then transfers it (with the submission's documents);
        the beneficiary answers, follows up, and answers again."""
        r, docs = self.request_id, [str(d) for d in self.submitted_with]
        submitted = events_pb2.RequestSubmitted(request_id=str(r), document_ids=docs)
        actions = [
            envelope(
                r,
                request_answered=events_pb2.RequestAnswered(
                    request_id=str(r), document_ids=[str(d) for d in answer]
                ),
            )
            for answer in self.answers
        ]
        followed = events_pb2.RequestFollowedUp(request_id=str(r))
        actions.insert(1, envelope(r, request_followed_up=followed))
        self.streams = {
            REQUEST_SUBMITTED: [envelope(r, request_submitted=submitted)],
            REQUEST_ROUTED: [
                envelope(
                    r,
                    request_routed=events_pb2.RequestRouted(
                        request_id=str(r), department_code=department, document_ids=docs
                    ),
                )
                for department in placed
            ],
            APPLICANT_ACTIONS: actions,
        }

    def applied(self) -> list[events_pb2.Envelope]:
        return [e for topic in TOPICS for e in self.streams[topic][: self.delivered[topic]]]

    @rule(topic=st.sampled_from(TOPICS), polled=st.integers(min_value=1, max_value=2))
    def deliver(self, topic: str, polled: int) -> None:
        """The topic's next events, `polled` of them in one poll where there are."""
        start = self.delivered[topic]
        events = self.streams[topic][start : start + polled]
        if events:
            self.runner.run(self.subscriptions.deliver(topic, *events))
            self.delivered[topic] += len(events)

    @precondition(lambda self: any(self.delivered.values()))
    @rule(data=st.data())
    def again(self, data: st.DataObject) -> None:
        """An event already applied, delivered once more: the others may have moved on."""
        topic = data.draw(st.sampled_from([t for t in TOPICS if self.delivered[t]]))
        event = data.draw(st.sampled_from(self.streams[topic][: self.delivered[topic]]))
        self.runner.run(self.subscriptions.deliver(topic, event))

    def expected(self) -> tuple[dict[uuid.UUID, str], list[uuid.UUID]]:
        """Each document brought so far, readable by the department the last placement named
        once routing placed the request; and each attached once."""
        brought = set().union(*(carried(e) for e in self.applied()))
        placed = self.streams[REQUEST_ROUTED][: self.delivered[REQUEST_ROUTED]]
        holders = {d: placed[-1].request_routed.department_code for d in brought} if placed else {}
        return holders, sorted(brought)

    async def _stored(self) -> tuple[dict[uuid.UUID, str], list[uuid.UUID]]:
        a, o = tables.document_access, tables.outbox
        keys = [str(d) for d in self.documents]
        uow = self.uow()
        async with uow:
            session = uow.session
            rows = await session.execute(
                select(a.c.document_id, a.c.department).where(a.c.request_id == self.request_id)
            )
            holders = {row.document_id: row.department for row in rows}
            published = await session.scalars(
                select(o.c.payload)
                .where((o.c.topic == DOCUMENT_EVENTS) & among(o.c.key, "keys"))
                .order_by(o.c.id),
                {"keys": keys},
            )
        attached = []
        for payload in published:
            changed = events_pb2.Envelope.FromString(payload).document_changed
            if changed.change == events_pb2.DOCUMENT_CHANGE_ATTACHED:
                assert changed.request_id == str(self.request_id)
                attached.append(uuid.UUID(changed.document_id))
        return holders, sorted(attached)

    @invariant()
    def each_document_sits_where_the_last_placement_put_it(self) -> None:
        if self.streams:
            assert self.runner.run(self._stored()) == self.expected()

    def teardown(self) -> None:
        """Once every event has come, a reviewer reads exactly the request's documents, and
        only in its last department."""
        if not self.streams:
            return
        for topic in TOPICS:
            self.deliver(topic, polled=len(self.streams[topic]))
        holders, _ = self.expected()
        for document_id in self.documents:
            for department in DEPARTMENTS:
                reviewer = Principal("E1001", Role.REVIEWER, frozenset({department}))
                readable = self.runner.run(self._reads(reviewer, document_id))
                assert readable == (holders.get(document_id) == department)

    async def _reads(self, reviewer: Principal, document_id: uuid.UUID) -> bool:
        try:
            await handlers.get_document(
                uow=self.uow(), caller=reviewer, document_id=str(document_id)
            )
        except NotFound:
            return False
        return True


def test_every_arrival_order_leaves_each_document_with_its_requests_department(
    database_url: str,
) -> None:
    upgrade(MIGRATIONS, database_url)
    with asyncio.Runner() as runner:
        engine = async_engine(database_url, pool_size=2)
        database = Database(engine.sync_engine)

        class Run(Arrivals):
            def __init__(self) -> None:
                super().__init__(runner, lambda: DocsUnitOfWork(database))

        try:
            run_state_machine_as_test(
                Run,
                settings=settings(
                    max_examples=40,
                    stateful_step_count=20,
                    deadline=None,
                    derandomize=True,
                    database=None,
                ),
            )
        finally:
            runner.run(engine.dispose())
