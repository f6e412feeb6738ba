"""What one poll costs a consumer in CPU: the platform's EventConsumer against plain aiokafka.

    make up                                  # or any running stack (TAWASUL_PORT_BASE, ...)
    uv run python -m bench.polls [--records 1000] [--rate 100] [--topics 1 4]

At a steady rate well below what either can take, every record comes in a poll of its own, so
a consumer's CPU per record is its CPU per poll: the fixed cost that each consumer group pays
for each record at moderate load, before any handler does anything (P2 and P7 run at such
rates, and each submission is read about twelve times). Each consumer is a process of its
own, reading a fresh topic (`--topics` N: the group reads N topics of 6 partitions, records on
the first only, as routing's and notify's groups read several) while this process produces to
it, and reports its own CPU time (getrusage) from its first record to its last:

- plain: aiokafka's AIOKafkaConsumer, getmany then commit, nothing else;
- platform: tawasul_platform's EventConsumer (FastStream, manual commits, a span per event,
  the lag gauge), its handler doing nothing, without a shared transaction.

Prints one line per consumer and topic count; asserts nothing. The topics are left behind
(named bench-polls-*, one partition's worth of small records each).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tawasul.events.v1 import events_pb2
from tawasul_devstack.stack import StackConfig
from tawasul_platform import kafka_uvloop
from tawasul_platform.consumer import EventConsumer

PARTITIONS = 6
KINDS = ("plain", "platform")


@dataclass(frozen=True)
class Measured:
    kind: str
    topics: int
    records: int
    polls: int
    cpu_seconds: float

    def line(self) -> str:
        return (
            f"{self.kind:9s} {self.topics} topic(s) × {PARTITIONS} partitions: "
            f"{1000 * self.cpu_seconds / self.polls:.3f} ms of CPU per poll "
            f"({self.records} records in {self.polls} polls, {self.cpu_seconds:.2f} s)"
        )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Counter:
    """Counts records and polls; the CPU clock starts at the first record, so that neither
    start-up nor the group join counts."""

    def __init__(self, records: int) -> None:
        self.wanted = records
        self.records = 0
        self.polls = 0
        self.started: float | None = None
        self.done = asyncio.Event()

    def polled(self, records: int) -> None:
        if self.started is None:
            self.started = _cpu()
        self.records += records
        self.polls += 1
        if self.records >= self.wanted:
            self.done.set()

    def spent(self) -> float:
        return _cpu() - (self.started or _cpu())


async def plain(bootstrap: str, topics: Sequence[str], counter: Counter) -> None:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"{topics[0]}-plain",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    print(json.dumps({"ready": True}), flush=True)
    try:
        while not counter.done.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            if batches:
                counter.polled(sum(len(records) for records in batches.values()))
                await consumer.commit()
    finally:
        await consumer.stop()


async def platform(bootstrap: str, topics: Sequence[str], counter: Counter) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    consumer = EventConsumer(bootstrap=bootstrap, group=f"{topics[0]}-platform", producer=producer)

    async def nothing(events: Sequence[events_pb2.Envelope]) -> None:
        counter.polled(len(events))

    for topic in topics:
        consumer.subscribe_batches(topic, nothing)
    await consumer.start()
    print(json.dumps({"ready": True}), flush=True)
    try:
        await counter.done.wait()
    finally:
        await consumer.stop()
        await producer.stop()


async def consume(kind: str, bootstrap: str, topics: Sequence[str], records: int) -> None:
    # As the services configure it (tawasul_platform.logs): no line per record.
    for noisy in ("aiokafka", "faststream"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    counter = Counter(records)
    await (plain if kind == "plain" else platform)(bootstrap, topics, counter)
    print(json.dumps({"polls": counter.polls, "records": counter.records, "cpu": counter.spent()}))


async def _create(bootstrap: str, topics: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, records: int, rate: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        started = time.monotonic()
        for n in range(records):
            request_id = str(uuid.uuid4())
            event = events_pb2.Envelope(
                event_id=str(uuid.uuid4()),
                event_type="tawasul.bench.poll",
                request_id=request_id,
                request_cancelled=events_pb2.RequestCancelled(request_id=request_id),
            )
            await producer.send(topic, event.SerializeToString(), key=request_id.encode())
            await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
        await producer.flush()
    finally:
        await producer.stop()


async def measure(
    config: StackConfig, kind: str, topics: int, records: int, rate: float
) -> Measured:
    names = [f"bench-polls-{uuid.uuid4().hex[:8]}-{n}" for n in range(topics)]
    await _create(config.kafka_bootstrap, names)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.polls",
        "--consume",
        kind,
        "--records",
        str(records),
        *names,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        ready = await asyncio.wait_for(child.stdout.readline(), timeout=60)
        if not ready:
            raise RuntimeError(f"the {kind} consumer ended before it was ready")
        # The group's join is over once it is ready: each record then comes to a member.
        await _produce(config.kafka_bootstrap, names[0], records, rate)
        out, _ = await asyncio.wait_for(child.communicate(), timeout=60 + records / rate)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        raise
    if child.returncode != 0:
        raise RuntimeError(f"the {kind} consumer failed ({child.returncode})")
    result = json.loads(out.decode().strip().splitlines()[-1])
    return Measured(kind, topics, result["records"], result["polls"], result["cpu"])


async def run(config: StackConfig, records: int, rate: float, topics: Sequence[int]) -> None:
    for count in topics:
        for kind in KINDS:
            print((await measure(config, kind, count, records, rate)).line(), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.polls", description=__doc__)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="records a second")
    parser.add_argument("--topics", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--consume", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("names", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    config = StackConfig.from_env()
    if args.consume:
        kafka_uvloop.install()  # as `serve` runs the services
        uvloop.run(consume(args.consume, config.kafka_bootstrap, args.names, args.records))
    else:
        asyncio.run(run(config, args.records, args.rate, args.topics))


if __name__ == "__main__":
    main()
