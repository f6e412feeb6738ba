"""Kafka consumers on FastStream: retries with backoff, a dead-letter topic, manual commits.

FastStream's ack policies either drop a failing message (ACK, REJECT_ON_ERROR) or redeliver it
forever and stall its partition (NACK_ON_ERROR). So handlers run under AckPolicy.MANUAL: a
message is tried a bounded number of times, then parked in the group's dead-letter topic, and
only then is its offset committed. An outage of a dependency (database, gateway) is not the
message's fault: it is retried until the dependency is back, and never dead-lettered.
Handlers record the event id in their inbox table in the same transaction as their effect, so
a redelivery (after a crash between the database commit and the offset commit) is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from google.protobuf.message import DecodeError
from tawasul.events.v1 import events_pb2

from tawasul_platform.errors import DomainError
from tawasul_platform.faults import is_transient
from tawasul_platform.topics import dead_letter_topic
from tawasul_platform.tracing import TRACEPARENT, set_traceparent

log = logging.getLogger(__name__)

MAX_OUTAGE_BACKOFF_SECONDS = 30.0

EventHandler = Callable[[events_pb2.Envelope], Awaitable[None]]


class EventConsumer:
    def __init__(
        self,
        *,
        bootstrap: str,
        group: str,
        producer: AIOKafkaProducer,
        max_attempts: int = 4,
        backoff_seconds: float = 0.5,
        graceful_timeout: float = 10.0,
    ) -> None:
        self._broker = KafkaBroker(
            bootstrap, graceful_timeout=graceful_timeout, logger=logging.getLogger("faststream")
        )
        self._group = group
        self._producer = producer
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds

    def subscribe(self, topic: str, handler: EventHandler) -> None:
        dlt = dead_letter_topic(topic, self._group)

        async def on_message(msg: KafkaMessage) -> None:
            await self._process(msg.raw_message, handler, dlt)
            await msg.ack()

        self._broker.subscriber(
            topic,
            group_id=self._group,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
        )(on_message)

    @property
    def group(self) -> str:
        return self._group

    async def start(self) -> None:
        try:
            await self._broker.start()
        except Exception:
            # Kafka went away mid-start: close what did start, so that a retry starts clean.
            with contextlib.suppress(Exception):
                await self._broker.stop()
            raise

    async def stop(self) -> None:
        await self._broker.stop()

    async def _process(
        self, record: ConsumerRecord[bytes, bytes], handler: EventHandler, dlt: str
    ) -> None:
        try:
            event = events_pb2.Envelope.FromString(record.value or b"")
            if not event.event_id:
                raise DecodeError("envelope has no event_id")
        except DecodeError as exc:
            await self._dead_letter(record, dlt, exc, attempts=0)
            return
        headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
        set_traceparent(headers.get(TRACEPARENT))
        attempt = 0
        outage_delay = self._backoff
        while True:
            try:
                await handler(event)
                return
            except Exception as exc:
                if is_transient(exc):
                    # An outage is waited out (the partition pauses); it is not the event's fault.
                    log.warning(
                        "event %s waits for a dependency, retrying in %.1fs: %r",
                        event.event_id,
                        outage_delay,
                        exc,
                    )
                    await asyncio.sleep(outage_delay)
                    outage_delay = min(outage_delay * 2, MAX_OUTAGE_BACKOFF_SECONDS)
                    continue
                attempt += 1
                if isinstance(exc, DomainError) or attempt == self._max_attempts:
                    # A DomainError means the event itself is unacceptable: retrying cannot help.
                    await self._dead_letter(record, dlt, exc, attempts=attempt)
                    return
                delay = self._backoff * 2 ** (attempt - 1)
                log.warning(
                    "event %s (%s) failed on attempt %d, retrying in %.1fs: %r",
                    event.event_id,
                    event.event_type,
                    attempt,
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], dlt: str, error: Exception, *, attempts: int
    ) -> None:
        log.error(
            "dead-lettering %s[%d]@%d after %d attempts: %r",
            record.topic,
            record.partition,
            record.offset,
            attempts,
            error,
        )
        headers = [
            *(record.headers or ()),
            ("dlt.error", repr(error)[:1000].encode()),
            ("dlt.source", f"{record.topic}[{record.partition}]@{record.offset}".encode()),
            ("dlt.attempts", str(attempts).encode()),
        ]
        delay = self._backoff
        while True:
            # The offset is committed only after this succeeds, so the message is never lost.
            try:
                await self._producer.send_and_wait(
                    dlt, value=record.value, key=record.key, headers=headers
                )
                return
            except Exception:
                log.exception("cannot publish to %s; retrying in %.1fs", dlt, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
