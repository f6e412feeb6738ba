"""`tawasul-dead-letters`: the events consumer groups parked, looked at and replayed.

A group parks an event it could not apply after its retries on `<topic>.dlt.<group>`, with
the error, the record it came from and the attempts in `dlt.*` headers, and goes on
(consumer.py). Once the cause is mended (a release, a row put right), the event is replayed:
published again on its own topic with its own key (so on its request's partition, after that
request's later events) and its own headers. Every group reading that topic gets it again:
the groups that applied it skip it by its event id, and the group that parked it applies it
now, or parks it again (its `replayed-from` header then says which dead letter it was). Their
inboxes keep ids as long as a topic and then a dead-letter topic may hold an event
(retention.INBOX_KEEP); a replay of an event older than that, less a day for the groups to read
it (one parked again after replays), is refused: the groups that applied it would apply it
again. It comes after the request's later events: a status change or a routing decision no
later than one a group applied (their per-request `sequence`) is skipped there, not applied
over them.

A compacted topic's dead letters (topics.COMPACTED: the staff records) are not replayed: the
replay would be the key's latest record, and compaction would delete the newer ones it comes
after (a reviewer's v5 published again after v6 is what a database rebuilt from the topic
gets). Their groups read every key's latest record again at each start, so once the cause is
mended the service is restarted and the dead letters are discarded.

What has been dealt with is this tool's own consumer group's offsets on the dead-letter
topics (HANDLED_GROUP): `replay` and `discard` take the oldest pending dead letters of one
topic, in order, and move that group past them; `list` shows what is pending. A replay cut
short is run again: what it had published already reaches the groups twice, and they skip it.

    tawasul-dead-letters list [--all] [--limit N]
    tawasul-dead-letters replay TOPIC GROUP [--count N]
    tawasul-dead-letters discard TOPIC GROUP --count N

Kafka: --bootstrap, else TAWASUL_KAFKA_BOOTSTRAP; over mutual TLS when TAWASUL_KAFKA_TLS says
so (kafka_tls), with the certificate of TAWASUL_TLS_*, which must be the operator's: Kafka's
ACLs let no service read the dead letters nor publish another service's events
(kafka_acls.OPERATOR).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from aiokafka.structs import ConsumerRecord, TopicPartition
from google.protobuf.message import DecodeError
from tawasul.events.v1 import events_pb2

from tawasul_platform.kafka_tls import add_bootstrap_argument, from_env, require_bootstrap, security
from tawasul_platform.retention import INBOX_KEEP
from tawasul_platform.topics import (
    COMPACTED,
    SUBSCRIPTIONS,
    TOPICS,
    dead_letter_topic,
    group_service,
)

HANDLED_GROUP = "tawasul-dead-letters"
REPLAYED_FROM = "replayed-from"
FETCH_MS = 1000
# As declared (the stack creates them so; production's must match).
PARTITIONS = {spec.name: spec.partitions for spec in TOPICS}
# How old an event may be to be replayed: the groups that applied it (when it occurred, at the
# earliest) must still hold its id in their inboxes when they read the replay, a day later at most.
REPLAYABLE_FOR = INBOX_KEEP - timedelta(days=1)


@dataclass(frozen=True)
class DeadLetter:
    dlt: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def where(self) -> str:
        return f"{self.dlt}[{self.partition}]@{self.offset}"

    def header(self, name: str) -> str:
        """The header's last value (a dead letter parked again carries the earlier ones too)."""
        values = [v for k, v in self.headers if k == name]
        return values[-1].decode(errors="replace") if values else ""

    def replayed_headers(self) -> list[tuple[str, bytes]]:
        """The event's own headers, without the parking's, and where it was replayed from."""
        own = [(k, v) for k, v in self.headers if not k.startswith("dlt.") and k != REPLAYED_FROM]
        return [*own, (REPLAYED_FROM, self.where.encode())]

    def occurred_at(self) -> datetime | None:
        """When its event occurred; None for one undecodable (no group applied it) or with no
        such field (events.envelope always fills it)."""
        try:
            event = events_pb2.Envelope.FromString(self.value)
        except DecodeError:
            return None
        return event.occurred_at.ToDatetime(UTC) if event.HasField("occurred_at") else None

    def describe(self) -> str:
        parked = datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)
        try:
            event = events_pb2.Envelope.FromString(self.value)
            what = f"{event.event_type} event={event.event_id} request={event.request_id}"
        except DecodeError:
            what = f"undecodable ({len(self.value)} bytes)"
        replayed = self.header(REPLAYED_FROM)
        return (
            f"{self.where} parked {parked:%Y-%m-%dT%H:%M:%SZ}: {what}"
            f" key={(self.key or b'').decode(errors='replace')}"
            f" attempts={self.header('dlt.attempts')} from {self.header('dlt.source')}"
            + (f" replayed from {replayed}" if replayed else "")
            + f" error={self.header('dlt.error')}"
        )


@dataclass(frozen=True)
class Pending:
    dlt: str
    count: int
    letters: list[DeadLetter]  # the oldest of them, as many as asked for
    # By partition, the first offset not dealt with (listing every kept one shows which).
    first_pending: dict[int, int]

    def dealt_with(self, letter: DeadLetter) -> bool:
        return letter.offset < self.first_pending.get(letter.partition, 0)


def refuse_forgotten(letters: Sequence[DeadLetter], now: datetime) -> None:
    """ValueError when a letter's event is older than the inboxes remember (REPLAYABLE_FOR):
    the groups that applied it would take the replay for a new event and apply it twice."""
    for index, letter in enumerate(letters):
        occurred = letter.occurred_at()
        if occurred is not None and now - occurred > REPLAYABLE_FOR:
            before = f"replay the {index} before it with --count {index}, then " if index else ""
            raise ValueError(
                f"{letter.where}: its event occurred {occurred:%Y-%m-%dT%H:%M:%SZ}, more than"
                f" {REPLAYABLE_FOR.days} days ago: the groups that applied it no longer keep its"
                f" id (retention.INBOX_KEEP) and would apply it twice. Nothing was replayed;"
                f" {before}apply it by hand where it was parked and discard it (discard --count 1)"
            )


def subscription(topic: str, group: str) -> str:
    """The dead-letter topic of a subscription that exists; ValueError for any other."""
    if (topic, group) not in SUBSCRIPTIONS:
        known = "\n".join(f"  {t} {g}" for t, g in SUBSCRIPTIONS)
        raise ValueError(f"no group {group!r} reads {topic!r}; the subscriptions are:\n{known}")
    return dead_letter_topic(topic, group)


def refuse_compacted(topic: str, group: str) -> None:
    """ValueError for a compacted topic: a replay would outlive the key's newer records."""
    if topic in COMPACTED:
        raise ValueError(
            f"{topic} is compacted: a replay would become each key's latest record there, and"
            f" compaction would delete the newer ones. Nothing was replayed; {group} reads every"
            f" key's latest record again at its next start: once the cause is mended, restart"
            f" {group_service(group)}, then discard these dead letters (discard {topic} {group}"
            " --count N)"
        )


class _DeadLetters:
    """One dead-letter topic read from where HANDLED_GROUP left it (or from its start)."""

    def __init__(self, consumer: AIOKafkaConsumer, dlt: str) -> None:
        self._consumer = consumer
        self._dlt = dlt
        self._ends: dict[TopicPartition, int] = {}
        self.first_pending: dict[int, int] = {}

    async def open(self, *, everything: bool) -> int:
        """Seeks to the first pending dead letter (every one kept, with `everything`) and
        returns how many there are from there."""
        consumer = self._consumer
        if self._dlt not in await consumer.topics():
            # Kafka leaves out of its answer the topics a client may not read: without this
            # the reads below retry until they time out.
            raise TopicAuthorizationFailedError(
                f"{self._dlt} is not there for this client: only the operator's certificate may "
                "read dead letters (tawasul_platform.kafka_acls)"
            )
        tps = [TopicPartition(self._dlt, p) for p in range(PARTITIONS[self._dlt])]
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        self._ends = await consumer.end_offsets(tps)
        count = 0
        for tp in tps:
            self.first_pending[tp.partition] = max(await consumer.committed(tp) or 0, starts[tp])
            start = starts[tp] if everything else self.first_pending[tp.partition]
            consumer.seek(tp, start)
            count += max(0, self._ends[tp] - start)
        return count

    async def take(self, count: int | None) -> list[DeadLetter]:
        """The first `count` (None: all) dead letters up to the ends seen at `open`, oldest
        partition first."""
        taken: list[DeadLetter] = []
        for tp, end in self._ends.items():
            while await self._consumer.position(tp) < end and (count is None or len(taken) < count):
                batch = await self._consumer.getmany(tp, timeout_ms=FETCH_MS)
                for record in batch.get(tp, []):
                    if record.offset >= end or (count is not None and len(taken) >= count):
                        break
                    taken.append(_letter(record))
        return taken

    async def handled(self, letters: Sequence[DeadLetter]) -> None:
        last: dict[TopicPartition, int] = {}
        for letter in letters:
            tp = TopicPartition(letter.dlt, letter.partition)
            last[tp] = max(last.get(tp, 0), letter.offset + 1)
        if last:
            await self._consumer.commit(last)


def _letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    return DeadLetter(
        dlt=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value or b"",
        headers=tuple(record.headers or ()),
    )


@asynccontextmanager
async def _reading(
    bootstrap: str, ssl_context: ssl.SSLContext | None
) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **security(ssl_context),
        group_id=HANDLED_GROUP,
        enable_auto_commit=False,
        # A pending dead letter past the topic's retention: read on from the oldest kept.
        auto_offset_reset="earliest",
        # Each topic's reads wait for the fetch the previous topic left waiting.
        fetch_max_wait_ms=50,
    )
    try:
        await consumer.start()
        yield consumer
    finally:
        await consumer.stop()


async def pending(
    bootstrap: str,
    *,
    limit: int | None = None,
    everything: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> list[Pending]:
    """Each subscription's dead letters not dealt with yet (every one kept, with
    `everything`): how many, and the oldest `limit` of them (None: all)."""
    found = []
    async with _reading(bootstrap, ssl_context) as consumer:
        for topic, group in SUBSCRIPTIONS:
            dlt = dead_letter_topic(topic, group)
            letters = _DeadLetters(consumer, dlt)
            count = await letters.open(everything=everything)
            taken = await letters.take(limit) if count else []
            found.append(Pending(dlt, count, taken, letters.first_pending))
    return found


async def replay(
    bootstrap: str,
    topic: str,
    group: str,
    count: int | None,
    ssl_context: ssl.SSLContext | None = None,
) -> list[DeadLetter]:
    """Publishes the oldest `count` (None: all) pending dead letters of the subscription on
    `topic` again, then marks them dealt with; returns them."""
    dlt = subscription(topic, group)
    refuse_compacted(topic, group)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", **security(ssl_context)
    )
    try:
        await producer.start()
        async with _reading(bootstrap, ssl_context) as consumer:
            letters = _DeadLetters(consumer, dlt)
            await letters.open(everything=False)
            taken = await letters.take(count)
            refuse_forgotten(taken, datetime.now(UTC))
            sent = [
                await producer.send(
                    topic, value=letter.value, key=letter.key, headers=letter.replayed_headers()
                )
                for letter in taken
            ]
            await asyncio.gather(*sent)
            await letters.handled(taken)
    finally:
        await producer.stop()
    return taken


async def discard(
    bootstrap: str,
    topic: str,
    group: str,
    count: int,
    ssl_context: ssl.SSLContext | None = None,
) -> list[DeadLetter]:
    """Marks the oldest `count` pending dead letters of the subscription dealt with, without
    replaying them (they were looked at, and nothing is to be done); returns them."""
    dlt = subscription(topic, group)
    async with _reading(bootstrap, ssl_context) as consumer:
        letters = _DeadLetters(consumer, dlt)
        await letters.open(everything=False)
        taken = await letters.take(count)
        await letters.handled(taken)
    return taken


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tawasul-dead-letters",
        description="The events consumer groups could not apply: look at them, replay them "
        "on their own topic once the cause is mended, or discard them.",
    )
    add_bootstrap_argument(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the dead letters pending, oldest first")
    listing.add_argument("--all", action="store_true", help="also those dealt with")
    listing.add_argument("--limit", type=_positive, default=20, help="shown a topic (20)")
    for name, help_text in (
        ("replay", "publish the oldest pending dead letters on their topic again"),
        ("discard", "mark the oldest pending dead letters dealt with, without replaying"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("topic")
        command.add_argument("group")
        command.add_argument(
            "--count", type=_positive, required=name == "discard", help="how many (replay: all)"
        )
    return parser


async def _run(args: argparse.Namespace) -> None:
    ssl_context = from_env()
    if args.command == "list":
        found = await pending(
            args.bootstrap, limit=args.limit, everything=args.all, ssl_context=ssl_context
        )
        for each in found:
            if each.count:
                print(f"{each.dlt}: {each.count} {'kept' if args.all else 'pending'}")
                for letter in each.letters:
                    dealt_with = "(dealt with) " if each.dealt_with(letter) else ""
                    print(f"  {dealt_with}{letter.describe()}")
        if not any(each.count for each in found):
            print("no dead letters" + ("" if args.all else " pending"))
        return
    act = replay if args.command == "replay" else discard
    done = await act(args.bootstrap, args.topic, args.group, args.count, ssl_context)
    for letter in done:
        print(f"{args.command}ed {letter.describe()}")
    print(f"{len(done)} {args.command}ed")


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    require_bootstrap(parser, args.bootstrap)
    try:
        asyncio.run(_run(args))
    except ValueError as exc:
        sys.exit(f"tawasul-dead-letters: {exc}")
    except KafkaError as exc:
        sys.exit(f"tawasul-dead-letters: Kafka at {args.bootstrap}: {exc}")
