"""Intake's real server calling docs and notify through its real gRPC adapters.

Docs and notify are stand-ins here, but real in-process gRPC servers behind the platform's
interceptor, so what intake receives is exactly what a real service would answer: a status,
its details, and the deadline intake gave the call.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import tawasul_intake
from sqlalchemy import func, select
from tawasul.common.v1 import common_pb2
from tawasul.docs.v1 import docs_pb2
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul.notify.v1 import notify_pb2
from tawasul_devstack.identity import throwaway
from tawasul_intake import bootstrap
from tawasul_intake.adapters import tables
from tawasul_intake.adapters.docs import GrpcDocuments
from tawasul_intake.adapters.notify import GrpcCodeSender
from tawasul_intake.adapters.registry import DEV_REGISTRY, FileRegistry
from tawasul_intake.adapters.repository import IntakeUnitOfWork
from tawasul_intake.settings import IntakeSettings
from tawasul_platform import errors
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, GrpcServer, bearer
from tawasul_platform.identity import Principal, Role
from tawasul_platform.migrations import upgrade
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine, unguarded
from tawasul_platform.tls import open_channel

MIGRATIONS = Path(tawasul_intake.__file__).resolve().parent / "migrations"
IDENTITY = throwaway()
CITIZEN_ID = "1000000008"
CITIZEN = IDENTITY.token_for(Principal(CITIZEN_ID, Role.CITIZEN))
MOBILE = "0551234567"
Context = grpc.aio.ServicerContext[Any, Any]
# gRPC sends a timeout rounded up to a few digits, so a server may see a hair more than sent.
ROUNDING = 0.05


class Docs:
    """Answers GetDocument with `refusal` when set, else with a clean PDF; notes deadlines."""

    def __init__(self) -> None:
        self.refusal: errors.DomainError | None = None
        self.bug = False
        self.time_remaining: list[float | None] = []
        self.held: list[str] = []

    async def GetDocument(
        self, request: docs_pb2.GetDocumentRequest, context: Context
    ) -> docs_pb2.GetDocumentResponse:
        self.time_remaining.append(context.time_remaining())
        if request.hold:
            self.held.append(request.document_id)
        if self.refusal is not None:
            raise self.refusal
        if self.bug:
            raise RuntimeError("docs has a bug")
        return docs_pb2.GetDocumentResponse(
            document=docs_pb2.Document(
                document_id=request.document_id,
                owner_id=CITIZEN_ID,
                content_type="application/pdf",
                size_bytes=1000,
                state=docs_pb2.DOCUMENT_STATE_CLEAN,
            )
        )


class Notify:
    def __init__(self) -> None:
        self.refusal: errors.DomainError | None = None
        self.asked: list[str] = []

    async def SendOneTimeCode(
        self, request: notify_pb2.SendOneTimeCodeRequest, context: Context
    ) -> notify_pb2.SendOneTimeCodeResponse:
        self.asked.append(request.request_id)
        if self.refusal is not None:
            raise self.refusal
        return notify_pb2.SendOneTimeCodeResponse()


class World:
    def __init__(self, channel: grpc.aio.Channel, docs: Docs, notify: Notify, url: str) -> None:
        self.stub = intake_pb2_grpc.IntakeServiceStub(channel)
        self.docs = docs
        self.notify = notify
        self.engine = async_engine(url, pool_size=2)

    async def submit(
        self, document_ids: list[str], deadline: float = 5, key: str = ""
    ) -> intake_pb2.SubmitRequestResponse:
        return await self.stub.SubmitRequest(
            intake_pb2.SubmitRequestRequest(
                idempotency_key=key or str(uuid.uuid4()),
                sub_service_code="passports.issue-renewal-problem",
                description="The photo does not appear when renewing passport A1234567",
                contact=common_pb2.Contact(mobile=MOBILE),
                fields={
                    "national_id": CITIZEN_ID,
                    "request_type": "renewal",
                    "problem": "photo_not_shown",
                },
                document_ids=document_ids,
            ),
            timeout=deadline,
            metadata=bearer(CITIZEN),
        )

    async def stored(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(tables.requests)) or 0)


async def _serve(
    service: str, method: str, behaviour: Any, request: Any, response: Any
) -> GrpcServer:
    """A real server (the platform's, with its interceptor) answering one method."""
    handler = grpc.unary_unary_rpc_method_handler(
        behaviour, request.FromString, response.SerializeToString
    )

    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, {method: handler}),)
        )

    # Stand-ins for docs and notify: only their one method, not their rules.
    server = GrpcServer("127.0.0.1:0", unguarded(), register)
    await server.start()
    await server.serving(True)
    return server


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    docs, notify = Docs(), Notify()
    docs_server = await _serve(
        "tawasul.docs.v1.DocsService",
        "GetDocument",
        docs.GetDocument,
        docs_pb2.GetDocumentRequest,
        docs_pb2.GetDocumentResponse,
    )
    notify_server = await _serve(
        "tawasul.notify.v1.NotifyService",
        "SendOneTimeCode",
        notify.SendOneTimeCode,
        notify_pb2.SendOneTimeCodeRequest,
        notify_pb2.SendOneTimeCodeResponse,
    )
    settings = IntakeSettings(
        database_url=database_url,
        kafka_bootstrap="127.0.0.1:1",
        grpc_address="127.0.0.1:0",
        identity_issuers=IDENTITY.issuers(),
        docs_address=f"127.0.0.1:{docs_server.port}",
        notify_address=f"127.0.0.1:{notify_server.port}",
        registry_file=DEV_REGISTRY,
        tracking_code_secret="tracking-secret",
    )
    engine = async_engine(database_url, pool_size=4)
    database = Database(engine.sync_engine)
    docs_channel = open_channel(settings.docs_address, None)
    notify_channel = open_channel(settings.notify_address, None)
    service = bootstrap.servicer(
        settings,
        uow=lambda: IntakeUnitOfWork(database),
        documents=GrpcDocuments(docs_channel, deadline_seconds=settings.docs_deadline_seconds),
        registry=FileRegistry.from_file(DEV_REGISTRY),
        sender=GrpcCodeSender(notify_channel, deadline_seconds=settings.notify_deadline_seconds),
    )
    server = bootstrap.grpc_server(settings, service)
    await server.start()
    await server.serving(True)
    channel = open_channel(f"127.0.0.1:{server.port}", None)
    world = World(channel, docs, notify, database_url)
    yield world
    await channel.close()
    await server.stop(1)
    for closing in (docs_channel, notify_channel):
        await closing.close()
    for stopping in (docs_server, notify_server):
        await stopping.stop(1)
    await world.engine.dispose()
    await engine.dispose()


async def test_a_refusal_from_docs_reaches_the_caller_as_that_refusal(world: World) -> None:
    # The caller's own token, forwarded, expired on the way: theirs to renew.
    world.docs.refusal = errors.Unauthenticated("token expired")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.submit([str(uuid.uuid4())])
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.details() == "docs: token expired"
    assert await world.stored() == 0


@pytest.mark.parametrize(
    "refusal",
    [
        errors.PermissionDenied("only service review may call this"),
        errors.ResourceExhausted("intake is past its share of docs"),
    ],
)
async def test_docs_refusing_intake_itself_is_an_outage_to_the_caller(
    world: World, refusal: errors.DomainError
) -> None:
    # Docs answers a document that is not the caller's as not found; a permission or quota
    # refusal of GetDocument is about intake (its certificate, its rate), not the caller.
    key, documents = str(uuid.uuid4()), [str(uuid.uuid4())]
    first = await world.submit(documents, key=key)
    world.docs.refusal = refusal
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.submit([str(uuid.uuid4())])
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == "docs is unavailable"
    # As with docs down, a retry of a submission that went through gets its request.
    again = await world.submit(documents, key=key)
    assert again.request.request_number == first.request.request_number
    assert await world.stored() == 1


async def test_the_documents_of_a_submission_are_held_until_docs_attaches_them(
    world: World,
) -> None:
    # Docs attaches them when it reads the submitted event: until then, its sweep of
    # documents never attached must leave them, however old they are.
    documents = [str(uuid.uuid4()), str(uuid.uuid4())]
    await world.submit(documents)
    assert sorted(world.docs.held) == sorted(documents)


async def test_a_refused_submission_holds_none_of_its_documents(world: World) -> None:
    """Held, a document lives a full unattached lifetime more: a submission refused after
    docs described its documents held them all the same, so one sent again and again kept
    them past docs' 72 hours for good."""
    first = [str(uuid.uuid4())]
    await world.submit(first)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.submit([str(uuid.uuid4())])  # the same person and sub-service, still open
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert world.docs.held == first


async def test_a_document_docs_does_not_know_is_named_as_a_bad_field(world: World) -> None:
    world.docs.refusal = errors.NotFound("no such document")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.submit([str(uuid.uuid4())])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await world.stored() == 0


async def test_a_bug_in_docs_stays_a_bug(world: World) -> None:
    world.docs.bug = True
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.submit([str(uuid.uuid4())])
    assert caught.value.code() == grpc.StatusCode.INTERNAL


async def test_a_refusal_from_notify_does_not_tell_the_caller_the_details_matched(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    submitted = await world.submit([str(uuid.uuid4())])
    world.notify.refusal = errors.NotFound("no such recipient")
    answers = [
        await world.stub.StartTracking(
            intake_pb2.StartTrackingRequest(
                request_number=submitted.request.request_number, id_number=id_number, mobile=MOBILE
            ),
            timeout=5,
        )
        for id_number in (CITIZEN_ID, "1000000016")
    ]
    assert answers[0] == answers[1]
    for _ in range(100):
        if world.notify.asked and "not sent" in caplog.text:
            break
        await asyncio.sleep(0.02)
    assert world.notify.asked == [submitted.request.request_id]
    assert "notify answered NOT_FOUND" in caplog.text


async def test_the_callers_deadline_bounds_the_call_to_docs(world: World) -> None:
    first = await world.submit([str(uuid.uuid4())], deadline=60)
    # One open request per person and sub-service: make room for the second.
    await world.stub.CancelRequest(
        intake_pb2.CancelRequestRequest(
            request_number=first.request.request_number, reason="testing deadlines"
        ),
        timeout=5,
        metadata=bearer(CITIZEN),
    )
    await world.submit([str(uuid.uuid4())], deadline=2.5)
    # Each submission asks twice: to check its document, and to hold it before the commit.
    long, _, short, _ = world.docs.time_remaining
    # A patient caller: the adapter's own deadline applies.
    assert long is not None
    assert 3 < long <= DEFAULT_DEADLINE_SECONDS + ROUNDING
    # A hurried one: docs is given no more than the caller's remaining time.
    assert short is not None
    assert 0 < short <= 2.5 + ROUNDING


async def test_a_retried_submission_that_went_through_is_answered_while_docs_is_down(
    world: World,
) -> None:
    # The first answer was lost (the caller's deadline, a dropped connection): the caller
    # tries again with the same key, and docs is down meanwhile. The request exists; the
    # documents were checked when it was made.
    key, documents = str(uuid.uuid4()), [str(uuid.uuid4())]
    first = await world.submit(documents, key=key)
    world.docs.refusal = errors.Unavailable("docs is restarting")
    again = await world.submit(documents, key=key)
    assert again.request.request_number == first.request.request_number
    assert await world.stored() == 1
    # A new submission still needs docs.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.submit([str(uuid.uuid4())])
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
