"""P4: routing draining a backlog of `submitted` events, against a plain aiokafka consumer.

    uv run python -m bench [--p4-events 100000]      # P4 runs as part of every benchmark

The backlog is `events` RequestSubmitted envelopes as intake writes them (key = request id,
sub-services, applicants and form fields varied over the catalog), produced in batches to the
real topic, tawasul.requests.submitted.v1, while routing is stopped. Then, one after the other:

- the baseline: a plain aiokafka consumer (this module run as `python -m bench.p4`, a process
  of its own, group `routing-bench-p4-baseline` placed at the backlog's start) that takes
  batches with getmany, inserts one row per event into a scratch database on the same
  PostgreSQL server (executemany, one transaction per batch) and commits the batch's offsets
  after it;
- routing, started with the backlog waiting: timed until its consumer group has committed
  every record of the backlog, then each request's decision is counted in its database (its
  outbox relay publishes the routed events meanwhile, in the same process, as in production);
- P4 two replicas: a second backlog of the same size, drained by routing and routing-2 in
  one consumer group (tawasul_devstack's replicas), against the one replica's rate.

Each drain is timed the same way, from outside: the group's committed offsets are read every
POLL_SECONDS, and the time runs from the last look at which nothing was committed yet (so
neither process's start-up nor its group join counts) to the first at which all was.

What this does to the stack. Every consumer of the two topics routing reads and writes would
otherwise chew 2 × `events` records after the benchmark, for many minutes, and stall whatever
runs next. So, once every group of requests.submitted and requests.routed has caught up, docs,
notify and review are stopped with routing; after the runs (and once routing's outbox has
published every routed event) those groups are moved to the topics' ends, and docs, notify
and review are started again: they skip the benchmark's records, nothing else. Left behind:
2 × `events` decisions with their inbox and outbox rows in routing's database, the records on
both topics (until retention), and the empty group `routing-bench-p4-baseline`. The scratch
database is dropped; routing-2 is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_devstack.offsets import Offsets
from tawasul_devstack.stack import Stack, StackConfig, replica_name
from tawasul_platform import topics
from tawasul_platform.catalog import Catalog, FieldType, SubService, load_catalog
from tawasul_platform.events import envelope, timestamp
from tawasul_platform.kafka_tls import client_context, security

from bench.report import Figure
from bench.runs import bench_process

POLL_SECONDS = 0.1
# A drain that commits nothing for this long has stalled: the figure fails instead of hanging.
STALL_SECONDS = 120.0
# Before the benchmark every group of the two topics must have caught up (nothing of anyone
# else's is skipped); routing's outbox must publish the routed events after each drain.
CATCH_UP_SECONDS = 180.0
# Over TLS the baseline reads as routing, with routing's certificate: Kafka's ACLs let that
# certificate read the topic only in groups named after routing.
BASELINE_GROUP = "routing-bench-p4-baseline"
SCRATCH_DATABASE = "tawasul_bench_p4"
# The baseline's batch: a getmany's worth, one transaction and one offset commit.
BASELINE_BATCH = 500
ROUTING = "routing"
# Topics whose other consumers are paused and moved past the benchmark's records.
TOPICS = (topics.REQUEST_SUBMITTED, topics.REQUEST_ROUTED)
SCRATCH_TABLE = """
CREATE TABLE events (
    event_id uuid PRIMARY KEY,
    request_id uuid NOT NULL,
    sub_service_code text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = "INSERT INTO events (event_id, request_id, sub_service_code) VALUES ($1, $2, $3)"
DECIDED = "SELECT count(*) FROM decisions WHERE request_id = ANY($1::uuid[]) AND sequence = 1"
UNSENT = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"

_log = logging.getLogger("bench")


class P4Failed(RuntimeError):
    pass


# -- the backlog ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Submitted:
    request_id: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


# A spread of nationalities, with enough Yemeni and Syrian visitors to meet routing's rule.
NATIONALITIES = ("YEM", "SYR", "EGY", "IND", "PAK", "PHL", "SDN", "JOR")
# How often each applicant kind files, when the sub-service lets it.
KIND_WEIGHTS = {"citizen": 6, "resident": 3, "establishment": 1}


def _value(spec_type: FieldType, options: Sequence[str], rng: random.Random) -> str:
    digits = f"{rng.randrange(10**8, 10**9)}"
    values = {
        FieldType.NATIONAL_ID: "1" + digits,
        FieldType.IQAMA_NUMBER: "2" + digits,
        FieldType.ID_NUMBER: rng.choice("12") + digits,
        FieldType.BORDER_NUMBER: "3" + digits,
        FieldType.VISA_NUMBER: "6" + digits,
        FieldType.PASSPORT_NUMBER: "A" + digits[:8],
        FieldType.ESTABLISHMENT_NUMBER: "7" + digits,
        FieldType.DATE: (datetime(2026, 1, 1) - timedelta(days=rng.randrange(1, 900)))
        .date()
        .isoformat(),
        FieldType.NATIONALITY: rng.choice(NATIONALITIES),
        FieldType.TEXT: f"Benchmark text {digits}",
    }
    return rng.choice(options) if spec_type is FieldType.CHOICE else values[spec_type]


def _fields(sub_service: SubService, rng: random.Random) -> dict[str, str]:
    """Every required field, and each optional one half the time, with a value of its type."""
    return {
        f.name: _value(f.type, [o.value for o in f.options], rng)
        for f in sub_service.fields
        if f.required or rng.random() < 0.5
    }


def submitted_events(
    count: int, *, catalog: Catalog | None = None, rng: random.Random | None = None
) -> list[Submitted]:
    """`count` RequestSubmitted envelopes as intake publishes them, each of a new request
    (fresh ids, so a run never meets an earlier run's decisions): every sub-service of the
    catalog in turn, an applicant kind it takes, its form's fields filled."""
    catalog = catalog or load_catalog()
    rng = rng or random.Random()
    sub_services = sorted(catalog.sub_services.values(), key=lambda s: s.code)
    now = datetime.now(UTC)
    events = []
    for n in range(count):
        sub_service = sub_services[n % len(sub_services)]
        kinds = sorted(k for k in KIND_WEIGHTS if k in {r.value for r in sub_service.filers})
        kind = rng.choices(kinds, [KIND_WEIGHTS[k] for k in kinds])[0]
        applicant = {"citizen": "1", "resident": "2", "establishment": "7"}[kind] + (
            f"{rng.randrange(10**8, 10**9)}"
        )
        nationality = (
            rng.choice(sorted(sub_service.subject_nationalities))
            if sub_service.subject_nationalities
            else ("SAU" if kind == "citizen" else rng.choice(NATIONALITIES))
        )
        request_id = str(uuid.uuid4())
        submitted_at = now - timedelta(seconds=count - n)
        outgoing = envelope(
            topic=topics.REQUEST_SUBMITTED,
            event_type="tawasul.requests.submitted",
            producer="intake",
            request_id=request_id,
            occurred_at=submitted_at,
            fill=events_pb2.Envelope(
                request_submitted=events_pb2.RequestSubmitted(
                    request_id=request_id,
                    request_number=f"TW{rng.randrange(10**8, 10**9)}",
                    sub_service_code=sub_service.code,
                    description=f"Benchmark request {n:06d} about {sub_service.code}",
                    applicant_id=applicant,
                    contact=common_pb2.Contact(
                        mobile=f"+96655{rng.randrange(10**6, 10**7)}",
                        locale=rng.choice(("ar", "ar", "en")),
                    ),
                    submitted_at=timestamp(submitted_at),
                    subject_id=applicant,
                    fields=_fields(sub_service, rng),
                    catalog_version=catalog.version,
                    expected_completion_at=timestamp(submitted_at + timedelta(days=3)),
                    department_code=sub_service.department,
                    applicant_kind=kind,
                    subject_nationality=nationality,
                    channel="establishment-portal"
                    if kind == "establishment"
                    else rng.choice(("web", "mobile")),
                )
            ),
        )
        events.append(
            Submitted(
                request_id=request_id,
                key=outgoing.key.encode(),
                value=outgoing.payload,
                headers=[(k, v.encode()) for k, v in outgoing.headers.items()],
            )
        )
    return events


# -- which consumers the benchmark pauses ------------------------------------------------------


def paused_groups(
    subscriptions: Iterable[tuple[str, str]] = topics.SUBSCRIPTIONS,
) -> list[tuple[str, str]]:
    """(topic, group) of every consumer of the benchmark's topics but routing's own."""
    return [(t, g) for t, g in subscriptions if t in TOPICS and g != ROUTING]


def paused_services(subscriptions: Iterable[tuple[str, str]] = topics.SUBSCRIPTIONS) -> list[str]:
    """The services those groups belong to (a group is named after its service, or
    "<service>-<channel>")."""
    return sorted({g.split("-")[0] for _, g in paused_groups(subscriptions)})


# -- timing a drain ----------------------------------------------------------------------------


@dataclass
class Drain:
    """How a group worked through a backlog of `events`, seen from outside: (monotonic time,
    records not yet committed) every POLL_SECONDS after the consumer was started."""

    events: int
    started: float
    samples: list[tuple[float, int]] = field(default_factory=list)

    @property
    def idle_until(self) -> float:
        """The last look at which nothing was committed (the start, if none)."""
        idle = [at for at, behind in self.samples if behind >= self.events]
        return max(idle, default=self.started)

    @property
    def done_at(self) -> float | None:
        return next((at for at, behind in self.samples if behind == 0), None)

    @property
    def seconds(self) -> float:
        done = self.done_at
        if done is None:
            raise ValueError("the backlog was not drained")
        return done - self.idle_until

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def summary(self) -> dict[str, Any]:
        done = self.done_at
        return {
            "events": self.events,
            "seconds": round(self.seconds, 2) if done is not None else None,
            "per_second": round(self.rate, 1) if done is not None else None,
            "seconds_from_process_start": round(done - self.started, 2) if done else None,
            "idle_after_start_seconds": round(self.idle_until - self.started, 2),
        }


# -- Kafka -------------------------------------------------------------------------------------


async def produce(bootstrap: str, backlog: Sequence[Submitted]) -> float:
    """Every event to requests.submitted, batched; the seconds it took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    started = time.monotonic()
    try:
        sent = [
            await producer.send(topics.REQUEST_SUBMITTED, e.value, key=e.key, headers=e.headers)
            for e in backlog
        ]
        await producer.flush()
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def watch(
    kafka: Offsets,
    group: str,
    ends: dict[TopicPartition, int],
    events: int,
    started: float,
    alive: Callable[[], bool],
) -> Drain:
    """Polls the group's committed offsets until it has committed `ends`."""
    drain = Drain(events=events, started=started)
    last_progress = (time.monotonic(), events)
    while True:
        left = await kafka.behind(group, ends)
        now = time.monotonic()
        drain.samples.append((now, left))
        if left == 0:
            return drain
        if left < last_progress[1]:
            last_progress = (now, left)
        elif now - last_progress[0] > STALL_SECONDS:
            raise P4Failed(f"{group} committed nothing for {STALL_SECONDS:g} s ({left} left)")
        if not alive():
            raise P4Failed(f"{group}'s consumer exited with {left} records left")
        await asyncio.sleep(POLL_SECONDS)


# -- the baseline ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineSpec:
    bootstrap: str
    pg_socket_dir: str
    database: str
    group: str
    topic: str
    # partition -> the offset the backlog ends at (the consumer stops once it is there).
    ends: dict[int, int]
    # Certificate, key and CA when the services reach Kafka over mutual TLS: the baseline then
    # reads the backlog as routing does, on the same listener, with routing's certificate.
    tls_files: tuple[str, str, str] | None = None

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> BaselineSpec:
        raw = json.loads(text)
        raw["ends"] = {int(p): int(o) for p, o in raw["ends"].items()}
        raw["tls_files"] = tuple(raw["tls_files"]) if raw.get("tls_files") else None
        return cls(**raw)

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls_files is None:
            return None
        cert, key, ca = map(Path, self.tls_files)
        return client_context(cert_file=cert, key_file=key, ca_file=ca)


async def baseline_consume(spec: BaselineSpec) -> None:
    """The plain consumer: batches from getmany, one row per event inserted in one transaction
    per batch, the batch's offsets committed after it."""
    consumer = AIOKafkaConsumer(
        spec.topic,
        bootstrap_servers=spec.bootstrap,
        group_id=spec.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **security(spec.ssl_context()),
    )
    conn = await asyncpg.connect(host=spec.pg_socket_dir, user="postgres", database=spec.database)
    await consumer.start()
    try:
        positions: dict[int, int] = {}
        while any(positions.get(p, -1) < end for p, end in spec.ends.items()):
            batches = await consumer.getmany(timeout_ms=500, max_records=BASELINE_BATCH)
            rows = []
            offsets = {}
            for tp, records in batches.items():
                for record in records:
                    event = events_pb2.Envelope.FromString(record.value or b"")
                    rows.append(
                        (
                            uuid.UUID(event.event_id),
                            uuid.UUID(event.request_id),
                            event.request_submitted.sub_service_code,
                        )
                    )
                offsets[tp] = records[-1].offset + 1
            if not rows:
                # Partitions the backlog left empty are done once the consumer is there.
                for tp in consumer.assignment():
                    positions[tp.partition] = await consumer.position(tp)
                continue
            async with conn.transaction():
                await conn.executemany(INSERT, rows)
            await consumer.commit(offsets)
            positions.update({tp.partition: offset for tp, offset in offsets.items()})
    finally:
        await consumer.stop()
        await conn.close()


@contextlib.asynccontextmanager
async def scratch_database(config: StackConfig) -> AsyncIterator[None]:
    """The baseline's database on the stack's server, made empty and dropped afterwards."""
    admin = await asyncpg.connect(host=str(config.pg_socket_dir), user="postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{SCRATCH_DATABASE}"')
        conn = await asyncpg.connect(
            host=str(config.pg_socket_dir), user="postgres", database=SCRATCH_DATABASE
        )
        try:
            await conn.execute(SCRATCH_TABLE)
        finally:
            await conn.close()
        yield
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DATABASE}" WITH (FORCE)')
        await admin.close()


async def run_baseline(
    config: StackConfig,
    kafka: Offsets,
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    events: int,
) -> Drain:
    await kafka.place(BASELINE_GROUP, starts)
    spec = BaselineSpec(
        bootstrap=config.kafka_services_bootstrap,
        tls_files=(
            (
                str(config.tls_cert_file("routing")),
                str(config.tls_key_file("routing")),
                str(config.tls_ca_file),
            )
            if config.kafka_tls
            else None
        ),
        pg_socket_dir=str(config.pg_socket_dir),
        database=SCRATCH_DATABASE,
        group=BASELINE_GROUP,
        topic=topics.REQUEST_SUBMITTED,
        ends={tp.partition: end for tp, end in ends.items()},
    )
    started = time.monotonic()
    process = await bench_process("bench.p4", stdout=asyncio.subprocess.DEVNULL)
    try:
        communicate = asyncio.create_task(process.communicate(spec.to_json().encode()))
        drain = await watch(
            kafka,
            BASELINE_GROUP,
            ends,
            events,
            started,
            alive=lambda: not communicate.done() or process.returncode == 0,
        )
        _, err = await asyncio.wait_for(communicate, 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise P4Failed(f"the baseline exited {process.returncode}:\n{err.decode()[-3000:]}")
    conn = await asyncpg.connect(
        host=str(config.pg_socket_dir), user="postgres", database=SCRATCH_DATABASE
    )
    try:
        rows = int(await conn.fetchval("SELECT count(DISTINCT event_id) FROM events"))
    finally:
        await conn.close()
    if rows != events:
        raise P4Failed(f"the baseline inserted {rows} distinct events of {events}")
    return drain


# -- routing -----------------------------------------------------------------------------------


async def _routing_db(config: StackConfig) -> Any:
    return await asyncpg.connect(
        host=str(config.pg_socket_dir), user="postgres", database="tawasul_routing"
    )


async def run_routing(
    stack: Stack,
    kafka: Offsets,
    backlog: Sequence[Submitted],
    ends: dict[TopicPartition, int],
    replicas: int,
) -> tuple[Drain, float]:
    """Starts routing's replicas on the waiting backlog and times the drain; then counts the
    decisions and waits until routing's outbox has published the routed events (seconds)."""
    names = [replica_name(ROUTING, n) for n in range(1, replicas + 1)]
    started = time.monotonic()
    starting = asyncio.gather(*(asyncio.to_thread(stack.start_service, n) for n in names))
    try:
        drain = await watch(
            kafka,
            ROUTING,
            ends,
            len(backlog),
            started,
            alive=lambda: not starting.done() or all(stack.pid(n) for n in names),
        )
    finally:
        await starting
    conn = await _routing_db(stack.config)
    try:
        decided = int(await conn.fetchval(DECIDED, [uuid.UUID(e.request_id) for e in backlog]))
        if decided != len(backlog):
            raise P4Failed(f"routing decided {decided} of the {len(backlog)} requests")
        published = time.monotonic()
        waited = await _until(lambda: _zero(conn, UNSENT), CATCH_UP_SECONDS)
        if waited is None:
            raise P4Failed(f"routing's outbox still held unsent events after {CATCH_UP_SECONDS} s")
    finally:
        await conn.close()
    return drain, round(time.monotonic() - published, 2)


async def _zero(conn: Any, query: str) -> bool:
    return int(await conn.fetchval(query)) == 0


async def _until(check: Callable[[], Any], bound: float) -> float | None:
    """Seconds until `check()` (awaited) is true, polled; None past `bound`."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > bound:
            return None
        await asyncio.sleep(0.5)
    return round(time.monotonic() - started, 2)


# -- the benchmark -----------------------------------------------------------------------------


def note(events: int) -> str:
    """What P4 measured and what it did to the stack, for the notes of the run."""
    return (
        f"P4 produces {events:,} RequestSubmitted envelopes (intake's, keyed by request id, "
        "over every sub-service) to requests.submitted while routing is stopped. The baseline "
        f"is a plain aiokafka consumer (getmany of {BASELINE_BATCH}, executemany of one row per "
        "event into a scratch database on the same server, one transaction and one offset "
        "commit per batch, a process of its own); routing is the real service, its outbox "
        "relay publishing the routed events meanwhile, and every decision is counted after. "
        "A drain is timed from the consumer group's committed offsets, read every "
        f"{POLL_SECONDS:g} s: from the last look with nothing committed (so neither start-up "
        "nor the group join counts) to the first with all committed. P4 two replicas drains "
        "a second backlog of the same size with routing and routing-2 in one group. Meanwhile "
        "docs, notify and review, the other consumers of requests.submitted and routed, are "
        "stopped; afterwards their groups are moved to the topics' ends (they skip the "
        "benchmark's records, nothing else: they had caught up before) and they are started "
        "again."
    )


async def _caught_up(kafka: Offsets, pairs: Sequence[tuple[str, str]]) -> bool:
    for topic, group in pairs:
        if await kafka.behind(group, await kafka.ends(topic)):
            return False
    return True


async def _stop(stack: Stack, names: Iterable[str]) -> None:
    await asyncio.gather(*(asyncio.to_thread(stack.stop_service, n) for n in names))


async def _start(stack: Stack, names: Iterable[str]) -> None:
    await asyncio.gather(*(asyncio.to_thread(stack.start_service, n) for n in names))


async def backlog_on_topic(
    kafka: Offsets, config: StackConfig, events: int
) -> tuple[list[Submitted], dict[TopicPartition, int], dict[TopicPartition, int], float]:
    """A new backlog produced to requests.submitted: the events, the offsets it starts and
    ends at, and the seconds producing took."""
    backlog = await asyncio.to_thread(submitted_events, events)
    starts = await kafka.ends(topics.REQUEST_SUBMITTED)
    seconds = await produce(config.kafka_bootstrap, backlog)
    ends = await kafka.ends(topics.REQUEST_SUBMITTED)
    added = sum(ends.values()) - sum(starts.values())
    if added != events:
        raise P4Failed(f"{added} records reached the topic for a backlog of {events}")
    return backlog, starts, ends, round(seconds, 2)


async def p4(config: StackConfig, events: int) -> list[Figure]:
    one = Figure(
        "P4",
        f"routing draining {events:,} submitted events vs a plain aiokafka consumer, events/s",
        "≥ 0.5×",
        unit="events/s",
    )
    two = Figure(
        "P4 two replicas",
        f"routing and routing-2 in one group draining {events:,} submitted events, events/s",
        "> 1× one replica",
        unit="events/s",
    )
    stack = Stack(config)
    pairs = paused_groups()
    services = paused_services()
    detail: dict[str, Any] = {"paused_services": services, "skipped_groups": pairs}
    try:
        async with Offsets(config.kafka_bootstrap) as kafka:
            if await _until(lambda: _caught_up(kafka, pairs), CATCH_UP_SECONDS) is None:
                raise P4Failed("the consumers of requests.submitted and routed never caught up")
            await _stop(stack, [*services, *stack.replicas(), ROUTING])
            try:
                _log.info("P4: %d events to requests.submitted, routing stopped", events)
                backlog, starts, ends, detail["produce_seconds"] = await backlog_on_topic(
                    kafka, config, events
                )
                _log.info("P4: the baseline drains them")
                async with scratch_database(config):
                    base = await run_baseline(config, kafka, starts, ends, events)
                _log.info("P4: routing drains them")
                single, detail["routed_published_after_seconds"] = await run_routing(
                    stack, kafka, backlog, ends, replicas=1
                )
                await _stop(stack, [ROUTING])
                _log.info("P4 two replicas: %d more events, routing and routing-2", events)
                backlog, _, ends, detail["produce_seconds_two"] = await backlog_on_topic(
                    kafka, config, events
                )
                double, detail["routed_published_after_seconds_two"] = await run_routing(
                    stack, kafka, backlog, ends, replicas=2
                )
            finally:
                await _stop(stack, stack.replicas())
                await _resume(stack, kafka, pairs, services)
    except Exception as exc:  # one figure that cannot be measured does not end the run
        why = str(exc) if isinstance(exc, P4Failed) else f"{type(exc).__name__}: {exc}"
        for figure in (one, two):
            figure.detail = detail
            figure.fail(why)
        return [one, two]
    detail.update(baseline=base.summary(), routing=single.summary(), two=double.summary())
    one.value, one.baseline = round(single.rate, 1), round(base.rate, 1)
    one.shown = f"{single.rate:,.0f} events/s ({single.seconds:.1f} s)"
    one.baseline_shown = (
        f"aiokafka getmany + executemany, {BASELINE_BATCH} a transaction: "
        f"{base.rate:,.0f} events/s ({base.seconds:.1f} s)"
    )
    one.ratio = round(single.rate / base.rate, 3)
    one.judge(one.ratio >= 0.5)
    one.detail = detail
    two.value, two.baseline = round(double.rate, 1), one.value
    two.shown = f"{double.rate:,.0f} events/s ({double.seconds:.1f} s)"
    two.baseline_shown = f"routing, one replica (P4): {single.rate:,.0f} events/s"
    two.ratio = round(double.rate / single.rate, 3)
    two.judge(two.ratio > 1.0)
    two.detail = detail
    return [one, two]


async def _resume(
    stack: Stack, kafka: Offsets, pairs: Sequence[tuple[str, str]], services: Sequence[str]
) -> None:
    """Moves the paused groups past everything on their topics and starts their services;
    routing runs again too."""
    for topic, group in pairs:
        await kafka.place(group, await kafka.ends(topic))
    await _start(stack, [ROUTING, *services])


def main() -> None:
    asyncio.run(baseline_consume(BaselineSpec.from_json(sys.stdin.read())))


if __name__ == "__main__":
    main()
