"""One trace across a gRPC call, the outbox, Kafka's headers and a consumer, in process: a
real gRPC server and PostgreSQL, the producer and the broker stood in for by the records the
relay would have sent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import MetaData
from tawasul.events.v1 import events_pb2
from tawasul_platform import tracing
from tawasul_platform.consumer import EventConsumer
from tawasul_platform.db import outbox_table
from tawasul_platform.events import OutgoingEvent, envelope
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.outbox import OutboxRelay, write_outbox
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine, recorded_spans, unguarded
from tawasul_platform.tls import open_channel

SERVICE = "tracetest"
SUBMIT = "/tawasul.test.Probe/Submit"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as exporter:
        yield exporter


def submitted(request_id: str) -> OutgoingEvent:
    return envelope(
        topic="t.submitted",
        event_type="tawasul.requests.submitted",
        producer=SERVICE,
        request_id=request_id,
        occurred_at=datetime.now(UTC),
        fill=events_pb2.Envelope(),
    )


class Sent:
    """Stands in for the Kafka producer: the records the relay published."""

    def __init__(self) -> None:
        self.records: list[ConsumerRecord[bytes, bytes]] = []

    async def send(
        self, topic: str, *, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        self.records.append(
            ConsumerRecord(
                topic=topic,
                partition=0,
                offset=len(self.records),
                timestamp=0,
                timestamp_type=0,
                key=key,
                value=value,
                checksum=None,
                serialized_key_size=len(key),
                serialized_value_size=len(value),
                headers=headers,
            )
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def parent_of(traceparent: str) -> tuple[int, int]:
    """(trace id, span id) named by a traceparent header."""
    _, trace_id, span_id, _ = traceparent.split("-")
    return int(trace_id, 16), int(span_id, 16)


def parent_span(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def only(spans: list[ReadableSpan], kind: SpanKind) -> ReadableSpan:
    (found,) = [s for s in spans if s.kind == kind]
    return found


async def test_a_call_its_outbox_row_and_the_consumed_event_are_one_trace(
    database_url: str, spans: InMemorySpanExporter
) -> None:
    engine = async_engine(database_url, pool_size=2)
    table = outbox_table(MetaData())
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    database = Database(engine.sync_engine)

    async def submit(request: wrappers_pb2.StringValue, _: Any) -> wrappers_pb2.StringValue:
        session = database.session()
        try:
            await write_outbox(session, table, SERVICE, [submitted(request.value)])
            await session.commit()
        finally:
            await session.close()
        return request

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            submit,
            wrappers_pb2.StringValue.FromString,
            wrappers_pb2.StringValue.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("tawasul.test.Probe", {"Submit": handler}),)
        )

    server = GrpcServer("127.0.0.1:0", unguarded(), register)
    await server.start()
    try:
        async with open_channel(f"127.0.0.1:{server.port}", None) as channel:
            call = channel.unary_unary(
                SUBMIT,
                request_serializer=wrappers_pb2.StringValue.SerializeToString,
                response_deserializer=wrappers_pb2.StringValue.FromString,
            )
            await call(wrappers_pb2.StringValue(value="r1"), timeout=5)
        sent = Sent()
        relay = OutboxRelay(
            database=database, table=table, producer=cast(AIOKafkaProducer, sent), service=SERVICE
        )
        assert await relay.drain() == 1
    finally:
        await server.stop(1)
        await engine.dispose()

    written: list[str] = []

    async def on_submitted(event: events_pb2.Envelope) -> None:
        written.append(submitted(event.request_id).headers[tracing.TRACEPARENT])

    consumer = EventConsumer(bootstrap="127.0.0.1:1", group="g", producer=cast(Any, None))
    await consumer.apply(sent.records, on_submitted, "t.submitted.dlt.g")

    finished = list(spans.get_finished_spans())
    client, server_span, producer, consumed = (
        only(finished, kind)
        for kind in (SpanKind.CLIENT, SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER)
    )
    assert len({s.context.trace_id for s in finished}) == 1
    assert parent_span(server_span) == client.context.span_id
    assert server_span.name == SUBMIT
    assert parent_span(producer) == server_span.context.span_id
    assert parent_span(consumed) == producer.context.span_id
    assert consumed.attributes is not None
    assert consumed.attributes["tawasul.request_id"] == "r1"
    # What the consumer writes in turn descends from its span: the next hop continues.
    assert [parent_of(w) for w in written] == [
        (consumed.context.trace_id, consumed.context.span_id)
    ]


async def test_health_probes_make_no_spans(spans: InMemorySpanExporter) -> None:
    server = GrpcServer("127.0.0.1:0", unguarded(), lambda _: None)
    await server.start()
    try:
        async with open_channel(f"127.0.0.1:{server.port}", None) as channel:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
    finally:
        await server.stop(1)
    assert [s.kind for s in spans.get_finished_spans()] == [SpanKind.CLIENT]
