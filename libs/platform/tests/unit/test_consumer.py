from typing import Any

from aiokafka.structs import ConsumerRecord
from asyncpg.exceptions import (
    AdminShutdownError,
    CannotConnectNowError,
    TooManyConnectionsError,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from tawasul.events.v1 import events_pb2
from tawasul_platform.consumer import EventConsumer
from tawasul_platform.errors import InvalidArgument, Unavailable
from tawasul_platform.faults import is_transient

EVENT = events_pb2.Envelope(event_id="e1", event_type="tawasul.requests.submitted")


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, dict[str, bytes]]] = []

    async def send_and_wait(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: Any
    ) -> None:
        self.sent.append((topic, value, dict(headers)))


def record(value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"r1",
        value=value,
        checksum=None,
        serialized_key_size=2,
        serialized_value_size=len(value),
        headers=[],
    )


def consumer(producer: FakeProducer) -> EventConsumer:
    return EventConsumer(
        bootstrap="127.0.0.1:1",
        group="g",
        producer=producer,
        max_attempts=3,
        backoff_seconds=0.001,
    )


def failing(*errors: Exception) -> tuple[list[str], Any]:
    calls: list[str] = []
    pending = list(errors)

    async def handle(event: events_pb2.Envelope) -> None:
        calls.append(event.event_id)
        if pending:
            raise pending.pop(0)

    return calls, handle


async def test_an_outage_is_waited_out_and_never_dead_lettered() -> None:
    producer = FakeProducer()
    outage = OperationalError("SELECT 1", None, ConnectionRefusedError())
    calls, handle = failing(*[outage] * 5, Unavailable("gateway"))
    await consumer(producer)._process(record(EVENT.SerializeToString()), handle, "t.dlt.g")
    assert len(calls) == 7
    assert producer.sent == []


async def test_a_database_out_of_connections_or_restarting_is_waited_out() -> None:
    producer = FakeProducer()
    calls, handle = failing(
        PoolTimeout("QueuePool limit of size 5 overflow 5 reached, connection timed out"),
        TooManyConnectionsError("sorry, too many clients already"),
        AdminShutdownError("terminating connection due to administrator command"),
        CannotConnectNowError("the database system is starting up"),
    )
    # More outages than max_attempts: none counts as an attempt.
    await consumer(producer)._process(record(EVENT.SerializeToString()), handle, "t.dlt.g")
    assert len(calls) == 5
    assert producer.sent == []


async def test_an_unacceptable_event_is_dead_lettered_at_once() -> None:
    producer = FakeProducer()
    calls, handle = failing(InvalidArgument({"sub_service_code": "unknown"}))
    await consumer(producer)._process(record(EVENT.SerializeToString()), handle, "t.dlt.g")
    assert len(calls) == 1
    ((topic, value, headers),) = producer.sent
    assert (topic, value) == ("t.dlt.g", EVENT.SerializeToString())
    assert headers["dlt.source"] == b"t[0]@7"


async def test_a_failing_handler_is_retried_then_dead_lettered() -> None:
    producer = FakeProducer()
    calls, handle = failing(*[ValueError("bug")] * 3)
    await consumer(producer)._process(record(EVENT.SerializeToString()), handle, "t.dlt.g")
    assert len(calls) == 3
    assert producer.sent[0][2]["dlt.attempts"] == b"3"


async def test_an_undecodable_message_is_dead_lettered_without_calling_the_handler() -> None:
    producer = FakeProducer()
    calls, handle = failing()
    await consumer(producer)._process(record(b"\xff garbage"), handle, "t.dlt.g")
    assert calls == []
    assert len(producer.sent) == 1


def test_outages_are_told_apart_from_bugs_and_bad_input() -> None:
    assert is_transient(OperationalError("x", None, OSError()))
    assert is_transient(ConnectionRefusedError())
    assert is_transient(Unavailable("docs"))
    assert not is_transient(InvalidArgument({"f": "bad"}))
    assert not is_transient(ValueError("bug"))
