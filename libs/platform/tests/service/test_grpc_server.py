"""The platform's gRPC server, started for real on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from prometheus_client import REGISTRY
from tawasul.docs.v1 import docs_pb2
from tawasul_platform.deadlines import DEFAULT_DEADLINE_SECONDS, call_timeout
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.grpc import DRAIN_BYTES, GrpcServer, field_violations, status_details
from tawasul_platform.hygiene import CONTROL, TOO_LONG
from tawasul_platform.testing import unguarded
from tawasul_platform.tls import open_channel

CHECK = "/grpc.health.v1.Health/Check"
# Methods of a test-only service: what the interceptor lets through, and the deadline a
# handler would give its own downstream calls.
COUNT = "/tawasul.test.Probe/CountParts"
REFUSE = "/tawasul.test.Probe/RefuseAtOnce"
TIMEOUT = "/tawasul.test.Probe/DownstreamTimeout"

Context = grpc.aio.ServicerContext[Any, Any]


async def _count_parts(
    parts: AsyncIterator[docs_pb2.UploadDocumentRequest], context: Context
) -> wrappers_pb2.Int32Value:
    return wrappers_pb2.Int32Value(value=len([p async for p in parts]))


async def _refuse_at_once(
    parts: AsyncIterator[docs_pb2.UploadDocumentRequest], context: Context
) -> wrappers_pb2.Int32Value:
    await anext(parts)
    raise InvalidArgument({"metadata": "refused at once"})


async def _downstream_timeout(
    request: wrappers_pb2.StringValue, context: Context
) -> wrappers_pb2.DoubleValue:
    return wrappers_pb2.DoubleValue(value=call_timeout())


async def _replies(
    request: wrappers_pb2.StringValue, context: Context
) -> AsyncIterator[wrappers_pb2.StringValue]:
    """Server-streaming, as an async generator: one reply, then what the request asks for."""
    yield wrappers_pb2.StringValue(value="first")
    if request.value == "refuse":
        raise InvalidArgument({"value": "refused mid-stream"})
    if request.value == "crash":
        raise RuntimeError("a bug")
    if request.value == "down":
        raise ConnectionRefusedError("the database is down")


async def _echo(requests: AsyncIterator[wrappers_pb2.StringValue], context: Context) -> None:
    """Bidi-streaming, writing with context.write."""
    async for request in requests:
        if request.value == "refuse":
            raise InvalidArgument({"value": "refused mid-stream"})
        await context.write(request)


def _probe(server: grpc.aio.Server) -> None:
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Replies": grpc.unary_stream_rpc_method_handler(
            _replies,
            wrappers_pb2.StringValue.FromString,
            wrappers_pb2.StringValue.SerializeToString,
        ),
        "Echo": grpc.stream_stream_rpc_method_handler(
            _echo,
            wrappers_pb2.StringValue.FromString,
            wrappers_pb2.StringValue.SerializeToString,
        ),
        "CountParts": grpc.stream_unary_rpc_method_handler(
            _count_parts,
            docs_pb2.UploadDocumentRequest.FromString,
            wrappers_pb2.Int32Value.SerializeToString,
        ),
        "RefuseAtOnce": grpc.stream_unary_rpc_method_handler(
            _refuse_at_once,
            docs_pb2.UploadDocumentRequest.FromString,
            wrappers_pb2.Int32Value.SerializeToString,
        ),
        "DownstreamTimeout": grpc.unary_unary_rpc_method_handler(
            _downstream_timeout,
            wrappers_pb2.StringValue.FromString,
            wrappers_pb2.DoubleValue.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("tawasul.test.Probe", handlers),)
    )


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = GrpcServer("127.0.0.1:0", unguarded(), _probe)
    await server.start()
    await server.serving(True)
    async with open_channel(f"127.0.0.1:{server.port}", None) as channel:
        yield channel
    await server.stop(1)


async def test_bytes_that_are_not_the_message_are_invalid_argument(
    channel: grpc.aio.Channel,
) -> None:
    # No serializer: the bytes go as they are.
    raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(CHECK)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw(b"\xff\xff\xff not a protobuf message", timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == {
        "request": "the request's bytes are not a valid message of this method"
    }


async def test_a_string_that_is_not_utf8_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(CHECK)
    # HealthCheckRequest.service (field 1) holding a lone surrogate, as CESU-8 encodes it.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw(b"\x0a\x03\xed\xa0\x80", timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"request"}


async def test_a_valid_message_is_still_answered(channel: grpc.aio.Channel) -> None:
    check = channel.unary_unary(
        CHECK,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    answer = await check(health_pb2.HealthCheckRequest(), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_control_character_is_refused_before_the_handler(
    channel: grpc.aio.Channel,
) -> None:
    check = channel.unary_unary(
        CHECK,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check(health_pb2.HealthCheckRequest(service="tawasul\x00"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == {"service": CONTROL}


def _parts(*parts: docs_pb2.UploadDocumentRequest) -> AsyncIterator[docs_pb2.UploadDocumentRequest]:
    async def stream() -> AsyncIterator[docs_pb2.UploadDocumentRequest]:
        for part in parts:
            yield part

    return stream()


def _uploads(
    channel: grpc.aio.Channel, method: str
) -> grpc.aio.StreamUnaryMultiCallable[docs_pb2.UploadDocumentRequest, wrappers_pb2.Int32Value]:
    """One of the probe's client-streaming methods, sent upload messages."""
    return channel.stream_unary(
        method,
        request_serializer=docs_pb2.UploadDocumentRequest.SerializeToString,
        response_deserializer=wrappers_pb2.Int32Value.FromString,
    )


async def test_every_streamed_message_is_checked(channel: grpc.aio.Channel) -> None:
    count = _uploads(channel, COUNT)
    chunk = docs_pb2.UploadDocumentRequest(chunk=b"\x00" * 1000)
    good = docs_pb2.UploadDocumentRequest(metadata=docs_pb2.DocumentMetadata(filename="scan.pdf"))
    answer = await count(_parts(good, chunk, chunk), timeout=5)
    assert answer.value == 3
    long_name = docs_pb2.UploadDocumentRequest(
        metadata=docs_pb2.DocumentMetadata(filename="x" * 100_000)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await count(_parts(chunk, long_name), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == {"metadata.filename": TOO_LONG}


async def test_a_refusal_reaches_a_client_still_sending_as_the_server_s_status(
    channel: grpc.aio.Channel,
) -> None:
    """Refused at its first message, answered after its last: grpc.aio's client reports a
    call that ended while it was still writing as INTERNAL (grpc/grpc#36066). A 24 MiB file,
    in docs' 256 KiB chunks, is still coming long after it was refused."""
    refuse = _uploads(channel, REFUSE)
    chunk = docs_pb2.UploadDocumentRequest(chunk=b"\x00" * 256 * 1024)
    first = docs_pb2.UploadDocumentRequest(metadata=docs_pb2.DocumentMetadata(filename="a.pdf"))
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await refuse(_parts(first, *[chunk] * 96), timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(caught.value) == {"metadata": "refused at once"}


async def test_a_refused_client_streaming_on_and_on_is_answered_anyway(
    channel: grpc.aio.Channel,
) -> None:
    refuse = _uploads(channel, REFUSE)
    sent = 0
    chunk = docs_pb2.UploadDocumentRequest(chunk=b"\x00" * 256 * 1024)

    async def endless() -> AsyncIterator[docs_pb2.UploadDocumentRequest]:
        nonlocal sent
        while True:
            sent += chunk.ByteSize()
            yield chunk

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await refuse(endless(), timeout=30)
    # Ended by the server once it had drained its bound, long before the caller's deadline.
    assert caught.value.code() != grpc.StatusCode.DEADLINE_EXCEEDED
    assert sent > DRAIN_BYTES


async def test_the_callers_deadline_bounds_downstream_calls(channel: grpc.aio.Channel) -> None:
    timeout = channel.unary_unary(
        TIMEOUT,
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.DoubleValue.FromString,
    )
    short = await timeout(wrappers_pb2.StringValue(), timeout=0.8)
    # gRPC rounds a sent timeout up a little; the point is 0.8, not the default 5.
    assert 0.0 < short.value <= 0.85
    unbounded = await timeout(wrappers_pb2.StringValue())
    assert unbounded.value == DEFAULT_DEADLINE_SECONDS


async def _replies_of(call: Any) -> tuple[list[str], grpc.StatusCode, dict[str, str]]:
    seen: list[str] = []
    try:
        async for reply in call:
            seen.append(wrappers_pb2.StringValue.FromString(reply).value)
    except grpc.aio.AioRpcError as error:
        return seen, error.code(), field_violations(error)
    return seen, grpc.StatusCode.OK, {}


async def test_server_streaming_gets_the_same_error_mapping(channel: grpc.aio.Channel) -> None:
    replies: Any = channel.unary_stream("/tawasul.test.Probe/Replies")

    def ask(value: str) -> bytes:
        return wrappers_pb2.StringValue(value=value).SerializeToString()

    assert await _replies_of(replies(ask("fine"), timeout=5)) == (
        ["first"],
        grpc.StatusCode.OK,
        {},
    )
    assert await _replies_of(replies(ask("refuse"), timeout=5)) == (
        ["first"],
        grpc.StatusCode.INVALID_ARGUMENT,
        {"value": "refused mid-stream"},
    )
    assert await _replies_of(replies(ask("crash"), timeout=5)) == (
        ["first"],
        grpc.StatusCode.INTERNAL,
        {},
    )
    assert await _replies_of(replies(b"\xff\xff not a message", timeout=5)) == (
        [],
        grpc.StatusCode.INVALID_ARGUMENT,
        {"request": "the request's bytes are not a valid message of this method"},
    )
    assert await _replies_of(replies(ask("a\x00b"), timeout=5)) == (
        [],
        grpc.StatusCode.INVALID_ARGUMENT,
        {"value": CONTROL},
    )


@pytest.mark.parametrize(
    ("value", "code", "english", "arabic"),
    [
        (
            "down",
            grpc.StatusCode.UNAVAILABLE,
            "a dependency is unavailable; retry shortly",
            "خدمة مساندة غير متاحة؛ أعد المحاولة بعد قليل",
        ),
        ("crash", grpc.StatusCode.INTERNAL, "internal error", "خطأ داخلي"),
    ],
)
@pytest.mark.parametrize("asked", ["ar", "fr-FR", None])
async def test_an_outage_or_a_bug_is_answered_in_the_callers_language(
    channel: grpc.aio.Channel,
    value: str,
    code: grpc.StatusCode,
    english: str,
    arabic: str,
    asked: str | None,
) -> None:
    """Arabic when asked for, and when the call names no language Tawasul speaks (the
    default, SPEC §2); the status's message stays English, for logs."""
    replies: Any = channel.unary_stream("/tawasul.test.Probe/Replies")
    call = replies(
        wrappers_pb2.StringValue(value=value).SerializeToString(),
        timeout=5,
        metadata=(("accept-language", asked),) if asked else (),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert (caught.value.code(), caught.value.details()) == (code, english)
    status = status_details(caught.value)
    assert status is not None
    said = error_details_pb2.LocalizedMessage()
    assert [detail.Unpack(said) for detail in status.details] == [True]
    assert (said.locale, said.message) == ("ar", arabic)


async def test_bidi_streaming_gets_the_same_error_mapping(channel: grpc.aio.Channel) -> None:
    echo: Any = channel.stream_stream("/tawasul.test.Probe/Echo")

    def stream(*values: bytes) -> Any:
        return iter(values)

    hello = wrappers_pb2.StringValue(value="hello").SerializeToString()
    refuse = wrappers_pb2.StringValue(value="refuse").SerializeToString()
    assert await _replies_of(echo(stream(hello, hello), timeout=5)) == (
        ["hello", "hello"],
        grpc.StatusCode.OK,
        {},
    )
    assert await _replies_of(echo(stream(hello, refuse, hello), timeout=5)) == (
        ["hello"],
        grpc.StatusCode.INVALID_ARGUMENT,
        {"value": "refused mid-stream"},
    )
    seen, code, violations = await _replies_of(echo(stream(hello, b"\xff\xff"), timeout=5))
    assert (seen, code, violations) == (
        ["hello"],
        grpc.StatusCode.INVALID_ARGUMENT,
        {"request": "the request's bytes are not a valid message of this method"},
    )


async def test_health_watch_still_streams_through_the_interceptor(
    channel: grpc.aio.Channel,
) -> None:
    watch: Any = channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    call = watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
    first = await call.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    call.cancel()


def _handled(method: str, code: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "tawasul_grpc_server_handled_seconds_count",
            {"grpc_service": "tawasul.test.Probe", "grpc_method": method, "grpc_code": code},
        )
        or 0.0
    )


async def test_every_answer_is_counted_by_method_and_status_code(
    channel: grpc.aio.Channel,
) -> None:
    timeout = channel.unary_unary(
        TIMEOUT,
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.DoubleValue.FromString,
    )
    replies = channel.unary_stream(
        "/tawasul.test.Probe/Replies",
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )
    before = {
        ("DownstreamTimeout", "OK"): _handled("DownstreamTimeout", "OK"),
        ("Replies", "INVALID_ARGUMENT"): _handled("Replies", "INVALID_ARGUMENT"),
        ("Replies", "INTERNAL"): _handled("Replies", "INTERNAL"),
    }
    for _ in range(2):
        await timeout(wrappers_pb2.StringValue(value="x"), timeout=5)
    for value in ("refuse", "crash"):
        with pytest.raises(grpc.aio.AioRpcError):
            async for _ in replies(wrappers_pb2.StringValue(value=value), timeout=5):
                pass

    after = {key: _handled(*key) for key in before}
    assert {key: after[key] - before[key] for key in before} == {
        ("DownstreamTimeout", "OK"): 2,
        ("Replies", "INVALID_ARGUMENT"): 1,
        ("Replies", "INTERNAL"): 1,
    }
