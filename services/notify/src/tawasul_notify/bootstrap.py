"""Composition root: the only place notify's adapters are built and wired."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from tawasul.notify.v1 import notify_pb2, notify_pb2_grpc
from tawasul_platform.consumer import EventConsumer
from tawasul_platform.db import make_engine
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.outbox import OutboxRelay, make_producer
from tawasul_platform.service import Runtime
from tawasul_platform.topics import REQUEST_STATUS_CHANGED, REQUEST_SUBMITTED

from tawasul_notify.adapters import tables
from tawasul_notify.adapters.gateway import HttpSmsGateway
from tawasul_notify.adapters.repository import SERVICE, NotifyUnitOfWork
from tawasul_notify.entrypoints.events import on_status_changed, on_submitted
from tawasul_notify.entrypoints.grpc import NotifyServicer
from tawasul_notify.settings import NotifySettings


async def build(settings: NotifySettings) -> Runtime:
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    def uow() -> NotifyUnitOfWork:
        return NotifyUnitOfWork(sessions)

    http = httpx.AsyncClient(
        base_url=settings.sms_gateway_url, timeout=settings.sms_timeout_seconds
    )
    gateway = HttpSmsGateway(http)
    producer = make_producer(settings.kafka_bootstrap)
    relay = OutboxRelay(
        engine=engine,
        table=tables.outbox,
        producer=producer,
        service=SERVICE,
        batch_size=settings.outbox_batch_size,
        fallback_seconds=settings.outbox_fallback_seconds,
    )
    consumer = EventConsumer(
        bootstrap=settings.kafka_bootstrap,
        group=SERVICE,
        producer=producer,
        max_attempts=settings.consumer_max_attempts,
        backoff_seconds=settings.consumer_backoff_seconds,
        graceful_timeout=settings.shutdown_grace_seconds,
    )
    consumer.subscribe(REQUEST_SUBMITTED, on_submitted(uow, gateway))
    consumer.subscribe(REQUEST_STATUS_CHANGED, on_status_changed(uow, gateway))
    servicer = NotifyServicer(uow=uow, gateway=gateway, secret=settings.identity_secret)
    server = GrpcServer(
        settings.grpc_address,
        [notify_pb2.DESCRIPTOR.services_by_name["NotifyService"].full_name],
        lambda s: notify_pb2_grpc.add_NotifyServiceServicer_to_server(servicer, s),
    )
    return Runtime(
        grpc=server,
        consumer=consumer,
        startup=[producer.start],
        loops=[relay.run],
        # Consumers have stopped by then, so no handler still uses the HTTP client.
        shutdown=[producer.stop, http.aclose, engine.dispose],
    )
