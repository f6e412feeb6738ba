"""`tawasul-rewind`: a service's consumer groups moved back to a time, after its database was
put back to a backup of that time.

A restored database has lost what the service applied since the backup, but its groups'
committed offsets are still where it stood before the restore: the events in between would
never be read again. Run with the service stopped (every replica: a group someone reads in
refuses the move), this commits, for each group of the service on each partition it reads,
the first offset at or after `--to` (the backup's time) less `--margin`, wherever the group
stood past it; once started, the service reads those events again. A group behind that time
is left where it is.

The margin is for the events published before the backup but applied after it (the group's
lag then): the backup lacks their effect, and from `--to` itself they would never be read
again. Its default, an hour, is well past a group's usual lag (the consumer-lag alert,
TawasulConsumerLagHigh, fires on a backlog held 15 minutes); a group that lagged more at the
backup's time (an outage it waited out) takes a larger one. Reading again too much is
harmless: what the backup had applied already its inbox skips by event id; what it published
again is skipped downstream by event id or by the request's `sequence`.

    tawasul-rewind SERVICE --to 2026-12-06T09:00:00Z [--margin 1h] [--dry-run]

Kafka as tawasul-dead-letters has it (TAWASUL_KAFKA_BOOTSTRAP, TAWASUL_KAFKA_TLS and the
operator's certificate: kafka_acls.OPERATOR may move every group).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from tawasul_platform.adopt import commit_outside
from tawasul_platform.kafka_tls import add_bootstrap_argument, from_env, require_bootstrap, security
from tawasul_platform.topics import SUBSCRIPTIONS, TOPICS, group_service

PARTITIONS = {spec.name: spec.partitions for spec in TOPICS}
Ctx = ssl.SSLContext | None
# Before `--to`, for what was published before the backup and applied after it (module doc).
MARGIN = timedelta(hours=1)
UNITS = {"s": "seconds", "m": "minutes", "h": "hours"}


class GroupBusyError(Exception):
    """A group has members: its service still runs."""


@dataclass(frozen=True)
class Move:
    group: str
    partition: TopicPartition
    committed: int
    to: int

    def describe(self) -> str:
        tp = self.partition
        return f"{self.group} {tp.topic}[{tp.partition}]: {self.committed} -> {self.to}"


def groups_of(service: str) -> dict[str, list[str]]:
    """Each consumer group of `service`, with the topics it reads."""
    found: dict[str, list[str]] = {}
    for topic, group in SUBSCRIPTIONS:
        if group_service(group) == service:
            found.setdefault(group, []).append(topic)
    if not found:
        services = sorted({group_service(g) for _, g in SUBSCRIPTIONS})
        raise ValueError(f"{service!r} reads no topic; the services that do: {services}")
    return found


def moves(
    committed: dict[str, dict[TopicPartition, int]], at: dict[TopicPartition, int]
) -> list[Move]:
    """Where each group stands past `at`, moved back to it; groups behind it stay."""
    return [
        Move(group, tp, offset, at[tp])
        for group, offsets in sorted(committed.items())
        for tp, offset in sorted(offsets.items())
        if tp in at and offset > at[tp]
    ]


async def _commit(
    bootstrap: str, service: str, group: str, offsets: dict[TopicPartition, int], ctx: Ctx
) -> None:
    # aiokafka's DescribeGroups cannot read Kafka 4's answer for a group with members, so a
    # commit from outside the group, which Kafka takes only while it is empty, tells it too.
    if not await commit_outside(bootstrap, group, offsets, ctx):
        raise GroupBusyError(
            f"group {group} has members reading in it: stop {service} (every replica) first"
        )


async def rewind(
    bootstrap: str,
    service: str,
    to: datetime,
    *,
    margin: timedelta = MARGIN,
    apply: bool = True,
    ssl_context: ssl.SSLContext | None = None,
) -> list[Move]:
    """Moves `service`'s groups back to `to` less `margin` (with `apply`; else only says what
    it would)."""
    if to.tzinfo is None:
        raise ValueError("--to needs its zone (2026-12-06T09:00:00Z, or +03:00)")
    since = to - margin
    reads = groups_of(service)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security(ssl_context))
    await admin.start()
    try:
        committed = {
            group: {
                tp: meta.offset
                for tp, meta in (await admin.list_consumer_group_offsets(group)).items()
                if tp.topic in topics and meta.offset >= 0
            }
            for group, topics in reads.items()
        }
    finally:
        await admin.close()
    tps = [
        TopicPartition(topic, p)
        for topic in sorted({t for ts in reads.values() for t in ts})
        for p in range(PARTITIONS[topic])
    ]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **security(ssl_context))
    await consumer.start()
    try:
        found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
        # No event at or after `since`: the partition's end.
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    at = {tp: found[tp].offset if found[tp] is not None else ends[tp] for tp in tps}
    planned = moves(committed, at)
    # Every group is seen idle (its own offsets committed again, unchanged) before any moves.
    for group, offsets in sorted(committed.items()):
        if offsets:
            await _commit(bootstrap, service, group, offsets, ssl_context)
    if apply:
        for group in sorted({m.group for m in planned}):
            moved = {m.partition: m.to for m in planned if m.group == group}
            await _commit(bootstrap, service, group, moved, ssl_context)
    return planned


def duration(text: str) -> timedelta:
    """`--margin`: a whole number of hours, minutes or seconds (1h, 30m, 90s), or 0."""
    if text == "0":
        return timedelta(0)
    found = re.fullmatch(r"(\d+)([smh])", text)
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r} is no duration: 1h, 30m, 90s or 0")
    return timedelta(**{UNITS[found[2]]: int(found[1])})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tawasul-rewind",
        description="Move a stopped service's consumer groups back to a time (its database's "
        "backup), so that it reads again what it applied after it.",
    )
    add_bootstrap_argument(parser)
    parser.add_argument("service")
    parser.add_argument(
        "--to", required=True, type=datetime.fromisoformat, help="ISO 8601, with its zone"
    )
    parser.add_argument(
        "--margin",
        type=duration,
        default=MARGIN,
        help="read again from this long before --to: 1h (the default), 30m, 90s, 0",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would move, move none")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    require_bootstrap(parser, args.bootstrap)
    try:
        planned = asyncio.run(
            rewind(
                args.bootstrap,
                args.service,
                args.to,
                margin=args.margin,
                apply=not args.dry_run,
                ssl_context=from_env(),
            )
        )
    except (ValueError, GroupBusyError) as exc:
        sys.exit(f"tawasul-rewind: {exc}")
    except KafkaError as exc:
        sys.exit(f"tawasul-rewind: Kafka at {args.bootstrap}: {exc}")
    print(f"from {(args.to - args.margin).isoformat()} (--to less a margin of {args.margin})")
    for move in planned:
        print(("would move " if args.dry_run else "moved ") + move.describe())
    print(f"{len(planned)} partition(s) {'to move' if args.dry_run else 'moved'}")
