"""Prometheus metrics every service exposes: its gRPC calls by method and status code, the
events its consumer groups applied or dead-lettered, their lag and the poll each is applying,
and its outbox's backlog.

They are served on TAWASUL_METRICS_ADDRESS (host:port) by an HTTP server's threads, which
only read the values: nothing of a scrape runs on the event loop. The same server answers the
kubelet's probes, /livez and /readyz (tawasul_platform.vitals).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Protocol
from urllib.parse import urlparse

import grpc
from aiokafka.errors import IllegalStateError
from aiokafka.structs import TopicPartition
from prometheus_client import Counter, Gauge, Histogram, MetricsHandler
from sqlalchemy import Table, func, select

from tawasul_platform.settings import listening
from tawasul_platform.sql import Database
from tawasul_platform.topics import SUBSCRIPTIONS
from tawasul_platform.vitals import LIVEZ, READYZ, VITALS, Vitals

log = logging.getLogger(__name__)

GRPC_HANDLED = Histogram(
    "tawasul_grpc_server_handled_seconds",
    "Time from a gRPC call's arrival to its answer, by method and status code",
    ["grpc_service", "grpc_method", "grpc_code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
# The refusals also counted in GRPC_HANDLED as RESOURCE_EXHAUSTED, which a service's own
# quotas answer too (intake's tracking attempts): this one is the server's lack of room alone.
GRPC_OVERLOADED = Counter(
    "tawasul_grpc_server_overloaded",
    "Calls a server refused at its limit of calls in flight (grpc_max_concurrent_rpcs), by method",
    ["grpc_service", "grpc_method"],
)
EVENTS = Counter(
    "tawasul_consumer_events_total",
    "Events a consumer group took off a topic, by outcome: applied or dead_lettered",
    ["topic", "group", "outcome"],
)
CONSUMER_LAG = Gauge(
    "tawasul_consumer_lag",
    "Records of a partition that its consumer group has not taken yet: the end offset its "
    "last fetch saw less its position, after each batch applied",
    ["topic", "partition", "group"],
)
# The lag is read after a batch only, and from the high watermark of the group's last fetch,
# which aiokafka does not fetch again for a partition whose records wait unread: a group
# stuck on a poll (a dependency down, a hung handler) shows the lag of before. This shows it.
CONSUMER_BATCH_STARTED = Gauge(
    "tawasul_consumer_batch_started_timestamp_seconds",
    "When a consumer group started applying the poll it is applying (Unix time); 0 between polls",
    ["group"],
)
# By service, whatever the scrape's own labels are: replicas share their service's outbox.
OUTBOX_BACKLOG = Gauge(
    "tawasul_outbox_backlog",
    "Outbox rows not yet marked sent (the relay marks what Kafka took within a second)",
    ["service"],
)
OUTBOX_OLDEST = Gauge(
    "tawasul_outbox_oldest_unsent_seconds",
    "Age of the oldest outbox row not yet marked sent (0 when every row is)",
    ["service"],
)
OUTBOX_PARKED = Counter(
    "tawasul_outbox_parked",
    "Outbox rows Kafka refused for good (too large, a topic denied), parked unpublished",
    ["service", "topic"],
)


def observe_call(full_method: str, code: grpc.StatusCode, seconds: float) -> None:
    """One answered call; `full_method` as gRPC names it, "/package.Service/Method"."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    GRPC_HANDLED.labels(service, method, code.name).observe(seconds)


def overloaded(full_method: str) -> None:
    """One call refused for want of room (before any handler ran)."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    GRPC_OVERLOADED.labels(service, method).inc()


def subscribed(group: str) -> None:
    """Exports each outcome of each topic `group` reads (topics.SUBSCRIPTIONS) at 0 from the
    group's start: a counter's label set otherwise appears at its first inc(), already at 1, so
    increase() and rate() never see a pod's first dead letters (no earlier sample to compare).
    Its poll gauge is exported at 0 too, no poll being applied yet."""
    for topic, of_group in SUBSCRIPTIONS:
        if of_group == group:
            for outcome in ("applied", "dead_lettered"):
                EVENTS.labels(topic, group, outcome)
    CONSUMER_BATCH_STARTED.labels(group).set(0)


@contextmanager
def applying(group: str) -> Iterator[None]:
    """A poll of `group` being applied, from now until it is applied or given up."""
    started = CONSUMER_BATCH_STARTED.labels(group)
    started.set_to_current_time()
    try:
        yield
    finally:
        started.set(0)


def applied(topic: str, group: str, count: int = 1) -> None:
    EVENTS.labels(topic, group, "applied").inc(count)


def dead_lettered(topic: str, group: str) -> None:
    EVENTS.labels(topic, group, "dead_lettered").inc()


class Positions(Protocol):
    """What an aiokafka consumer knows of its partitions without asking Kafka."""

    def assignment(self) -> set[TopicPartition]: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...
    async def position(self, partition: TopicPartition) -> int: ...


class ConsumerLag:
    """A consumer group's lag per partition it holds, from the high watermark its fetches
    already carry and its own position: no request to Kafka. A partition taken away by a
    rebalance is dropped (`revoked`), for the replica that holds it now.

    Read after a batch at most every `interval` seconds: each read walks every partition the
    group holds (36 for notify's events), about 3 µs each, which a poll of one event paid every
    time; Prometheus reads the gauge every 15 s. A batch that comes sooner leaves a read for the
    interval's end, so the last value is never older than the last batch by more than that."""

    def __init__(self, group: str, interval: float = 1.0) -> None:
        self._group = group
        self._interval = interval
        self._reported: set[TopicPartition] = set()
        self._next = 0.0
        self._later: asyncio.Task[None] | None = None
        # The consumer of the last batch: what a read left for later reads.
        self._consumer: Positions | None = None

    async def update(self, consumer: Positions) -> None:
        """After a batch: reads the lag now, or once the interval is over."""
        wait = self._next - asyncio.get_running_loop().time()
        if wait <= 0:
            await self._read(consumer)
        elif self._later is None:
            self._later = asyncio.create_task(self._read_after(wait))
        self._consumer = consumer

    def revoked(self, partitions: Collection[TopicPartition]) -> None:
        """A rebalance took `partitions` away (the consumer's rebalance listener): dropped at
        once, not at the next read, which a replica whose other partitions bring no batch
        never makes: it exported the lag it last saw of them for good, and the group's sum
        stayed past the alert's threshold."""
        for tp in self._reported.intersection(partitions):
            CONSUMER_LAG.remove(tp.topic, str(tp.partition), self._group)
            self._reported.discard(tp)

    def close(self) -> None:
        """The consumer stops: no read left for later."""
        if self._later is not None:
            self._later.cancel()

    async def _read_after(self, wait: float) -> None:
        await asyncio.sleep(wait)
        self._later = None
        if self._consumer is not None:
            await self._read(self._consumer)

    async def _read(self, consumer: Positions) -> None:
        self._next = asyncio.get_running_loop().time() + self._interval
        reported = set()
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is None:  # not fetched yet
                continue
            try:
                position = await consumer.position(tp)
            except IllegalStateError:  # revoked meanwhile
                continue
            CONSUMER_LAG.labels(tp.topic, str(tp.partition), self._group).set(
                max(end - position, 0)
            )
            reported.add(tp)
        for tp in self._reported - reported:
            CONSUMER_LAG.remove(tp.topic, str(tp.partition), self._group)
        self._reported = reported


class OutboxGauge:
    """Reads the outbox's backlog for the gauges, on a timer (`every`): the relay's own hot
    path stays one select and one update a batch."""

    def __init__(self, database: Database, table: Table, service: str) -> None:
        self._database = database
        self._backlog = select(
            func.count(),
            func.coalesce(func.extract("epoch", func.now() - func.min(table.c.created_at)), 0),
        ).where(table.c.sent_at.is_(None))
        self._service = service

    async def __call__(self) -> bool:
        async with self._database.connection() as driver:
            row = (await self._database.fetch(driver, self._backlog)).one()
        OUTBOX_BACKLOG.labels(self._service).set(row[0])
        OUTBOX_OLDEST.labels(self._service).set(float(row[1]))
        return False


def serve(address: str, vitals: Vitals = VITALS) -> ThreadingHTTPServer:
    """Starts /metrics, /livez and /readyz at host:port, in threads of their own."""
    server = listening(
        "TAWASUL_METRICS_ADDRESS", address, lambda host, port: _Server(host, port, _probed(vitals))
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on http://%s/metrics", address)
    return server


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, handler: type[MetricsHandler]) -> None:
        # An IPv6 host ("::") needs its family before the socket is made.
        self.address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        super().__init__((host, port), handler)


def _probed(vitals: Vitals) -> type[MetricsHandler]:
    class Handler(MetricsHandler):
        def do_GET(self) -> None:
            check = {LIVEZ: vitals.alive, READYZ: vitals.ready}.get(urlparse(self.path).path)
            if check is None:
                super().do_GET()
                return
            ok, why = check()
            body = f"{why}\n".encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
