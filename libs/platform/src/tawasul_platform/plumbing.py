"""The adapters every service builds the same way, for its bootstrap to wire."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tawasul_platform.consumer import EventConsumer
from tawasul_platform.db import make_engine
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.outbox import OutboxRelay, make_producer
from tawasul_platform.service import Runtime
from tawasul_platform.settings import ServiceSettings


@dataclass
class Plumbing:
    """One engine, one producer, one consumer group and one outbox relay per process."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    consumer: EventConsumer
    relay: OutboxRelay

    def runtime(self, server: GrpcServer) -> Runtime:
        return Runtime(
            grpc=server,
            consumer=self.consumer,
            startup=[self.producer.start],
            loops=[self.relay.run],
            shutdown=[self.producer.stop, self.engine.dispose],
        )


def build_plumbing(settings: ServiceSettings, *, service: str, outbox: Table) -> Plumbing:
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    producer = make_producer(settings.kafka_bootstrap)
    return Plumbing(
        engine=engine,
        sessions=async_sessionmaker(engine, expire_on_commit=False),
        producer=producer,
        consumer=EventConsumer(
            bootstrap=settings.kafka_bootstrap,
            group=service,
            producer=producer,
            max_attempts=settings.consumer_max_attempts,
            backoff_seconds=settings.consumer_backoff_seconds,
            graceful_timeout=settings.shutdown_grace_seconds,
        ),
        relay=OutboxRelay(
            engine=engine,
            table=outbox,
            producer=producer,
            service=service,
            batch_size=settings.outbox_batch_size,
            fallback_seconds=settings.outbox_fallback_seconds,
        ),
    )
