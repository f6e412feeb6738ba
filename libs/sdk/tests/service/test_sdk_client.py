"""The SDK against in-process gRPC servers that stand in for intake and docs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.grpc import GrpcServer, ServerLimits
from tawasul_platform.testing import unguarded
from tawasul_sdk import (
    CHUNK_SIZE,
    TRACEPARENT,
    RetryPolicy,
    TawasulClient,
    TawasulError,
    Token,
)
from tawasul_sdk.channel import open_channel
from tawasul_sdk.client import LOCALES_CACHED, MAX_TOKEN_LENGTH

Context = grpc.aio.ServicerContext[Any, Any]


def _language(context: Context) -> str:
    return str(dict(context.invocation_metadata() or ()).get("accept-language", ""))


def _traceparent(context: Context) -> str:
    """The call's trace context as the services read it; "" when it has none."""
    return str(dict(context.invocation_metadata() or ()).get(TRACEPARENT, ""))


class FakeIntake(intake_pb2_grpc.IntakeServiceServicer):
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.tokens: list[str] = []
        self.traces: list[str] = []
        self.languages: list[str] = []
        self.unavailable = 0
        self.answers: list[str] = []
        self.answer_keys: list[str] = []
        self.catalog_calls = 0
        self.version = 2
        self.refuse_token = ""

    async def GetCatalog(
        self, request: intake_pb2.GetCatalogRequest, context: Context
    ) -> intake_pb2.GetCatalogResponse:
        self.catalog_calls += 1
        self.traces.append(_traceparent(context))
        return intake_pb2.GetCatalogResponse(version=self.version, locale=request.locale)

    async def SubmitRequest(
        self, request: intake_pb2.SubmitRequestRequest, context: Context
    ) -> intake_pb2.SubmitRequestResponse:
        self.keys.append(request.idempotency_key)
        self.traces.append(_traceparent(context))
        self.languages.append(_language(context))
        self.tokens.append(str(dict(context.invocation_metadata() or ()).get("authorization", "")))
        if self.tokens[-1] == f"Bearer {self.refuse_token}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "token expired")
        if self.unavailable:
            self.unavailable -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        if not request.description:
            status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="bad input")
            detail = any_pb2.Any()
            detail.Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field="description", description="describe the problem"
                        )
                    ]
                )
            )
            status.details.append(detail)
            await context.abort_with_status(rpc_status.to_status(status))
        return intake_pb2.SubmitRequestResponse(
            request=intake_pb2.Request(request_number="TW000000001")
        )

    async def RespondToInfoRequest(
        self, request: intake_pb2.RespondToInfoRequestRequest, context: Context
    ) -> intake_pb2.RespondToInfoRequestResponse:
        self.answers.append(request.message)
        self.answer_keys.append(request.idempotency_key)
        if self.unavailable:
            self.unavailable -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return intake_pb2.RespondToInfoRequestResponse(
            request=intake_pb2.Request(request_number=request.request_number)
        )

    async def FollowUp(
        self, request: intake_pb2.FollowUpRequest, context: Context
    ) -> intake_pb2.FollowUpResponse:
        self.unavailable += 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, "down")
        raise AssertionError


class FakeDocs(docs_pb2_grpc.DocsServiceServicer):
    def __init__(self) -> None:
        self.chunks: list[int] = []
        self.metadata: docs_pb2.DocumentMetadata | None = None
        self.traces: list[str] = []
        self.languages: list[str] = []
        self.tokens: list[str] = []
        self.refuse_token = ""
        self.looks = 0

    async def GetDocument(
        self, request: docs_pb2.GetDocumentRequest, context: Context
    ) -> docs_pb2.GetDocumentResponse:
        self.looks += 1
        state = (
            docs_pb2.DOCUMENT_STATE_CLEAN
            if self.looks >= 3
            else docs_pb2.DOCUMENT_STATE_QUARANTINED
        )
        return docs_pb2.GetDocumentResponse(
            document=docs_pb2.Document(document_id=request.document_id, state=state)
        )

    async def UploadDocument(
        self, request_iterator: AsyncIterator[docs_pb2.UploadDocumentRequest], context: Context
    ) -> docs_pb2.UploadDocumentResponse:
        self.traces.append(_traceparent(context))
        self.languages.append(_language(context))
        self.tokens.append(str(dict(context.invocation_metadata() or ()).get("authorization", "")))
        if self.tokens[-1] == f"Bearer {self.refuse_token}":
            # As the services' gate does, before the file is read.
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "token expired")
        async for part in request_iterator:
            if part.HasField("metadata"):
                self.metadata = part.metadata
            else:
                self.chunks.append(len(part.chunk))
        return docs_pb2.UploadDocumentResponse(
            document=docs_pb2.Document(document_id="d1", size_bytes=sum(self.chunks))
        )


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeIntake, FakeDocs, str]]:
    # Only the methods these tests call are implemented.
    intake, docs = FakeIntake(), FakeDocs()  # type: ignore[abstract]
    server = grpc.aio.server()
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(intake, server)
    docs_pb2_grpc.add_DocsServiceServicer_to_server(docs, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield intake, docs, f"127.0.0.1:{port}"
    await server.stop(None)


FAST = RetryPolicy(attempts=3, initial_backoff=0.01, max_backoff=0.02)


async def test_a_submission_retried_after_unavailable_keeps_its_key(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    intake, _, address = servers
    intake.unavailable = 2
    async with TawasulClient.connect(
        intake=address, docs=address, tls=None, token="t", retry=FAST
    ) as client:
        answer = await client.submit_request(
            intake_pb2.SubmitRequestRequest(sub_service_code="x", description="d")
        )
    assert answer.request.request_number == "TW000000001"
    assert len(intake.keys) == 3
    assert len(set(intake.keys)) == 1
    assert intake.keys[0]
    assert intake.tokens == ["Bearer t"] * 3


async def test_an_answer_is_sent_again_after_unavailable(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    """Intake answers an answer it already took under its key with the request, so the SDK
    sends it again as it does a submission: under one key it chose, whatever the reviewer did
    meanwhile; a key of the caller's own is kept."""
    intake, _, address = servers
    intake.unavailable = 2
    async with TawasulClient.connect(
        intake=address, docs=address, tls=None, token="t", retry=FAST
    ) as client:
        answer = await client.respond_to_info_request(
            intake_pb2.RespondToInfoRequestRequest(request_number="TW7", message="attached")
        )
    assert answer.request.request_number == "TW7"
    assert intake.answers == ["attached"] * 3
    (key,) = set(intake.answer_keys)
    assert uuid.UUID(key)
    intake.unavailable = 1
    async with TawasulClient.connect(
        intake=address, docs=address, tls=None, token="t", retry=FAST
    ) as client:
        await client.respond_to_info_request(
            intake_pb2.RespondToInfoRequestRequest(
                request_number="TW7", message="attached", idempotency_key="channel-1"
            )
        )
    assert intake.answer_keys[3:] == ["channel-1", "channel-1"]


async def test_retries_are_bounded_and_not_made_for_unsafe_calls(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    intake, _, address = servers
    intake.unavailable = 5
    async with TawasulClient.connect(
        intake=address, docs=address, tls=None, token="t", retry=FAST
    ) as client:
        with pytest.raises(TawasulError) as caught:
            await client.submit_request(intake_pb2.SubmitRequestRequest(description="d"))
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert len(intake.keys) == 3
        intake.unavailable = 0
        with pytest.raises(TawasulError):
            await client.follow_up(intake_pb2.FollowUpRequest(request_number="TW1"))
        assert intake.unavailable == 1  # called once


class SlowFollowUps(intake_pb2_grpc.IntakeServiceServicer):
    """Intake whose follow-ups wait for `go`; its server runs one call at a time."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.started = asyncio.Event()
        self.calls: list[str] = []

    async def FollowUp(
        self, request: intake_pb2.FollowUpRequest, context: Context
    ) -> intake_pb2.FollowUpResponse:
        self.calls.append(request.request_number)
        self.started.set()
        await self.go.wait()
        return intake_pb2.FollowUpResponse(
            request=intake_pb2.Request(request_number=request.request_number)
        )


async def test_a_call_the_server_was_too_busy_to_start_is_sent_again_whatever_it_is() -> None:
    """The server's refusal at its limit of calls in flight (RESOURCE_EXHAUSTED in gRPC's own
    words, without a service's status) means the call never ran: even one not safe to repeat,
    such as a follow-up, may go again; a service's own refusals are not retried (the test
    above). The services' server (GrpcServer) refuses those calls itself, in those words."""
    intake = SlowFollowUps()  # type: ignore[abstract]
    server = GrpcServer(
        "127.0.0.1:0",
        unguarded(),
        lambda s: intake_pb2_grpc.add_IntakeServiceServicer_to_server(intake, s),
        limits=ServerLimits(max_concurrent_rpcs=1),
    )
    address = f"127.0.0.1:{server.port}"
    await server.start()
    waits: list[float] = []

    async def free_then_wait(delay: float) -> None:
        # Refused while the first holds the server's one slot: the first ends meanwhile.
        waits.append(delay)
        intake.go.set()
        await asyncio.sleep(delay)

    try:
        async with TawasulClient.connect(
            intake=address, docs=address, tls=None, token="t", retry=FAST, sleep=free_then_wait
        ) as client:
            first = asyncio.ensure_future(
                client.follow_up(intake_pb2.FollowUpRequest(request_number="TW1"))
            )
            await intake.started.wait()
            second = client.follow_up(intake_pb2.FollowUpRequest(request_number="TW2"))
            answers = await asyncio.gather(first, second)
    finally:
        await server.stop(1)
    assert len(waits) == 1
    assert [a.request.request_number for a in answers] == ["TW1", "TW2"]
    assert intake.calls == ["TW1", "TW2"]


class LargeFollowUps(intake_pb2_grpc.IntakeServiceServicer):
    """Intake whose follow-up answer is past the client's receive limit (4 MiB)."""

    def __init__(self) -> None:
        self.follow_ups = 0
        self.submissions = 0

    async def FollowUp(
        self, request: intake_pb2.FollowUpRequest, context: Context
    ) -> intake_pb2.FollowUpResponse:
        self.follow_ups += 1
        return intake_pb2.FollowUpResponse(
            request=intake_pb2.Request(description="x" * (5 * 1024 * 1024))
        )

    async def SubmitRequest(
        self, request: intake_pb2.SubmitRequestRequest, context: Context
    ) -> intake_pb2.SubmitRequestResponse:
        self.submissions += 1
        return intake_pb2.SubmitRequestResponse()


async def test_a_message_past_a_size_limit_is_not_sent_again() -> None:
    """gRPC's RESOURCE_EXHAUSTED for a message past a size limit is not a busy server's: a
    reply too large comes from a call that ran (a follow-up made again would be made
    twice), and a request too large is refused every time."""
    intake = LargeFollowUps()  # type: ignore[abstract]
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)])
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(intake, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    waits: list[float] = []

    async def no_wait(delay: float) -> None:
        waits.append(delay)

    try:
        async with TawasulClient.connect(
            intake=address, docs=address, tls=None, token="t", retry=FAST, sleep=no_wait
        ) as client:
            with pytest.raises(TawasulError) as reply:
                await client.follow_up(intake_pb2.FollowUpRequest(request_number="TW1"))
            with pytest.raises(TawasulError) as request:
                await client.submit_request(
                    intake_pb2.SubmitRequestRequest(description="d" * (5 * 1024 * 1024))
                )
    finally:
        await server.stop(None)
    assert (intake.follow_ups, intake.submissions, waits) == (1, 0, [])
    assert reply.value.code_name == request.value.code_name == "RESOURCE_EXHAUSTED"
    assert "larger than max" in reply.value.detail
    assert "larger than max" in request.value.detail


class SlowlyUnavailable(intake_pb2_grpc.IntakeServiceServicer):
    """Intake whose reads wait on a dependency for `wait` seconds, then fail UNAVAILABLE."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self.time_left: list[float] = []

    async def GetRequest(
        self, request: intake_pb2.GetRequestRequest, context: Context
    ) -> intake_pb2.GetRequestResponse:
        self.time_left.append(context.time_remaining() or 0.0)
        await asyncio.sleep(self.wait)  # the dependency's time, as the service spends it
        await context.abort(grpc.StatusCode.UNAVAILABLE, "a dependency is unavailable")
        raise AssertionError


async def test_the_timeout_is_the_whole_calls_and_retries_get_what_is_left() -> None:
    intake = SlowlyUnavailable(wait=0.4)  # type: ignore[abstract]
    server = grpc.aio.server()
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(intake, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    retry = RetryPolicy(attempts=10, initial_backoff=0.001, max_backoff=0.001)
    loop = asyncio.get_running_loop()
    try:
        async with TawasulClient.connect(
            intake=address, docs=address, tls=None, token="t", timeout=1.0, retry=retry
        ) as client:
            started = loop.time()
            with pytest.raises(TawasulError) as caught:
                await client.get_request(intake_pb2.GetRequestRequest(request_number="TW1"))
            took = loop.time() - started
    finally:
        await server.stop(None)
    # About three attempts fit in the second (not ten of a second each), each given what
    # the ones before left; the call ends when its second is up.
    assert 2 <= len(intake.time_left) <= 3
    for n, left in enumerate(intake.time_left):
        assert left <= 1.0 - 0.4 * n + 0.05
    assert caught.value.code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
    assert took < 1.5


async def test_a_token_provider_that_does_not_answer_is_held_to_the_timeout(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    intake, docs, address = servers
    never = asyncio.Event()

    async def stuck() -> str:
        await never.wait()  # the identity provider does not answer
        return "t"

    async with TawasulClient.connect(
        intake=address,
        docs=address,
        tls=None,
        token=stuck,
        timeout=0.2,
        upload_timeout=0.2,
        locale="en",
    ) as client:
        with pytest.raises(TawasulError) as caught:
            await asyncio.wait_for(
                client.submit_request(intake_pb2.SubmitRequestRequest(description="d")), 10
            )
        with pytest.raises(TawasulError) as uploading:
            await asyncio.wait_for(
                client.upload_document(b"%PDF", filename="a.pdf", content_type="application/pdf"),
                10,
            )
    assert caught.value.code == uploading.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "token provider" in caught.value.message
    assert (intake.keys, docs.metadata) == ([], None)


async def test_field_violations_reach_the_caller(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    _, _, address = servers
    async with TawasulClient.connect(intake=address, docs=address, tls=None) as client:
        with pytest.raises(TawasulError) as caught:
            await client.submit_request(intake_pb2.SubmitRequestRequest(), token="per-call")
    assert caught.value.code_name == "INVALID_ARGUMENT"
    assert caught.value.fields == {"description": "describe the problem"}


async def test_a_refused_token_is_asked_for_again_once(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    intake, _, address = servers
    given = iter(["old", "new"])
    intake.refuse_token = "old"

    async def provider() -> str:
        return next(given)

    async with TawasulClient.connect(
        intake=address, docs=address, tls=None, token=provider
    ) as client:
        await client.submit_request(intake_pb2.SubmitRequestRequest(description="d"))
    assert intake.tokens == ["Bearer old", "Bearer new"]


async def test_calls_refused_one_old_token_share_the_one_new_token(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    """Twenty calls sent with a token the services stopped taking are each refused: the first
    refusal forgets it, and the others keep the new token the first one fetched rather than
    each throwing the last one away and asking the provider again."""
    intake, _, address = servers
    intake.refuse_token = "t1"
    asked = 0

    async def provider() -> str:
        nonlocal asked
        asked += 1
        return f"t{asked}"

    async with TawasulClient.connect(
        intake=address, docs=address, tls=None, token=provider
    ) as client:
        await asyncio.gather(
            *(
                client.submit_request(intake_pb2.SubmitRequestRequest(description="d"))
                for _ in range(20)
            )
        )
    assert asked == 2
    assert sorted(set(intake.tokens)) == ["Bearer t1", "Bearer t2"]
    assert intake.tokens.count("Bearer t2") == 20


async def test_concurrent_calls_share_a_provider_s_one_minute_token(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    """An identity provider issuing 60-second tokens, a minute being the refresh margin: the
    calls share one token, not each wait on the provider in turn until they run out of time."""
    intake, _, address = servers
    asked = 0

    async def provider() -> Token:
        nonlocal asked
        asked += 1
        await asyncio.sleep(0.05)  # the identity provider's answer takes its time
        return Token(f"t{asked}", expires_at=time.time() + 60)

    async with TawasulClient.connect(
        intake=address, docs=address, tls=None, token=provider, timeout=0.5
    ) as client:
        await asyncio.gather(
            *(
                client.submit_request(intake_pb2.SubmitRequestRequest(description="d"))
                for _ in range(20)
            )
        )
    assert (asked, set(intake.tokens)) == (1, {"Bearer t1"})


async def test_an_upload_refused_its_token_is_sent_again_when_it_can_be(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    """Bytes refused UNAUTHENTICATED are sent once more with a new token; an iterator's cannot
    be, but the refused token is forgotten: the next call has a new one."""
    _, docs, address = servers
    given = iter(["old", "new", "newer"])
    docs.refuse_token = "old"

    async def provider() -> str:
        return next(given)

    async def pieces() -> AsyncIterator[bytes]:
        yield b"%PDF-1.4"

    async with TawasulClient.connect(
        intake=address, docs=address, tls=None, token=provider
    ) as client:
        answer = await client.upload_document(
            b"%PDF-1.4", filename="a.pdf", content_type="application/pdf"
        )
        assert answer.document.size_bytes == len(b"%PDF-1.4")
        assert docs.tokens == ["Bearer old", "Bearer new"]

        docs.tokens.clear()
        docs.refuse_token = "new"
        with pytest.raises(TawasulError) as caught:
            await client.upload_document(pieces(), filename="a.pdf", content_type="application/pdf")
        assert caught.value.code_name == "UNAUTHENTICATED"
        await client.upload_document(pieces(), filename="a.pdf", content_type="application/pdf")
    assert docs.tokens == ["Bearer new", "Bearer newer"]


async def test_the_catalog_is_cached_per_locale_and_by_version(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    intake, _, address = servers
    now = [0.0]
    async with TawasulClient.connect(
        intake=address, docs=address, tls=None, catalog_seconds=60, clock=lambda: now[0]
    ) as client:
        arabic = await client.get_catalog("ar")
        assert await client.get_catalog("ar") is arabic
        english = await client.get_catalog("en")
        assert (english.locale, intake.catalog_calls) == ("en", 2)
        now[0] = 61  # looked at again: same version, same object
        assert await client.get_catalog("ar") is arabic
        assert intake.catalog_calls == 3
        intake.version = 3
        fresh = await client.get_catalog("ar", refresh=True)
        assert (fresh.version, client.catalog_version) == (3, 3)
        # The English copy was of the old version: asked again at once.
        assert (await client.get_catalog("en")).version == 3
        assert intake.catalog_calls == 5


async def test_a_channel_s_many_locales_keep_a_few_catalogs(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    intake, _, address = servers
    async with TawasulClient.connect(intake=address, docs=address, tls=None) as client:
        for n in range(LOCALES_CACHED + 5):
            await client.get_catalog(f"x{n}")
        # The oldest went first: the newest are still served without a call.
        calls = intake.catalog_calls
        newest = [f"x{n}" for n in range(5, LOCALES_CACHED + 5)]
        assert [(await client.get_catalog(locale)).locale for locale in newest] == newest
        assert intake.catalog_calls == calls
        await client.get_catalog("x0")
        assert intake.catalog_calls == calls + 1


@pytest.mark.parametrize("token", ["abc\tdef", "t\xe9st", "abc def", "a.b.c\r"])
async def test_a_token_no_header_can_carry_is_refused_before_the_call(
    servers: tuple[FakeIntake, FakeDocs, str], token: str
) -> None:
    intake, docs, address = servers
    async with TawasulClient.connect(intake=address, docs=address, tls=None) as client:
        with pytest.raises(TawasulError) as caught:
            await client.submit_request(
                intake_pb2.SubmitRequestRequest(description="d"), token=token
            )
        with pytest.raises(TawasulError) as uploading:
            await client.upload_document(
                b"%PDF-", filename="a.pdf", content_type="application/pdf", token=token
            )
    assert caught.value.code_name == uploading.value.code_name == "UNAUTHENTICATED"
    assert (intake.tokens, docs.metadata) == ([], None)


async def test_a_token_past_what_grpc_s_metadata_takes_is_refused_before_the_call(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    """A server refuses a call whose metadata is past 8 KiB as RESOURCE_EXHAUSTED, which
    reads as the caller's quota: the SDK refuses the token as such instead."""
    intake, docs, address = servers
    token = "a" * (MAX_TOKEN_LENGTH + 1)
    async with TawasulClient.connect(intake=address, docs=address, tls=None, locale="en") as client:
        with pytest.raises(TawasulError) as caught:
            await client.submit_request(
                intake_pb2.SubmitRequestRequest(description="d"), token=token
            )
        with pytest.raises(TawasulError) as uploading:
            await client.upload_document(
                b"%PDF-", filename="a.pdf", content_type="application/pdf", token=token
            )
        assert caught.value.code_name == uploading.value.code_name == "UNAUTHENTICATED"
        assert caught.value.message == f"the token is longer than {MAX_TOKEN_LENGTH} characters"
        assert (intake.tokens, docs.metadata) == ([], None)
        # The longest token taken gets through.
        await client.submit_request(
            intake_pb2.SubmitRequestRequest(description="d"), token=token[1:]
        )
    assert intake.tokens == [f"Bearer {token[1:]}"]


async def test_the_sdk_s_own_refusals_come_in_the_language_asked_for(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    intake, _, address = servers
    never = asyncio.Event()

    async def stuck() -> str:
        await never.wait()
        return "t"

    async with TawasulClient.connect(
        intake=address, docs=address, tls=None, token=stuck, timeout=0.2, locale="ar"
    ) as client:
        refusals = []
        for token in ("abc def", "a" * (MAX_TOKEN_LENGTH + 1), None):
            with pytest.raises(TawasulError) as caught:
                await client.submit_request(
                    intake_pb2.SubmitRequestRequest(description="d"), token=token
                )
            refusals.append((caught.value.code_name, caught.value.message))
    assert refusals == [
        ("UNAUTHENTICATED", "الرمز ليس رمز Bearer: أحرف لاتينية وأرقام و - . _ ~ + / = فقط"),
        ("UNAUTHENTICATED", f"الرمز أطول من {MAX_TOKEN_LENGTH} حرفًا"),
        ("DEADLINE_EXCEEDED", "لم يُعطِ مزوّد الرمز رمزًا خلال مهلة الطلب"),
    ]
    assert intake.keys == []


class HangingCatalog(intake_pb2_grpc.IntakeServiceServicer):
    """Intake whose catalog does not come until `answer` is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.answer = asyncio.Event()

    async def GetCatalog(
        self, request: intake_pb2.GetCatalogRequest, context: Context
    ) -> intake_pb2.GetCatalogResponse:
        self.calls += 1
        await self.answer.wait()
        return intake_pb2.GetCatalogResponse(version=2, locale=request.locale)


async def test_calls_for_the_catalog_while_it_is_fetched_share_that_fetch() -> None:
    """Intake not answering, the k-th of k calls at once must not wait k timeouts for each
    before it to fetch in turn: they all get the one fetch's answer or error in their time."""
    intake = HangingCatalog()  # type: ignore[abstract]
    server = grpc.aio.server()
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(intake, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    loop = asyncio.get_running_loop()

    async def timed(client: TawasulClient) -> tuple[str, float]:
        started = loop.time()
        try:
            answer = (await client.get_catalog("ar")).locale
        except TawasulError as exc:
            answer = exc.code_name
        return answer, loop.time() - started

    try:
        async with TawasulClient.connect(
            intake=address, docs=address, tls=None, timeout=0.5, retry=FAST
        ) as client:
            took = await asyncio.gather(*(timed(client) for _ in range(6)))
            assert {answer for answer, _ in took} == {"DEADLINE_EXCEEDED"}
            assert max(seconds for _, seconds in took) < 0.9, took
            assert intake.calls == 1
            # The failed fetch is not kept: the next call asks again, and the one of a
            # caller who gave up goes on for the others. (gRPC ends the fetch at its
            # deadline a moment after the callers' own: it is let end first.)
            await asyncio.sleep(0.2)
            intake.answer.set()
            first = asyncio.ensure_future(client.get_catalog("ar"))
            others = asyncio.gather(*(client.get_catalog("ar") for _ in range(3)))
            await asyncio.sleep(0)
            first.cancel()
            assert [answer.locale for answer in await others] == ["ar"] * 3
            assert intake.calls == 2
    finally:
        await server.stop(None)


async def test_uploads_go_in_full_chunks_from_bytes_or_an_iterator(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    _, docs, address = servers
    data = b"%PDF" + b"x" * (CHUNK_SIZE * 2 + 100)

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    async with TawasulClient.connect(intake=address, docs=address, tls=None, token="t") as client:
        answer = await client.upload_document(
            data, filename="a.pdf", content_type="application/pdf", document_kind="photo"
        )
        assert answer.document.size_bytes == len(data)
        assert docs.chunks == [CHUNK_SIZE, CHUNK_SIZE, len(data) - 2 * CHUNK_SIZE]
        assert docs.metadata is not None
        assert (docs.metadata.filename, docs.metadata.document_kind) == ("a.pdf", "photo")
        assert docs.metadata.size_bytes == len(data)  # bytes: their size is declared
        docs.chunks.clear()
        await client.upload_document(pieces(), filename="b.pdf", content_type="application/pdf")
        assert docs.chunks == [CHUNK_SIZE, CHUNK_SIZE, len(data) - 2 * CHUNK_SIZE]
        assert docs.metadata.size_bytes == 0  # an iterator's is unknown
        await client.upload_document(
            pieces(), filename="c.pdf", content_type="application/pdf", size_bytes=len(data)
        )
        assert docs.metadata.size_bytes == len(data)


async def test_an_error_of_the_data_source_is_raised_as_it_is(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    _, _, address = servers

    class TooLarge(Exception):
        pass

    async def pieces() -> AsyncIterator[bytes]:
        yield b"x" * 10
        raise TooLarge

    async def gives_up() -> AsyncIterator[bytes]:
        yield b"x" * 10
        raise TimeoutError("the adapter's own read timeout")

    async with TawasulClient.connect(intake=address, docs=address, tls=None, token="t") as client:
        with pytest.raises(TooLarge):
            await client.upload_document(pieces(), filename="a", content_type="application/pdf")
        # Not the upload's timeout, which has not run out: the source's, as it is.
        with pytest.raises(TimeoutError, match="the adapter's own read timeout"):
            await client.upload_document(gives_up(), filename="a", content_type="application/pdf")


async def test_a_source_that_stops_giving_bytes_ends_the_upload_at_its_timeout(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    """upload_timeout is the whole upload's: an HTTP body that stops coming, its client still
    connected, must not hold the upload (and the adapter's handler) past it."""
    _, _, address = servers
    never = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b"%PDF-1.4\n"
        await never.wait()  # the client sends nothing more
        yield b"never"

    async with TawasulClient.connect(
        intake=address, docs=address, tls=None, token="t", upload_timeout=0.2, locale="ar"
    ) as client:
        async with asyncio.timeout(5):
            with pytest.raises(TawasulError) as caught:
                await client.upload_document(
                    stalls(), filename="a.pdf", content_type="application/pdf"
                )
    assert (caught.value.code_name, caught.value.message) == (
        "DEADLINE_EXCEEDED",
        "انتهت مهلة الطلب",  # the SDK's own "the call's timeout ran out"
    )


class RefusingDocs(docs_pb2_grpc.DocsServiceServicer):
    """Docs refusing an upload at its metadata, or once past its size limit, as docs does."""

    async def UploadDocument(
        self, request_iterator: AsyncIterator[docs_pb2.UploadDocumentRequest], context: Context
    ) -> docs_pb2.UploadDocumentResponse:
        first = await anext(aiter(request_iterator))
        if first.metadata.sub_service_code == "nope":
            raise InvalidArgument({"metadata.sub_service_code": "not a sub-service"})
        size = 0
        async for part in request_iterator:
            size += len(part.chunk)
            if size > 10 * 1024 * 1024:
                raise InvalidArgument({"size": "the file exceeds the limit"})
        return docs_pb2.UploadDocumentResponse()


async def test_a_large_upload_refused_early_gets_docs_refusal_with_its_fields() -> None:
    """Behind the services' own server (the platform's, which reads what a refused caller
    still sends before answering), a 24 MiB upload refused at its metadata or past the
    limit gets docs' INVALID_ARGUMENT and its field, not gRPC's INTERNAL."""
    docs = RefusingDocs()  # type: ignore[abstract]
    server = GrpcServer(
        "127.0.0.1:0",
        unguarded(),
        lambda s: docs_pb2_grpc.add_DocsServiceServicer_to_server(docs, s),
        max_message_bytes=CHUNK_SIZE + 16 * 1024,
    )
    await server.start()
    data = b"%PDF" + b"\x00" * (24 * 1024 * 1024)
    try:
        address = f"127.0.0.1:{server.port}"
        async with TawasulClient.connect(
            intake=address, docs=address, tls=None, token="t"
        ) as client:
            for code, field in (("nope", "metadata.sub_service_code"), ("", "size")):
                with pytest.raises(TawasulError) as caught:
                    await client.upload_document(
                        data,
                        filename="a.pdf",
                        content_type="application/pdf",
                        sub_service_code=code,
                    )
                assert caught.value.code_name == "INVALID_ARGUMENT"
                assert list(caught.value.fields) == [field]
    finally:
        await server.stop(1)


async def test_scanned_waits_until_the_scanner_has_decided(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    _, docs, address = servers
    async with TawasulClient.connect(intake=address, docs=address, tls=None, token="t") as client:
        document = await client.scanned("d1", every=0.01)
        assert (document.state, docs.looks) == (docs_pb2.DOCUMENT_STATE_CLEAN, 3)
        docs.looks = -100
        with pytest.raises(TimeoutError):
            await client.scanned("d1", within=0.05, every=0.01)


async def test_every_call_carries_the_channels_trace_context_when_given(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    intake, docs, address = servers
    current: list[str | None] = ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]
    intake.unavailable = 1
    async with TawasulClient.connect(
        intake=address,
        docs=address,
        tls=None,
        token="t",
        retry=FAST,
        traceparent=lambda: current[0],
    ) as client:
        await client.submit_request(intake_pb2.SubmitRequestRequest(description="d"))
        await client.get_catalog("en")  # no sign-in: the trace context all the same
        current[0] = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
        await client.upload_document(b"%PDF", filename="a.pdf", content_type="application/pdf")
        current[0] = None  # outside any span of the channel
        await client.get_catalog("ar")
    first = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert intake.traces == [first, first, first, ""]  # the retry too
    assert docs.traces == ["00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"]


async def test_every_call_asks_for_the_language_of_the_person_it_is_for(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    intake, docs, address = servers
    current: list[str | None] = ["ar"]
    async with TawasulClient.connect(
        intake=address, docs=address, tls=None, token="t", locale=lambda: current[0]
    ) as client:
        await client.submit_request(intake_pb2.SubmitRequestRequest(description="d"))
        current[0] = "en"
        await client.upload_document(b"%PDF", filename="a.pdf", content_type="application/pdf")
        await client.submit_request(intake_pb2.SubmitRequestRequest(description="d"))
        current[0] = None
        await client.submit_request(intake_pb2.SubmitRequestRequest(description="d"))
    async with TawasulClient.connect(
        intake=address, docs=address, tls=None, token="t", locale="ar"
    ) as client:
        await client.submit_request(intake_pb2.SubmitRequestRequest(description="d"))
    assert (intake.languages, docs.languages) == (["ar", "en", "", "ar"], ["en"])


async def test_without_a_trace_source_no_trace_context_is_sent(
    servers: tuple[FakeIntake, FakeDocs, str],
) -> None:
    intake, docs, address = servers
    async with TawasulClient.connect(intake=address, docs=address, tls=None, token="t") as client:
        await client.submit_request(intake_pb2.SubmitRequestRequest(description="d"))
        await client.upload_document(b"%PDF", filename="a.pdf", content_type="application/pdf")
    assert (intake.traces, docs.traces) == ([""], [""])


async def test_calls_go_round_every_replica_the_target_names() -> None:
    """A service's name resolves to each of its replicas (a headless Service): the SDK's
    channel sends its calls round them rather than all to the first."""
    replicas = [FakeIntake(), FakeIntake()]  # type: ignore[abstract]
    servers, port = [], 0
    for host, intake in zip(("127.0.0.1", "127.0.0.2"), replicas, strict=True):
        server = grpc.aio.server()
        intake_pb2_grpc.add_IntakeServiceServicer_to_server(intake, server)
        port = server.add_insecure_port(f"{host}:{port}")
        await server.start()
        servers.append(server)
    try:
        async with open_channel(f"ipv4:127.0.0.1:{port},127.0.0.2:{port}", None) as channel:
            stub = intake_pb2_grpc.IntakeServiceStub(channel)
            ask = intake_pb2.GetCatalogRequest(locale="ar")

            async def both_answer() -> None:
                # The first ready replica answers at once; the other once it connects.
                while not all(r.catalog_calls for r in replicas):
                    await stub.GetCatalog(ask, timeout=5)

            await asyncio.wait_for(both_answer(), 10)
            for r in replicas:
                r.catalog_calls = 0
            for _ in range(40):
                await stub.GetCatalog(ask, timeout=5)
        assert [r.catalog_calls for r in replicas] == [20, 20]
    finally:
        for server in servers:
            await server.stop(None)
