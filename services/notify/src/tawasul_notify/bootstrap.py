"""Composition root: the only place notify's adapters are built and wired.

`servicer` and `subscribers` take the unit of work and the channels' senders as arguments, so
the service tier builds the real servicer and handlers with a real database and stand-in or
real channels; `build` wires the real ones. Each channel has its own consumer group, so an SMS
gateway outage delays neither e-mail nor in-app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from tawasul.notify.v1 import notify_pb2, notify_pb2_grpc
from tawasul_platform.authz import Gate
from tawasul_platform.grpc import GrpcServer, ServerLimits
from tawasul_platform.periodic import every
from tawasul_platform.plumbing import build_plumbing
from tawasul_platform.service import Runtime
from tawasul_platform.topics import (
    APPLICANT_ACTIONS,
    REQUEST_ROUTED,
    REQUEST_STATUS_CHANGED,
    REQUEST_SUBMITTED,
    SLA_ALERTS,
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
from tawasul_notify.entrypoints.events import Handler, in_app, on_event, on_events, on_requests
from tawasul_notify.entrypoints.grpc import ACCESS, NotifyServicer
from tawasul_notify.settings import NotifySettings

SERVICE_NAME = notify_pb2.DESCRIPTOR.services_by_name["NotifyService"].full_name
# What each channel's group reads: everything someone may be told about.
TOLD_ABOUT = (REQUEST_SUBMITTED, REQUEST_STATUS_CHANGED, APPLICANT_ACTIONS, SLA_ALERTS)


def group_of(channel: Channel) -> str:
    return f"{SERVICE}-{channel.value}"


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


def subscribers(
    settings: NotifySettings,
    *,
    uow: Callable[[], UnitOfWork],
    senders: Mapping[Channel, Sender],
    staff: Mapping[str, str],
) -> dict[Channel, Handler]:
    """The handler of each channel's consumer group (in-app needs no sender)."""
    return {
        channel: on_event(
            uow,
            channel=channel,
            sender=senders.get(channel),
            staff=staff,
            budget=settings.message_attempts,
        )
        for channel in Channel
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
    plumbing = build_plumbing(settings, service=SERVICE, outbox=tables.outbox, inbox=tables.inbox)

    def uow() -> NotifyUnitOfWork:
        return NotifyUnitOfWork(plumbing.sessions)

    gateway, pool = sms_gateway(settings)
    senders: dict[Channel, Sender] = {Channel.SMS: gateway, Channel.EMAIL: smtp(settings)}
    staff = load_staff(settings.staff_directory_file)
    # A batch with an unacceptable event goes again one event at a time: that one alone is
    # dead-lettered.
    plumbing.consumer.subscribe_batches(REQUEST_SUBMITTED, on_requests(uow))
    plumbing.consumer.subscribe_batches(REQUEST_ROUTED, on_requests(uow))
    for channel, handler in subscribers(settings, uow=uow, senders=senders, staff=staff).items():
        group = plumbing.consumer_group(group_of(channel))
        sender = senders.get(channel)
        for topic in TOLD_ABOUT:
            if sender is None:
                group.subscribe_batches(topic, in_app(uow, staff=staff), one_by_one=handler)
                continue
            # A message sent cannot be rolled back with a batch: the batch commits its intents
            # before it sends, and a batch that fails goes event by event through `handler`.
            group.subscribe_batches(
                topic,
                on_events(
                    uow,
                    sender=sender,
                    staff=staff,
                    concurrency=settings.consumer_key_concurrency,
                ),
                one_by_one=handler,
                shared=False,
            )
    runtime = plumbing.runtime(grpc_server(settings, servicer(settings, uow=uow, sms=gateway)))

    async def receipts() -> bool:
        return await handlers.collect_receipts(uow=uow(), receipts=gateway, now=datetime.now(UTC))

    runtime.loops.append(lambda: every(settings.receipts_seconds, receipts, name="sms receipts"))
    if settings.metrics_address:
        gauge = DeliveryGauge(plumbing.engine)
        runtime.loops.append(lambda: every(settings.metrics_seconds, gauge, name="delivery gauge"))
    # Consumers have stopped by then, so no handler still uses the connections.
    runtime.shutdown.insert(0, pool.aclose)
    return runtime
