"""Composition root: the only place notify's adapters are built and wired.

`servicer`, `subscriptions` and `senders` take the unit of work and the channels' senders as
arguments, so the service tier builds the real servicer, handlers and senders with a real
database and stand-in or real channels; `build` wires the real ones. One consumer group reads
every event notify acts on and records each channel's messages; a sender per channel sends
them from the table, so an SMS gateway outage delays neither e-mail nor in-app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from tawasul.notify.v1 import notify_pb2, notify_pb2_grpc
from tawasul_platform.adopt import adopt_offsets
from tawasul_platform.authz import Gate
from tawasul_platform.consumer import Subscriptions
from tawasul_platform.grpc import GrpcServer, ServerLimits
from tawasul_platform.periodic import every
from tawasul_platform.plumbing import build_plumbing
from tawasul_platform.service import Runtime
from tawasul_platform.staff import on_reviewers_recorded
from tawasul_platform.topics import (
    APPLICANT_ACTIONS,
    REQUEST_ROUTED,
    REQUEST_STATUS_CHANGED,
    REQUEST_SUBMITTED,
    SLA_ALERTS,
    STAFF_REVIEWERS,
)

from tawasul_notify.adapters import tables
from tawasul_notify.adapters.email import SmtpSender
from tawasul_notify.adapters.gateway import HttpSmsGateway
from tawasul_notify.adapters.http1 import Http1Pool
from tawasul_notify.adapters.metrics import DeliveryGauge
from tawasul_notify.adapters.repository import SERVICE, NotifyUnitOfWork
from tawasul_notify.adapters.staff import load_staff
from tawasul_notify.app import handlers
from tawasul_notify.app.ports import Sender, UnitOfWork
from tawasul_notify.domain.model import Channel
from tawasul_notify.entrypoints.events import Wake, on_requests, submitted, told
from tawasul_notify.entrypoints.grpc import ACCESS, NotifyServicer
from tawasul_notify.entrypoints.senders import ChannelSender
from tawasul_notify.settings import NotifySettings

SERVICE_NAME = notify_pb2.DESCRIPTOR.services_by_name["NotifyService"].full_name
GROUP = f"{SERVICE}-events"
# The groups that read these topics before GROUP (one for who may read what, one per
# channel): GROUP starts where the slowest of them stood, so nothing they had yet to read is
# skipped.
FORMER_READERS: Mapping[str, tuple[str, ...]] = {
    REQUEST_SUBMITTED: (SERVICE, *(f"{SERVICE}-{c}" for c in ("sms", "email", "inapp"))),
    REQUEST_ROUTED: (SERVICE,),
    **{
        topic: tuple(f"{SERVICE}-{c}" for c in ("sms", "email", "inapp"))
        for topic in (REQUEST_STATUS_CHANGED, APPLICANT_ACTIONS, SLA_ALERTS)
    },
}


def servicer(
    settings: NotifySettings, *, uow: Callable[[], UnitOfWork], sms: Sender
) -> NotifyServicer:
    return NotifyServicer(uow=uow, sms=sms)


def grpc_server(settings: NotifySettings, service: NotifyServicer) -> GrpcServer:
    return GrpcServer(
        settings.grpc_address,
        Gate.from_settings(settings, {SERVICE_NAME: ACCESS}),
        lambda s: notify_pb2_grpc.add_NotifyServiceServicer_to_server(service, s),
        tls=settings.tls,
        limits=ServerLimits.of(settings),
    )


def subscriptions(
    *, uow: Callable[[], UnitOfWork], staff: Mapping[str, str], wake: Wake
) -> Subscriptions:
    """What the consumer group does with each topic's events: a poll's at once, in one
    transaction (a batch with an unacceptable event goes again one event at a time: that one
    alone is dead-lettered)."""
    tell = told(uow, staff=staff, wake=wake)
    return (
        Subscriptions()
        .batches(REQUEST_SUBMITTED, submitted(uow, staff=staff, wake=wake))
        .batches(REQUEST_ROUTED, on_requests(uow))
        .batches(REQUEST_STATUS_CHANGED, tell)
        .batches(APPLICANT_ACTIONS, tell)
        .batches(SLA_ALERTS, tell)
        .table(STAFF_REVIEWERS, on_reviewers_recorded(uow))
    )


def senders(
    settings: NotifySettings, *, uow: Callable[[], UnitOfWork], channels: Mapping[Channel, Sender]
) -> dict[Channel, ChannelSender]:
    """The sender of each channel that sends (in-app messages are stored when recorded)."""
    return {
        channel: ChannelSender(
            uow,
            sender,
            batch=settings.send_batch,
            retry_for=timedelta(seconds=settings.message_retry_seconds),
            first_wait=timedelta(seconds=settings.consumer_backoff_seconds),
            concurrency=settings.consumer_key_concurrency,
            sweep_seconds=settings.send_sweep_seconds,
        )
        for channel, sender in channels.items()
    }


def sms_gateway(settings: NotifySettings) -> tuple[HttpSmsGateway, Http1Pool]:
    # httpx's limits: the sends of each poll, the receipts and the one-time codes share the
    # pool, and a request waiting for a connection past the timeout counts as an outage.
    pool = Http1Pool(settings.sms_gateway_url, max_connections=100, max_idle=20, idle_seconds=30.0)
    gateway = HttpSmsGateway(
        pool,
        sender=settings.sms_sender,
        timeout_seconds=settings.sms_timeout_seconds,
        credentials=(
            (settings.sms_gateway_user, settings.sms_gateway_password)
            if settings.sms_gateway_user
            else None
        ),
    )
    return gateway, pool


def smtp(settings: NotifySettings) -> SmtpSender:
    return SmtpSender(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_sender,
        timeout_seconds=settings.smtp_timeout_seconds,
        username=settings.smtp_user,
        password=settings.smtp_password,
        start_tls=settings.smtp_start_tls,
    )


async def build(settings: NotifySettings) -> Runtime:
    plumbing = build_plumbing(
        settings, service=SERVICE, outbox=tables.outbox, inbox=tables.inbox, group=GROUP
    )

    def uow() -> NotifyUnitOfWork:
        return NotifyUnitOfWork(plumbing.database)

    gateway, pool = sms_gateway(settings)
    sending = senders(
        settings, uow=uow, channels={Channel.SMS: gateway, Channel.EMAIL: smtp(settings)}
    )

    def wake(channel: Channel) -> None:
        sending[channel].wake()

    staff = load_staff(settings.staff_directory_file)
    subscriptions(uow=uow, staff=staff, wake=wake).subscribe(plumbing.consumer)
    runtime = plumbing.runtime(grpc_server(settings, servicer(settings, uow=uow, sms=gateway)))

    async def adopt() -> None:
        await adopt_offsets(settings.kafka_bootstrap, GROUP, FORMER_READERS, settings.kafka_ssl)

    runtime.startup.append(adopt)
    runtime.loops.extend(sender.run for sender in sending.values())

    async def receipts() -> bool:
        return await handlers.collect_receipts(
            uow=uow(),
            receipts=gateway,
            now=datetime.now(UTC),
            interval=timedelta(seconds=settings.receipts_seconds),
        )

    runtime.loops.append(lambda: every(settings.receipts_seconds, receipts, name="sms receipts"))
    if settings.metrics_address:
        gauge = DeliveryGauge(plumbing.database)
        runtime.loops.append(lambda: every(settings.metrics_seconds, gauge, name="delivery gauge"))
    # Senders and consumers have stopped by then, so no handler still uses the connections.
    runtime.shutdown.insert(0, pool.aclose)
    return runtime
