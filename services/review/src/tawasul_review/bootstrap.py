"""Composition root: the only place review's adapters are built and wired.

`policy`, `grpc_server` and `subscriptions` take what they need as arguments (the clock too),
so the service tier builds the real servicers and event handlers on a real database with a
stand-in for docs; `build` adds the process's plumbing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

import grpc
from tawasul.review.v1 import review_pb2, review_pb2_grpc
from tawasul_platform.adopt import adopt_offsets
from tawasul_platform.authz import Gate
from tawasul_platform.catalog import load_catalog
from tawasul_platform.consumer import Subscriptions
from tawasul_platform.grpc import GrpcServer, ServerLimits
from tawasul_platform.periodic import every
from tawasul_platform.plumbing import build_plumbing
from tawasul_platform.service import Runtime
from tawasul_platform.tls import open_channel
from tawasul_platform.topics import APPLICANT_ACTIONS, NOTIFICATION_EVENTS, REQUEST_ROUTED
from tawasul_platform.workdays import load_working_calendar

from tawasul_review.adapters import tables
from tawasul_review.adapters.docs import GrpcDocuments
from tawasul_review.adapters.metrics import QueueGauges
from tawasul_review.adapters.reasons import load_reasons
from tawasul_review.adapters.repository import SERVICE, ReviewUnitOfWork
from tawasul_review.app import handlers
from tawasul_review.app.ports import Documents, UnitOfWork
from tawasul_review.entrypoints.events import on_applicant_actions, on_notifications, on_routed
from tawasul_review.entrypoints.grpc import (
    ACCESS,
    ADMIN_ACCESS,
    ReviewAdminServicer,
    ReviewServicer,
)
from tawasul_review.settings import ReviewSettings

# Notify's receipts go only into requests' histories, which no one reads within the second:
# they gather in a group of their own, so the group a request's path waits on (SERVICE) is
# answered at once and this one a poll's worth at a time.
RECEIPTS_GROUP = f"{SERVICE}-receipts"
# RECEIPTS_GROUP starts where SERVICE, which read the receipts before it, stood.
FORMER_READERS: Mapping[str, tuple[str, ...]] = {NOTIFICATION_EVENTS: (SERVICE,)}

SERVICE_NAMES = [
    review_pb2.DESCRIPTOR.services_by_name[name].full_name
    for name in ("ReviewService", "ReviewAdminService")
]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def policy(settings: ReviewSettings) -> handlers.Policy:
    return handlers.Policy(
        calendar=load_working_calendar(settings),
        catalog=load_catalog(),
        reasons=load_reasons(),
        lease=timedelta(seconds=settings.claim_lease_seconds),
        admins=frozenset(a.strip() for a in settings.review_admins.split(",") if a.strip()),
        quality_percent=settings.quality_sample_percent,
    )


def subscriptions(
    uow: Callable[[], UnitOfWork], rules: handlers.Policy, now: Callable[[], datetime] = _utc_now
) -> Subscriptions:
    """Review's group (SERVICE): routed requests a poll's worth at once, the beneficiary's
    actions one by one in the poll's transaction, their items taken first."""
    return (
        Subscriptions()
        .batches(REQUEST_ROUTED, on_routed(uow, rules, now))
        .batches(APPLICANT_ACTIONS, on_applicant_actions(uow, rules, now))
    )


def receipts(uow: Callable[[], UnitOfWork]) -> Subscriptions:
    """RECEIPTS_GROUP: notify's delivery receipts, a poll's worth into the histories."""
    return Subscriptions().batches(NOTIFICATION_EVENTS, on_notifications(uow))


def grpc_server(
    settings: ReviewSettings,
    *,
    uow: Callable[[], UnitOfWork],
    documents: Documents,
    rules: handlers.Policy,
    now: Callable[[], datetime] = _utc_now,
) -> GrpcServer:
    review = ReviewServicer(uow=uow, documents=documents, policy=rules, now=now)
    admin = ReviewAdminServicer(uow=uow, policy=rules, now=now)

    def register(server: grpc.aio.Server) -> None:
        review_pb2_grpc.add_ReviewServiceServicer_to_server(review, server)
        review_pb2_grpc.add_ReviewAdminServiceServicer_to_server(admin, server)

    gate = Gate.from_settings(settings, {SERVICE_NAMES[0]: ACCESS, SERVICE_NAMES[1]: ADMIN_ACCESS})
    return GrpcServer(
        settings.grpc_address,
        gate,
        register,
        tls=settings.tls,
        limits=ServerLimits.of(settings),
    )


def rescheduler(
    uow: Callable[[], UnitOfWork], rules: handlers.Policy
) -> Callable[[], Awaitable[bool]]:
    """Once after start, in batches beside the service's work: the unfinished items' due
    dates follow the calendar version loaded (`handlers.reschedule`); nothing after that."""
    after: uuid.UUID | None = None
    done = False

    async def job() -> bool:
        nonlocal after, done
        if done:
            return False
        after = await handlers.reschedule(uow=uow(), policy=rules, now=_utc_now(), after=after)
        done = after is None
        return not done

    return job


async def build(settings: ReviewSettings) -> Runtime:
    plumbing = build_plumbing(settings, service=SERVICE, outbox=tables.outbox, inbox=tables.inbox)
    rules = policy(settings)

    def uow() -> ReviewUnitOfWork:
        return ReviewUnitOfWork(plumbing.database)

    subscriptions(uow, rules).subscribe(plumbing.consumer)
    group = plumbing.consumer_group(RECEIPTS_GROUP, gather_ms=settings.receipts_gather_ms)
    receipts(uow).subscribe(group)
    docs_channel = open_channel(settings.docs_address, settings.tls)
    server = grpc_server(
        settings,
        uow=uow,
        documents=GrpcDocuments(docs_channel, deadline_seconds=settings.docs_deadline_seconds),
        rules=rules,
    )
    runtime = plumbing.runtime(server)

    async def adopt() -> None:
        await adopt_offsets(
            settings.kafka_bootstrap, RECEIPTS_GROUP, FORMER_READERS, settings.kafka_ssl
        )

    runtime.startup.append(adopt)

    async def announce() -> None:
        await handlers.announce_reviewers(uow=uow())

    runtime.startup.append(announce)

    async def sweep() -> bool:
        taken = await handlers.sweep(uow=uow(), policy=rules, now=_utc_now())
        return taken >= handlers.SWEEP_BATCH

    runtime.loops.append(lambda: every(settings.sweep_seconds, sweep, name="review sweep"))

    async def forget() -> bool:
        return await handlers.forget_leftovers(uow=uow(), now=_utc_now())

    runtime.loops.append(lambda: every(settings.prune_seconds, forget, name="review pruning"))
    runtime.loops.append(
        lambda: every(settings.sweep_seconds, rescheduler(uow, rules), name="review reschedule")
    )
    if settings.metrics_address:
        gauges = QueueGauges(lambda now: handlers.office_backlog(uow=uow(), policy=rules, now=now))
        runtime.loops.append(lambda: every(settings.metrics_seconds, gauges, name="queue gauges"))

    async def close_docs_channel() -> None:
        await docs_channel.close()

    runtime.shutdown.insert(0, close_docs_channel)
    return runtime
