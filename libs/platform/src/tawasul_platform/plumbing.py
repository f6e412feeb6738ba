"""The adapters every service builds the same way, for its bootstrap to wire."""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import Table

from tawasul_platform.consumer import EventConsumer, Transaction
from tawasul_platform.db import make_engine
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.metrics import OutboxGauge
from tawasul_platform.outbox import OutboxRelay, make_producer
from tawasul_platform.periodic import every
from tawasul_platform.retention import Pruner
from tawasul_platform.service import Runtime
from tawasul_platform.settings import ServiceSettings
from tawasul_platform.sql import Database
from tawasul_platform.uow import Messaging, shared_transaction


@dataclass
class Plumbing:
    """One pool, one producer and one outbox relay per process; a consumer group (named after
    the service unless it names its own), and more groups when the service asks for them."""

    settings: ServiceSettings
    database: Database
    producer: AIOKafkaProducer
    # The one transaction a consumer's batch applies its events in.
    transaction: Transaction
    consumer: EventConsumer
    relay: OutboxRelay
    pruner: Pruner
    outbox_gauge: OutboxGauge
    groups: list[EventConsumer] = field(default_factory=list)

    def consumer_group(self, group: str, *, gather_ms: int | None = None) -> EventConsumer:
        """Another consumer group of this process, sharing its producer (for dead letters);
        it gathers as the service's settings say unless told otherwise."""
        consumer = _consumer(self.settings, group, self.producer, self.transaction, gather_ms)
        self.groups.append(consumer)
        return consumer

    def runtime(self, server: GrpcServer) -> Runtime:
        return Runtime(
            grpc=server,
            consumers=[self.consumer, *self.groups],
            startup=[self.producer.start],
            loops=[
                self.relay.run,
                lambda: every(self.settings.prune_seconds, self.pruner, name="pruning"),
                *self._metered(),
            ],
            # The relay marks what it published before the pool goes.
            shutdown=[self.relay.close, self.producer.stop, self.database.dispose],
        )

    def _metered(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        if not self.settings.metrics_address:
            return []
        seconds = self.settings.metrics_seconds
        return [lambda: every(seconds, self.outbox_gauge, name="outbox gauge")]


def _consumer(
    settings: ServiceSettings,
    group: str,
    producer: AIOKafkaProducer,
    transaction: Transaction,
    gather_ms: int | None = None,
) -> EventConsumer:
    return EventConsumer(
        bootstrap=settings.kafka_bootstrap,
        ssl_context=settings.kafka_ssl,
        group=group,
        producer=producer,
        transaction=transaction,
        max_attempts=settings.consumer_max_attempts,
        backoff_seconds=settings.consumer_backoff_seconds,
        graceful_timeout=settings.shutdown_grace_seconds,
        max_batch=settings.consumer_max_batch,
        key_concurrency=settings.consumer_key_concurrency,
        poll_ms=settings.consumer_poll_ms,
        commit_seconds=settings.consumer_commit_seconds,
        gather_ms=settings.consumer_gather_ms if gather_ms is None else gather_ms,
    )


def build_plumbing(
    settings: ServiceSettings,
    *,
    service: str,
    outbox: Table,
    inbox: Table,
    group: str | None = None,
) -> Plumbing:
    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout_seconds,
    )
    producer = make_producer(settings.kafka_bootstrap, settings.kafka_ssl)
    database = Database(engine)
    messaging = Messaging(service, outbox, inbox)

    def transaction(*, locks: Collection[str] = ()) -> AbstractAsyncContextManager[None]:
        return shared_transaction(database, messaging, locks=locks)

    return Plumbing(
        settings=settings,
        database=database,
        producer=producer,
        transaction=transaction,
        consumer=_consumer(settings, group or service, producer, transaction),
        relay=OutboxRelay(
            database=database,
            table=outbox,
            producer=producer,
            service=service,
            batch_size=settings.outbox_batch_size,
            fallback_seconds=settings.outbox_fallback_seconds,
        ),
        pruner=Pruner(
            database,
            outbox=outbox,
            inbox=inbox,
            outbox_keep=timedelta(hours=settings.outbox_keep_hours),
        ),
        outbox_gauge=OutboxGauge(database, outbox, service),
    )
