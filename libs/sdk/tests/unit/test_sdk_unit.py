"""The SDK's parts without a network: error details, tokens, chunking, backoff."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from tawasul_sdk import CHUNK_SIZE, Credentials, RetryPolicy, TawasulError, Token, rechunk
from tawasul_sdk.auth import jwt_expiry


def _jwt(claims: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJFUzI1NiJ9.{body}.c2ln"


def _error(code: grpc.StatusCode, *details: object) -> grpc.aio.AioRpcError:
    status = status_pb2.Status(code=code.value[0], message="refused")
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)  # type: ignore[arg-type]
        status.details.append(packed)
    trailers = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details="refused")


def test_field_violations_and_the_existing_request_are_read_from_the_status() -> None:
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="description", description="short"),
            error_details_pb2.BadRequest.FieldViolation(field="fields.x", description="needed"),
        ]
    )
    error = TawasulError.from_rpc_error(_error(grpc.StatusCode.INVALID_ARGUMENT, bad))
    assert error.code_name == "INVALID_ARGUMENT"
    assert error.fields == {"description": "short", "fields.x": "needed"}
    assert error.message == "refused"

    info = error_details_pb2.ResourceInfo(resource_name="TW123456789")
    exists = TawasulError.from_rpc_error(_error(grpc.StatusCode.ALREADY_EXISTS, info))
    assert (exists.existing, exists.fields) == ("TW123456789", {})


def test_messages_in_the_language_asked_for_are_read_where_the_service_gave_them() -> None:
    arabic = error_details_pb2.LocalizedMessage(locale="ar", message="مطلوب")
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field="fields.x", description="required", localized_message=arabic
            ),
            # None in Arabic for this one: its English description.
            error_details_pb2.BadRequest.FieldViolation(field="page_token", description="bad"),
        ]
    )
    error = TawasulError.from_rpc_error(_error(grpc.StatusCode.INVALID_ARGUMENT, bad))
    assert error.fields == {"fields.x": "مطلوب", "page_token": "bad"}
    closed = error_details_pb2.LocalizedMessage(locale="ar", message="الطلب مغلق")
    refused = TawasulError.from_rpc_error(_error(grpc.StatusCode.FAILED_PRECONDITION, closed))
    assert refused.message == "الطلب مغلق"


def test_a_server_past_its_limit_of_calls_is_unavailable_not_the_callers_quota() -> None:
    """gRPC's own RESOURCE_EXHAUSTED (the server's limit of calls in flight) carries no status
    of a Tawasul service: the service is busy, and the caller may retry; a service's own
    refusal (too many tracking attempts) stays the caller's quota."""
    busy = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="Concurrent RPC limit exceeded!",
    )
    error = TawasulError.from_rpc_error(busy, "en")
    assert error.code_name == "UNAVAILABLE"
    assert error.message == "the service is busy; try again shortly"
    arabic = TawasulError.from_rpc_error(busy)
    assert arabic.message == "الخدمة مشغولة؛ أعد المحاولة بعد قليل"
    quota = TawasulError.from_rpc_error(_error(grpc.StatusCode.RESOURCE_EXHAUSTED))
    assert (quota.code_name, quota.message) == ("RESOURCE_EXHAUSTED", "refused")


def test_a_message_past_grpc_s_size_limit_is_not_a_busy_server() -> None:
    """gRPC answers a message past a size limit with RESOURCE_EXHAUSTED and no service's
    status too: that call may well have run (a reply too large), so it is reported as it is."""
    too_large = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="Received message larger than max (5242885 vs. 4194304)",
    )
    error = TawasulError.from_rpc_error(too_large, "en")
    assert (error.code_name, error.message, error.from_service) == (
        "RESOURCE_EXHAUSTED",
        "the call or its answer is larger than the service takes",
        False,
    )
    assert error.detail == "Received message larger than max (5242885 vs. 4194304)"


@pytest.mark.parametrize(
    ("code", "detail", "english", "arabic"),
    [
        (
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.0.3.7:50051: "
            "Failed to connect to remote host: connection refused",
            "the service is unavailable; try again shortly",
            "الخدمة غير متاحة؛ أعد المحاولة بعد قليل",
        ),
        (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "Deadline Exceeded",
            "the service did not answer in time",
            "لم تُجب الخدمة في الوقت المحدد",
        ),
        (
            grpc.StatusCode.UNKNOWN,
            "Unexpected <class 'KeyError'>: 'intake-db-0.intake:5432'",
            "the service could not answer the call",
            "تعذّر على الخدمة إجابة الطلب",
        ),
    ],
)
def test_grpc_s_own_text_is_kept_for_logs_and_the_caller_told_in_its_language(
    code: grpc.StatusCode, detail: str, english: str, arabic: str
) -> None:
    """A call no service answered (no status of one came back) ends with gRPC's text, which
    names addresses and internals and is in English only: the caller gets the SDK's."""
    ended = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=detail)
    error = TawasulError.from_rpc_error(ended, "ar")
    assert (error.code, error.message, error.detail, error.from_service) == (
        code,
        arabic,
        detail,
        False,
    )
    assert TawasulError.from_rpc_error(ended, "en").message == english
    # Arabic is the default, as the services' (SPEC §2): one refusal is told in one language.
    assert TawasulError.from_rpc_error(ended).message == arabic
    assert TawasulError.from_rpc_error(ended, "fr").message == arabic
    # A service's own refusal is the service's, in its words.
    refused = TawasulError.from_rpc_error(_error(code))
    assert (refused.message, refused.detail, refused.from_service) == ("refused", "", True)


def test_an_error_without_details_or_with_garbage_has_none() -> None:
    plain = grpc.aio.AioRpcError(
        grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(), details="no"
    )
    assert TawasulError.from_rpc_error(plain).fields == {}
    garbage = grpc.aio.AioRpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(("grpc-status-details-bin", b"\xff\xff\xff")),
    )
    assert TawasulError.from_rpc_error(garbage).fields == {}


def test_expiry_is_read_from_a_jwt_and_unknown_otherwise() -> None:
    assert jwt_expiry(_jwt({"exp": 1234})) == 1234.0
    assert jwt_expiry("opaque-token") is None
    assert jwt_expiry("a.!!!.c") is None
    assert Token.of(_jwt({"sub": "x"})).expires_at is None


async def test_a_provider_is_asked_again_near_expiry_and_after_invalidate() -> None:
    now = [1000.0]
    asked: list[int] = []

    async def provider() -> str:
        asked.append(1)
        return _jwt({"exp": now[0] + 300})

    credentials = Credentials(provider, refresh_margin=60, clock=lambda: now[0])
    first = await credentials.token()
    assert await credentials.token() == first
    assert len(asked) == 1
    now[0] += 250  # within a minute of expiry
    await credentials.token()
    assert len(asked) == 2
    credentials.invalidate()
    await credentials.token()
    assert len(asked) == 3


async def test_only_the_refused_token_is_forgotten() -> None:
    given = iter(["t1", "t2"])

    async def provider() -> str:
        return next(given)

    credentials = Credentials(provider)
    assert await credentials.token() == "t1"
    credentials.invalidate("t1")
    assert await credentials.token() == "t2"
    credentials.invalidate("t1")  # a call sent with t1 before t2 was given
    assert await credentials.token() == "t2"


async def test_a_short_lived_token_is_used_for_half_its_life_not_asked_for_at_every_call() -> None:
    """The margin only brings the next token forward: a token given with less than the margin
    left (60-second tokens; a provider's cached one in its last minute) is used still, and
    asked for again halfway through what was left of it."""
    now = [1000.0]
    asked: list[float] = []
    lives = iter([60, 60, 20])

    async def provider() -> Token:
        asked.append(now[0])
        return Token(f"t{len(asked)}", expires_at=now[0] + next(lives))

    credentials = Credentials(provider, refresh_margin=60, clock=lambda: now[0])
    assert [await credentials.token() for _ in range(3)] == ["t1"] * 3
    now[0] += 29
    assert await credentials.token() == "t1"
    now[0] += 2
    assert await credentials.token() == "t2"
    now[0] += 31
    assert [await credentials.token() for _ in range(3)] == ["t3"] * 3
    now[0] += 9
    assert await credentials.token() == "t3"
    assert asked == [1000.0, 1031.0, 1062.0]


async def test_calls_waiting_for_a_token_take_the_one_given_meanwhile() -> None:
    """Calls that wait while the provider is asked share its answer, even a token in its last
    second, rather than each asking the provider in turn (and running out of time)."""
    now = [1000.0]
    asked = 0
    answer = asyncio.Event()
    life = [0.0]

    async def provider() -> Token:
        nonlocal asked
        asked += 1
        await answer.wait()
        return Token(f"t{asked}", expires_at=now[0] + life[0])

    credentials = Credentials(provider, refresh_margin=60, clock=lambda: now[0])
    for expected, lifetime in (("t1", 60.0), ("t2", 0.0)):
        life[0] = lifetime
        answer.clear()
        calls = [asyncio.create_task(credentials.token()) for _ in range(20)]
        await asyncio.sleep(0)  # every call is waiting
        answer.set()
        async with asyncio.timeout(5):
            assert await asyncio.gather(*calls) == [expected] * 20
        now[0] += 31
    assert asked == 2


async def test_a_fixed_token_is_given_as_is() -> None:
    credentials = Credentials("fixed")
    assert await credentials.token() == "fixed"
    credentials.invalidate()
    assert await credentials.token() == "fixed"
    assert not credentials.refreshable


async def test_rechunk_gives_full_chunks_and_a_short_last_one() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for size in (10, CHUNK_SIZE * 2 + 5, 1, 0, 7):
            yield b"x" * size

    sizes = [len(chunk) async for chunk in rechunk(pieces())]
    assert sizes == [CHUNK_SIZE, CHUNK_SIZE, 10 + 5 + 1 + 7]


def test_backoff_is_bounded_and_capped() -> None:
    policy = RetryPolicy(attempts=5, initial_backoff=0.5, max_backoff=1.0)
    delays = list(policy.delays())
    assert len(delays) == 4
    assert all(0 <= d <= 1.0 for d in delays)
    assert list(RetryPolicy(attempts=1).delays()) == []
