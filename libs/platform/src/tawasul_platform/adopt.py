"""A consumer group that takes over the work of others starts where the slowest of them stood."""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalGenerationError, UnknownMemberIdError
from aiokafka.structs import TopicPartition

from tawasul_platform.kafka_tls import security

log = logging.getLogger(__name__)


def slowest(
    committed: Mapping[str, Mapping[TopicPartition, int]], readers: Mapping[str, Sequence[str]]
) -> dict[TopicPartition, int]:
    """Where the slowest reader of each topic stands on each partition, from each group's
    committed offsets. A partition a reader never committed is read from its start by that
    reader, so it is left out: the new group starts there from the start too."""
    found: dict[TopicPartition, int] = {}
    for topic, groups in readers.items():
        if not groups:
            continue
        parts = {tp for tp in committed.get(groups[0], {}) if tp.topic == topic}
        for tp in sorted(parts):
            offsets = [committed.get(group, {}).get(tp, -1) for group in groups]
            if min(offsets) >= 0:
                found[tp] = min(offsets)
    return found


async def commit_outside(
    bootstrap: str,
    group: str,
    offsets: Mapping[TopicPartition, int],
    ssl_context: ssl.SSLContext | None = None,
) -> bool:
    """Commits `offsets` for `group` from outside it. Kafka takes such a commit only while
    nobody reads in the group: False when someone does (nothing committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        **security(ssl_context),
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(dict(offsets))
    except (CommitFailedError, IllegalGenerationError, UnknownMemberIdError):
        return False
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    return True


async def adopt_offsets(
    bootstrap: str,
    group: str,
    readers: Mapping[str, Sequence[str]],
    ssl_context: ssl.SSLContext | None = None,
) -> dict[TopicPartition, int]:
    """Once, before `group` first reads: commits for it, on each partition of the topics in
    `readers`, the offset of the slowest of the groups that read that topic until now, so that
    nothing they had still to read is skipped (what they had read is read again: the new group's
    handlers must be idempotent). Returns what it committed; nothing when `group` has committed
    offsets of its own already (a replica adopted them, or it has been reading)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security(ssl_context))
    await admin.start()
    try:
        if await admin.list_consumer_group_offsets(group):
            return {}
        olds = sorted({g for groups in readers.values() for g in groups})
        committed = {
            old: {
                tp: meta.offset
                for tp, meta in (await admin.list_consumer_group_offsets(old)).items()
            }
            for old in olds
        }
    finally:
        await admin.close()
    offsets = slowest(committed, readers)
    if not offsets:
        return {}
    if not await commit_outside(bootstrap, group, offsets, ssl_context):
        # A replica adopted them first and its consumer has joined the group: it reads from there.
        log.info("consumer group %s is already reading; nothing adopted", group)
        return {}
    log.info(
        "consumer group %s starts where %s stood on %d partitions",
        group,
        ", ".join(olds),
        len(offsets),
    )
    return offsets
