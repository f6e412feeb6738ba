"""Composition root: the only place intake's adapters are built and wired."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul_platform.catalog import load_catalog
from tawasul_platform.consumer import EventConsumer
from tawasul_platform.db import make_engine
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.outbox import OutboxRelay, make_producer
from tawasul_platform.service import Runtime
from tawasul_platform.topics import REQUEST_STATUS_CHANGED

from tawasul_intake.adapters import tables
from tawasul_intake.adapters.repository import SERVICE, IntakeUnitOfWork
from tawasul_intake.entrypoints.events import on_status_changed
from tawasul_intake.entrypoints.grpc import IntakeServicer
from tawasul_intake.settings import IntakeSettings


async def build(settings: IntakeSettings) -> Runtime:
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    def uow() -> IntakeUnitOfWork:
        return IntakeUnitOfWork(sessions)

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
    consumer.subscribe(REQUEST_STATUS_CHANGED, on_status_changed(uow))
    servicer = IntakeServicer(uow=uow, catalog=load_catalog(), secret=settings.identity_secret)
    server = GrpcServer(
        settings.grpc_address,
        [intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name],
        lambda s: intake_pb2_grpc.add_IntakeServiceServicer_to_server(servicer, s),
    )
    return Runtime(
        grpc=server,
        consumer=consumer,
        startup=[producer.start],
        loops=[relay.run],
        shutdown=[producer.stop, engine.dispose],
    )
