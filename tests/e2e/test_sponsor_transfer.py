"""A person who leaves an account's record on the real stack (a worker transferred to a new
sponsor, a dependent moved to another family record): the new account's submission cancels
the old account's open request for them, and every service says so where its users look.

Intake reads its registry file (the stand-in for Absher / Muqeem) when it starts: the test
restarts intake on a copy of the development registry that it edits, then on the stack's own
file again, as an operator would after changing the registry's data."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
from tawasul.common.v1 import common_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul.notify.v1 import notify_pb2
from tawasul.review.v1 import review_pb2
from tawasul_devstack.components import Component
from tawasul_devstack.components.services import Service
from tawasul_devstack.config import DEV_REGISTRY, StackConfig, repo_root
from tawasul_devstack.journey import (
    PASSPORT_PHOTO_FIELDS,
    Clients,
    eventually,
    new_citizen,
    new_resident,
)
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role

from tests.e2e.topics import envelopes

# Two establishments of the development registry; the worker is one of the test's own.
OLD_SPONSOR, NEW_SPONSOR = "7000000005", "7000000013"
# Two citizens of the development registry; the dependent is one of the test's own.
OLD_HOLDER, NEW_HOLDER = "1000000008", "1000000016"
# Intake's history and review's record of the office's cancellation (intake's OFF_RECORD).
OFF_RECORD_EN = "cancelled automatically: the person is no longer on the filing account's record"
OFF_RECORD_AR = "أُلغي تلقائيًا: لم يعد الشخص مسجلًا على سجل الحساب الذي قدّم الطلب"
# The old sponsor's SMS and e-mail subject, in Arabic, its contact's language (notify's
# cancelled_off_record templates, in an establishment's words).
SMS_OFF_RECORD = "إذ لم يعد العامل الذي يخصه الطلب على كفالة منشأتك"
SUBJECT_OFF_RECORD = "لم يعد العامل على كفالة منشأتك"
# The same, in a family's words (a holder's contact).
SMS_OFF_FAMILY_RECORD = "إذ لم يعد الشخص الذي يخصه الطلب مسجلًا على حسابك"
SUBJECT_OFF_FAMILY_RECORD = "لم يعد الشخص مسجلًا على حسابك"
TIMEOUT = DEFAULT_DEADLINE_SECONDS


@dataclass(frozen=True)
class _OwnRegistry(StackConfig):
    """The stack's settings, but for the registry file intake is started with."""

    registry_file: Path = Path()

    def service_env(self, service: str, replica: int = 1) -> dict[str, str]:
        return {
            **super().service_env(service, replica),
            "TAWASUL_REGISTRY_FILE": str(self.registry_file),
        }


class Registry:
    """The development registry with the test's person on one account's record, and intake
    started on it."""

    def __init__(
        self, stack: Stack, clients: Clients, directory: Path, person: dict[str, str]
    ) -> None:
        self._stack = stack
        self._clients = clients
        self._file = directory / "registry.json"
        self._person = person
        self.person = person["id"]
        # The intake this test started, stopped by the object that started it: that one
        # reaps it, and so waits for its last thread (its ports) to be gone.
        self._intake: Service | None = None

    async def on_record_of(self, holder: str, relation: str) -> None:
        """The registry has the person on `holder`'s record only, as `relation` ("dependent",
        "sponsored_worker"), and intake reads it."""
        raw: dict[str, Any] = json.loads((repo_root() / DEV_REGISTRY).read_text("utf-8"))
        raw["people"].append(self._person)
        raw["relations"].append({"holder": holder, "person": self.person, "kind": relation})
        self._file.write_text(json.dumps(raw, ensure_ascii=False), "utf-8")
        settings = {f.name: getattr(self._stack.config, f.name) for f in fields(StackConfig)}
        intake = Service(_OwnRegistry(**settings, registry_file=self._file), "intake", 1, "intake")
        await asyncio.to_thread(self._restart, intake)
        self._intake = intake
        await self._reconnected()

    async def restore(self) -> None:
        """Intake on the stack's own registry file again."""
        if self._intake is not None:
            await asyncio.to_thread(self._restart, self._stack.component("intake"))
            self._intake = None
            await self._reconnected()

    async def _reconnected(self) -> None:
        """Once the clients' channel to intake is connected again: it tried while intake was
        down and waits out its backoff, failing calls at once meanwhile."""
        await asyncio.wait_for(self._clients.channel("intake").channel_ready(), 60)

    def _restart(self, intake: Component) -> None:
        """Stops the intake that runs and starts `intake`; returns once it serves."""
        if self._intake is None:
            self._stack.stop_service("intake")
        else:
            self._intake.stop(signal.SIGTERM)
        intake.start()
        intake.ready()


@pytest.fixture
async def registry(stack: Stack, clients: Clients, tmp_path: Path) -> AsyncIterator[Registry]:
    """Intake on the test's registry with its worker, and on the stack's own again afterwards,
    so that the tests after this one meet the stack as it was started."""
    worker = {
        "id": new_resident(),
        "kind": "resident",
        "nationality": "IND",
        "name_ar": "سانجاي باتيل",
        "name_en": "Sanjay Patel",
    }
    changed = Registry(stack, clients, tmp_path, worker)
    try:
        yield changed
    finally:
        await changed.restore()


@pytest.fixture
async def family(stack: Stack, clients: Clients, tmp_path: Path) -> AsyncIterator[Registry]:
    """As `registry`, with a dependent (a citizen) instead of a worker."""
    dependent = {
        "id": new_citizen(),
        "kind": "citizen",
        "nationality": "SAU",
        "name_ar": "ريم محمد القحطاني",
        "name_en": "Reem Mohammed Al-Qahtani",
    }
    changed = Registry(stack, clients, tmp_path, dependent)
    try:
        yield changed
    finally:
        await changed.restore()


def _new_mobile() -> str:
    return f"055{secrets.randbelow(10**7):07d}"


def _e164(mobile: str) -> str:
    """A Saudi mobile as the SMS gateway has it."""
    return "+966" + mobile.removeprefix("0")


async def _absence_report(
    clients: Clients, establishment: str, worker: str, mobile: str, email: str
) -> intake_pb2.Request:
    return await clients.submit(
        clients.token(establishment, Role.ESTABLISHMENT),
        key=str(uuid.uuid4()),
        sub_service="reports.absence-report",
        description="Our worker has not come to work since the first of the month, no contact",
        documents=[],
        mobile=mobile,
        email=email,
        subject_id=worker,
        fields={
            "iqama_number": worker,
            "absence_date": "2026-11-01",
            "worker_type": "establishment_worker",
        },
    )


async def test_a_new_sponsors_submission_cancels_the_old_sponsors_request(
    stack: Stack, clients: Clients, registry: Registry
) -> None:
    worker = registry.person
    reviewer = clients.token("E5101", Role.REVIEWER, frozenset({"reports"}))
    old_mobile = _new_mobile()
    old_email = f"hr-{uuid.uuid4().hex[:8]}@old-sponsor.example"

    # The old sponsor files for its worker; the request waits in review's queue.
    await registry.on_record_of(OLD_SPONSOR, "sponsored_worker")
    old = await _absence_report(clients, OLD_SPONSOR, worker, old_mobile, old_email)
    assert old.status == common_pb2.REQUEST_STATUS_SUBMITTED

    async def queued() -> bool | None:
        items = await clients.queue(reviewer, "reports")
        return True if any(i.request_id == old.request_id for i in items) else None

    await eventually(queued, what="the old sponsor's request in the reports queue")

    # The worker is transferred: the registry has them on the new sponsor's record only.
    await registry.on_record_of(NEW_SPONSOR, "sponsored_worker")
    new = await _absence_report(
        clients, NEW_SPONSOR, worker, _new_mobile(), f"hr-{uuid.uuid4().hex[:8]}@new.example"
    )
    assert (new.applicant_id, new.subject_id, new.status) == (
        NEW_SPONSOR,
        worker,
        common_pb2.REQUEST_STATUS_SUBMITTED,
    )
    assert new.request_number != old.request_number

    # Intake: the old sponsor sees its request cancelled, and why, in both languages.
    seen = await clients.track(clients.token(OLD_SPONSOR, Role.ESTABLISHMENT), old.request_number)
    assert seen.status == common_pb2.REQUEST_STATUS_CANCELLED
    last = seen.history[-1]
    assert last.status == common_pb2.REQUEST_STATUS_CANCELLED
    assert OFF_RECORD_EN in last.message
    assert OFF_RECORD_AR in last.message

    # Review: the old request's item is withdrawn, by the system, not the applicant.
    async def withdrawn() -> review_pb2.GetCaseResponse | None:
        item = await clients.review.GetWorkItem(
            review_pb2.GetWorkItemRequest(request_id=old.request_id),
            timeout=TIMEOUT,
            metadata=bearer(reviewer),
        )
        if item.item.state != review_pb2.WORK_ITEM_STATE_WITHDRAWN:
            return None
        return await clients.review.GetCase(
            review_pb2.GetCaseRequest(request_id=old.request_id),
            timeout=TIMEOUT,
            metadata=bearer(reviewer),
        )

    case = await eventually(withdrawn, what="the old request withdrawn in review")
    cancellations = [(h.actor, h.text) for h in case.history if h.action == "cancelled"]
    assert len(cancellations) == 1, cancellations
    actor, text = cancellations[0]
    assert actor == "system"
    assert OFF_RECORD_EN in text

    # Intake's event says the office cancelled it: exactly one, counted once the stack has
    # gone quiet (as are the notices below: notify has sent all it will by then).
    (cancelled,) = await envelopes(
        stack.config.kafka_bootstrap,
        topics.APPLICANT_ACTIONS,
        {old.request_id},
        at_least=1,
        quiet=stack,
    )
    assert cancelled.WhichOneof("payload") == "request_cancelled"
    assert cancelled.request_cancelled.request_number == old.request_number
    assert cancelled.request_cancelled.off_record

    # Notify: the old sponsor is told why, by SMS, e-mail and in-app, once each, never that it
    # cancelled as it asked.
    async def told() -> list[tuple[str, str]] | None:
        answer = await clients.notify.ListDeliveries(
            notify_pb2.ListDeliveriesRequest(request_id=old.request_id),
            timeout=TIMEOUT,
            metadata=bearer(reviewer),
        )
        found = sorted((d.kind, d.channel) for d in answer.deliveries if d.kind != "submitted")
        return found if len(found) >= 3 else None

    assert await eventually(told, what="the old sponsor told of the cancellation") == [
        ("cancelled_off_record", "email"),
        ("cancelled_off_record", "inapp"),
        ("cancelled_off_record", "sms"),
    ]
    # In Arabic, its contact's language, in an establishment's words: the gateway's and the
    # mail server's stand-ins have them.
    await eventually(
        lambda: clients.sms_to(_e164(old_mobile), SMS_OFF_RECORD, 1), what="the old sponsor's SMS"
    )
    texts = [m["text"] for m in await clients.sms_received() if m["to"] == _e164(old_mobile)]
    assert [SMS_OFF_RECORD in t for t in texts] == [False, True], texts  # submitted, cancelled
    assert old.request_number in texts[1]

    def mail() -> list[str] | None:
        subjects = [str(m["Subject"]) for m in clients.emails_received() if m["To"] == old_email]
        return subjects if any(SUBJECT_OFF_RECORD in s for s in subjects) else None

    subjects = await eventually(lambda: asyncio.to_thread(mail), what="the old sponsor's e-mail")
    off_record = [s for s in subjects if SUBJECT_OFF_RECORD in s]
    assert len(off_record) == 1, subjects
    assert old.request_number in off_record[0]
    inbox = await clients.notify.ListInbox(
        notify_pb2.ListInboxRequest(limit=200),
        timeout=TIMEOUT,
        metadata=bearer(clients.token(OLD_SPONSOR, Role.ESTABLISHMENT)),
    )
    assert sorted(m.kind for m in inbox.messages if m.request_id == old.request_id) == [
        "cancelled_off_record",
        "submitted",
    ]

    # The new sponsor's request stands open; closed here, so no later test meets it.
    closed = await clients.intake.CancelRequest(
        intake_pb2.CancelRequestRequest(request_number=new.request_number, reason="Test done"),
        timeout=TIMEOUT,
        metadata=bearer(clients.token(NEW_SPONSOR, Role.ESTABLISHMENT)),
    )
    assert closed.request.status == common_pb2.REQUEST_STATUS_CANCELLED


async def _renewal_problem(
    clients: Clients, holder: str, dependent: str, mobile: str, email: str
) -> intake_pb2.Request:
    return await clients.submit(
        clients.token(holder, Role.CITIZEN),
        key=str(uuid.uuid4()),
        sub_service="passports.issue-renewal-problem",
        description="The photo does not appear when renewing my daughter's passport after paying",
        documents=[],
        mobile=mobile,
        email=email,
        subject_id=dependent,
        fields={"national_id": dependent, **PASSPORT_PHOTO_FIELDS},
    )


async def test_a_new_holders_submission_cancels_the_old_holders_request_for_a_dependent(
    stack: Stack, clients: Clients, family: Registry
) -> None:
    dependent = family.person
    reviewer = clients.token("E5102", Role.REVIEWER, frozenset({"passports"}))
    old_mobile = _new_mobile()
    old_email = f"family-{uuid.uuid4().hex[:8]}@old-holder.example"

    # The old holder files for his dependent; the request waits in review's queue.
    await family.on_record_of(OLD_HOLDER, "dependent")
    old = await _renewal_problem(clients, OLD_HOLDER, dependent, old_mobile, old_email)
    assert old.status == common_pb2.REQUEST_STATUS_SUBMITTED

    async def queued() -> bool | None:
        items = await clients.queue(reviewer, "passports")
        return True if any(i.request_id == old.request_id for i in items) else None

    await eventually(queued, what="the old holder's request in the passports queue")

    # The dependent moves to another family record (a marriage): on the new holder's only.
    await family.on_record_of(NEW_HOLDER, "dependent")
    new = await _renewal_problem(
        clients, NEW_HOLDER, dependent, _new_mobile(), f"family-{uuid.uuid4().hex[:8]}@new.example"
    )
    assert (new.applicant_id, new.subject_id, new.status) == (
        NEW_HOLDER,
        dependent,
        common_pb2.REQUEST_STATUS_SUBMITTED,
    )

    # Intake: the old holder sees his request cancelled, and why, in both languages.
    seen = await clients.track(clients.token(OLD_HOLDER, Role.CITIZEN), old.request_number)
    assert seen.status == common_pb2.REQUEST_STATUS_CANCELLED
    last = seen.history[-1]
    assert last.status == common_pb2.REQUEST_STATUS_CANCELLED
    assert OFF_RECORD_EN in last.message
    assert OFF_RECORD_AR in last.message

    # Review: the item is withdrawn, by the system.
    async def withdrawn() -> review_pb2.GetCaseResponse | None:
        item = await clients.review.GetWorkItem(
            review_pb2.GetWorkItemRequest(request_id=old.request_id),
            timeout=TIMEOUT,
            metadata=bearer(reviewer),
        )
        if item.item.state != review_pb2.WORK_ITEM_STATE_WITHDRAWN:
            return None
        return await clients.review.GetCase(
            review_pb2.GetCaseRequest(request_id=old.request_id),
            timeout=TIMEOUT,
            metadata=bearer(reviewer),
        )

    case = await eventually(withdrawn, what="the old request withdrawn in review")
    cancellations = [(h.actor, h.text) for h in case.history if h.action == "cancelled"]
    assert len(cancellations) == 1, cancellations
    assert cancellations[0][0] == "system"
    assert OFF_RECORD_EN in cancellations[0][1]

    # Exactly one cancellation event, the office's, counted once the stack has gone quiet.
    (cancelled,) = await envelopes(
        stack.config.kafka_bootstrap,
        topics.APPLICANT_ACTIONS,
        {old.request_id},
        at_least=1,
        quiet=stack,
    )
    assert cancelled.WhichOneof("payload") == "request_cancelled"
    assert cancelled.request_cancelled.request_number == old.request_number
    assert cancelled.request_cancelled.off_record

    # Notify: the old holder told once on each channel, in a family's words, not a sponsor's.
    answer = await clients.notify.ListDeliveries(
        notify_pb2.ListDeliveriesRequest(request_id=old.request_id),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    assert sorted((d.kind, d.channel) for d in answer.deliveries if d.kind != "submitted") == [
        ("cancelled_off_record", "email"),
        ("cancelled_off_record", "inapp"),
        ("cancelled_off_record", "sms"),
    ]
    texts = [m["text"] for m in await clients.sms_received() if m["to"] == _e164(old_mobile)]
    assert [SMS_OFF_FAMILY_RECORD in t for t in texts] == [False, True], texts
    assert old.request_number in texts[1]
    assert SMS_OFF_RECORD not in texts[1]
    subjects = [str(m["Subject"]) for m in clients.emails_received() if m["To"] == old_email]
    off_record = [s for s in subjects if SUBJECT_OFF_FAMILY_RECORD in s]
    assert len(off_record) == 1, subjects
    assert old.request_number in off_record[0]
    inbox = await clients.notify.ListInbox(
        notify_pb2.ListInboxRequest(limit=200),
        timeout=TIMEOUT,
        metadata=bearer(clients.token(OLD_HOLDER, Role.CITIZEN)),
    )
    assert sorted(m.kind for m in inbox.messages if m.request_id == old.request_id) == [
        "cancelled_off_record",
        "submitted",
    ]

    # The new holder's request stands open; closed here, so no later test meets it.
    closed = await clients.intake.CancelRequest(
        intake_pb2.CancelRequestRequest(request_number=new.request_number, reason="Test done"),
        timeout=TIMEOUT,
        metadata=bearer(clients.token(NEW_HOLDER, Role.CITIZEN)),
    )
    assert closed.request.status == common_pb2.REQUEST_STATUS_CANCELLED
