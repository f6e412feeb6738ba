"""The gateway's app, as bootstrap builds it, over HTTP (httpx's ASGI transport) against
in-process gRPC servers standing in for intake and docs; its spans in memory."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import prometheus_client
import pytest
from fastapi import FastAPI
from google.protobuf import message_factory
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul_devstack.identity import DevIdentity
from tawasul_gateway import bootstrap
from tawasul_gateway.entrypoints import http as gateway_http
from tawasul_gateway.entrypoints import language
from tawasul_gateway.settings import GatewaySettings
from tawasul_platform import errors, tracing
from tawasul_platform.grpc import caller_locale, to_status
from tawasul_platform.i18n import Bilingual
from tawasul_platform.identity import Role
from tawasul_platform.logs import formatter
from tawasul_platform.testing import recorded_spans
from tawasul_sdk import TRACEPARENT, RetryPolicy, TawasulClient
from tawasul_sdk.client import CHUNK_SIZE

Context = grpc.aio.ServicerContext[Any, Any]
REGISTRY = (
    Path(__file__).resolve().parents[3] / "intake/src/tawasul_intake/adapters/registry.dev.json"
)
# The establishment 7000000013 sponsors these two; 2023456789 works for 7000000005.
OWN_WORKERS = ("2034567897", "2056789015")


def _token(context: Context) -> str:
    return str(dict(context.invocation_metadata() or ()).get("authorization", ""))


def _forged(context: Context) -> bool:
    """An unsigned token (alg none): intake and docs verify signatures; here, this stands in."""
    return _token(context).endswith(".")


def _traceparent(context: Context) -> str:
    return str(dict(context.invocation_metadata() or ()).get(TRACEPARENT, ""))


@dataclass
class FakeIntake(intake_pb2_grpc.IntakeServiceServicer):
    tokens: list[str] = field(default_factory=list)
    by_key: dict[str, str] = field(default_factory=dict)
    # When the request under each key was filed (seconds since the epoch).
    filed_at: dict[str, float] = field(default_factory=dict)
    submissions: list[intake_pb2.SubmitRequestRequest] = field(default_factory=list)
    # The trace context each SubmitRequest and GetRequest came with.
    traces: list[str] = field(default_factory=list)
    refuse_all: bool = False

    async def _refuse(self, context: Context, error: errors.DomainError) -> None:
        await context.abort_with_status(to_status(error, caller_locale(context)))

    async def GetCatalog(
        self, request: intake_pb2.GetCatalogRequest, context: Context
    ) -> intake_pb2.GetCatalogResponse:
        return intake_pb2.GetCatalogResponse(
            version=2,
            locale=request.locale,
            departments=[intake_pb2.Department(code="passports", name="Passports")],
        )

    async def SubmitRequest(
        self, request: intake_pb2.SubmitRequestRequest, context: Context
    ) -> intake_pb2.SubmitRequestResponse:
        self.tokens.append(_token(context))
        self.traces.append(_traceparent(context))
        self.submissions.append(request)
        if not _token(context) or self.refuse_all or _forged(context):
            await self._refuse(context, errors.Unauthenticated("sign in"))
        if len(request.description) < 20:
            await self._refuse(
                context,
                errors.InvalidArgument(
                    {"description": Bilingual("describe it precisely", "صِف المشكلة بدقة")}
                ),
            )
        if request.subject_id and request.subject_id not in OWN_WORKERS:
            await self._refuse(context, errors.PermissionDenied("not one of your workers"))
        if (
            request.cites_request_number
            and request.cites_request_number not in self.by_key.values()
        ):
            await self._refuse(
                context,
                errors.InvalidArgument(
                    {
                        "cites_request_number": Bilingual(
                            "not a rejected request of this account", "ليس طلبًا مرفوضًا لهذا الحساب"
                        )
                    }
                ),
            )
        if request.contact.mobile == NOT_A_MOBILE:
            problems = {"contact.mobile": "not a Saudi mobile number"}
            problems |= {f"fields.{name}": "not on record" for name in request.fields}
            await self._refuse(context, errors.InvalidArgument(problems))
        replayed = request.idempotency_key in self.by_key
        number = self.by_key.setdefault(request.idempotency_key, f"TW{len(self.by_key) + 1:09d}")
        filed_at = self.filed_at.setdefault(request.idempotency_key, time.time())
        return intake_pb2.SubmitRequestResponse(
            request=intake_pb2.Request(
                request_number=number,
                submitted_at=Timestamp(seconds=int(filed_at)),
                description=request.description,
                document_ids=request.document_ids,
            ),
            replayed=replayed,
        )

    async def GetRequest(
        self, request: intake_pb2.GetRequestRequest, context: Context
    ) -> intake_pb2.GetRequestResponse:
        self.traces.append(_traceparent(context))
        if request.request_number not in self.by_key.values():
            await self._refuse(context, errors.NotFound("no such request of yours"))
        return intake_pb2.GetRequestResponse(
            request=intake_pb2.Request(request_number=request.request_number)
        )

    async def ListMyRequests(
        self, request: intake_pb2.ListMyRequestsRequest, context: Context
    ) -> intake_pb2.ListMyRequestsResponse:
        self.tokens.append(_token(context))
        if _forged(context):
            await self._refuse(context, errors.Unauthenticated("not a token we trust"))
        return intake_pb2.ListMyRequestsResponse(
            requests=[intake_pb2.Request(request_number=n) for n in self.by_key.values()],
            next_page_token=f"after-{request.page_size}-{request.page_token}",
        )

    async def CancelRequest(
        self, request: intake_pb2.CancelRequestRequest, context: Context
    ) -> intake_pb2.CancelRequestResponse:
        await self._refuse(context, errors.FailedPrecondition(f"{request.reason}: decided"))
        raise AssertionError

    async def StartTracking(
        self, request: intake_pb2.StartTrackingRequest, context: Context
    ) -> intake_pb2.StartTrackingResponse:
        self.tokens.append(_token(context))
        return intake_pb2.StartTrackingResponse(code_valid_seconds=300)


@dataclass
class FakeDocs(docs_pb2_grpc.DocsServiceServicer):
    received: list[int] = field(default_factory=list)
    metadata: list[docs_pb2.DocumentMetadata] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)
    # Cleared, an upload waits after its last chunk, as docs does while it stores and scans,
    # until the gateway cancels the call.
    finish: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.finish.set()

    async def UploadDocument(
        self, request_iterator: AsyncIterator[docs_pb2.UploadDocumentRequest], context: Context
    ) -> docs_pb2.UploadDocumentResponse:
        self.traces.append(_traceparent(context))
        size = 0
        try:
            async for part in request_iterator:
                if part.HasField("metadata"):
                    self.metadata.append(part.metadata)
                else:
                    assert len(part.chunk) <= CHUNK_SIZE
                    size += len(part.chunk)
            await self.finish.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        self.received.append(size)
        return docs_pb2.UploadDocumentResponse(
            document=docs_pb2.Document(
                document_id="doc-1",
                size_bytes=size,
                content_type=self.metadata[-1].declared_content_type,
                state=docs_pb2.DOCUMENT_STATE_QUARANTINED,
            )
        )


@dataclass
class Backends:
    intake: FakeIntake
    docs: FakeDocs
    identity: DevIdentity
    http: httpx.AsyncClient
    app: FastAPI

    def token(self, subject: str, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.identity.token(subject, role)}"}


def _settings(tmp_path: Path, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "dev_sign_in": True,
        "dev_identity_dir": tmp_path / "identity",
        "dev_registry_file": REGISTRY,
        "web_dir": tmp_path / "web",
        "max_body_bytes": 4096,
        "max_upload_bytes": 200_000,
        "bulk_max_rows": 5,
    }
    return GatewaySettings(**(values | overrides))


async def _serve(
    tmp_path: Path, *, bootstrap_client: bool = False, **overrides: Any
) -> AsyncIterator[Backends]:
    """The app on the fakes, with a client that does not retry; with bootstrap's own client
    when `bootstrap_client`."""
    # Only the methods these tests call are implemented.
    intake, docs = FakeIntake(), FakeDocs()  # type: ignore[abstract]
    server = grpc.aio.server()
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(intake, server)
    docs_pb2_grpc.add_DocsServiceServicer_to_server(docs, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    identity = DevIdentity(tmp_path / "identity")
    settings = _settings(
        tmp_path, **({"intake_address": address, "docs_address": address} | overrides)
    )
    app: FastAPI = bootstrap.app(
        settings,
        client_factory=(
            bootstrap.client_factory(settings)
            if bootstrap_client
            else lambda: TawasulClient.connect(
                intake=address,
                docs=address,
                tls=None,
                retry=RetryPolicy(attempts=1),
                locale=language.current,
            )
        ),
        dev=bootstrap.dev_sign_in(settings),
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gateway") as http,
        ):
            yield Backends(intake, docs, identity, http, app)
    finally:
        await server.stop(None)


@pytest.fixture
async def backends(tmp_path: Path) -> AsyncIterator[Backends]:
    async for served in _serve(tmp_path):
        yield served


CITIZEN = "1000000008"
GOOD = {
    "sub_service_code": "passports.issue-renewal-problem",
    "description": "The photo does not appear when renewing my passport",
    "document_ids": ["doc-1"],
    "contact": {"mobile": "0551234567", "locale": "en"},
    "fields": {"national_id": CITIZEN},
}


async def test_the_catalog_in_proto3_json(backends: Backends) -> None:
    answer = await backends.http.get("/api/v1/catalog", params={"locale": "en"})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["version"], body["locale"]) == (2, "en")
    assert body["departments"][0]["code"] == "passports"
    assert body["departments"][0]["sub_services"] == []  # defaults are given, snake_case


async def test_a_submission_passes_the_token_and_answers_201(backends: Backends) -> None:
    headers = backends.token(CITIZEN, Role.CITIZEN)
    answer = await backends.http.post("/api/v1/requests", json=GOOD, headers=headers)
    assert answer.status_code == 201, answer.text
    number = answer.json()["request"]["request_number"]
    assert answer.headers["location"] == f"/api/v1/requests/{number}"
    assert backends.intake.tokens[-1] == headers["Authorization"]
    sent = backends.intake.submissions[-1]
    assert (sent.contact.mobile, sent.fields["national_id"]) == ("0551234567", CITIZEN)
    assert sent.idempotency_key  # the SDK gives one when the channel did not

    got = await backends.http.get(f"/api/v1/requests/{number}", headers=headers)
    assert got.json()["request"]["request_number"] == number
    listed = await backends.http.get(
        "/api/v1/requests", params={"page_size": 5, "page_token": "p"}, headers=headers
    )
    assert listed.json()["next_page_token"] == "after-5-p"
    missing = await backends.http.get("/api/v1/requests/TW999", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"


async def test_an_upload_sent_as_a_form_is_refused_as_such(backends: Backends) -> None:
    headers = backends.token(CITIZEN, Role.CITIZEN)
    form = await backends.http.post(
        "/api/v1/documents", headers=headers, files={"file": ("scan.pdf", b"%PDF-1.7 ...")}
    )
    assert (form.status_code, form.json()["error"]["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    assert backends.docs.metadata == []


async def test_a_wrong_method_or_path_under_the_api_is_told_as_such(backends: Backends) -> None:
    """The page's files are served at "/": an API path they answered read as no such path
    (404), or as one taking the files' own methods."""
    put = await backends.http.put("/api/v1/requests", json=GOOD)
    assert (put.status_code, put.headers["allow"]) == (405, "GET, POST")
    assert put.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    start = await backends.http.get("/api/v1/tracking/start")
    assert (start.status_code, start.headers["allow"]) == (405, "POST")
    nowhere = await backends.http.post("/api/v1/no-such-thing", json={})
    assert (nowhere.status_code, nowhere.json()["error"]["code"]) == (404, "NOT_FOUND")


def handled(route: str, method: str, status: int) -> float:
    labels = {"route": route, "method": method, "status": str(status)}
    return (
        prometheus_client.REGISTRY.get_sample_value(
            "tawasul_http_server_handled_seconds_count", labels
        )
        or 0.0
    )


async def test_every_answer_is_counted_by_route_template_method_and_status(
    backends: Backends,
) -> None:
    headers = backends.token(CITIZEN, Role.CITIZEN)
    before = {
        key: handled(*key)
        for key in (
            ("/api/v1/requests", "POST", 201),
            ("/api/v1/requests/{request_number}", "GET", 404),
            ("(no API route)", "GET", 404),
        )
    }

    await backends.http.post("/api/v1/requests", json=GOOD, headers=headers)
    await backends.http.get("/api/v1/requests/TW999", headers=headers)
    await backends.http.get("/nothing/here")

    assert {key: handled(*key) - was for key, was in before.items()} == dict.fromkeys(before, 1)


async def test_refusals_carry_the_field_violations(backends: Backends) -> None:
    headers = {**backends.token(CITIZEN, Role.CITIZEN), "Accept-Language": "en"}
    answer = await backends.http.post(
        "/api/v1/requests", json={**GOOD, "description": "broken"}, headers=headers
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "error": {
            "code": "INVALID_ARGUMENT",
            "message": "description: describe it precisely",
            "fields": {"description": "describe it precisely"},
        }
    }
    unsigned = await backends.http.post("/api/v1/requests", json=GOOD)
    assert unsigned.status_code == 401
    cancel = await backends.http.post(
        "/api/v1/requests/TW1/cancel", json={"reason": "late"}, headers=headers
    )
    assert (cancel.status_code, cancel.json()["error"]["code"]) == (409, "FAILED_PRECONDITION")


async def test_refusals_come_in_the_language_the_page_asks_for(tmp_path: Path) -> None:
    # Bootstrap's own client: the one that passes the call's language on.
    async for served in _serve(tmp_path, bootstrap_client=True):
        arabic = {**served.token(CITIZEN, Role.CITIZEN), "Accept-Language": "ar"}
        answer = await served.http.post(
            "/api/v1/requests", json={**GOOD, "description": "broken"}, headers=arabic
        )
        assert answer.status_code == 400
        assert answer.json()["error"] == {
            "code": "INVALID_ARGUMENT",
            "message": "description: صِف المشكلة بدقة",
            "fields": {"description": "صِف المشكلة بدقة"},
        }
        # The gateway's own refusals too.
        bad = await served.http.post(
            "/api/v1/requests",
            content=b'{"colour": "red", ',
            headers={**arabic, "Content-Type": "application/json"},
        )
        assert bad.json()["error"] == {
            "code": "INVALID_ARGUMENT",
            "message": "البيانات المدخلة غير صالحة",
            "fields": {"body": "ليس JSON صالحًا"},
        }
        # A browser's own list: its first choice of the two counts.
        english = {**arabic, "Accept-Language": "en-GB,en;q=0.9,ar;q=0.8"}
        answer = await served.http.post(
            "/api/v1/requests", json={**GOOD, "description": "broken"}, headers=english
        )
        assert answer.json()["error"]["fields"] == {"description": "describe it precisely"}
        # Arabic is the default (SPEC §2): a call naming neither language gets it, from
        # intake and from the gateway alike.
        for neither in ({}, {"Accept-Language": "fr-FR"}):
            headers = {**served.token(CITIZEN, Role.CITIZEN), **neither}
            answer = await served.http.post(
                "/api/v1/requests", json={**GOOD, "description": "broken"}, headers=headers
            )
            assert answer.json()["error"]["fields"] == {"description": "صِف المشكلة بدقة"}
            bad = await served.http.post(
                "/api/v1/requests",
                content=b"{nope",
                headers={**headers, "Content-Type": "application/json"},
            )
            assert bad.json()["error"]["fields"] == {"body": "ليس JSON صالحًا"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"document_ids": "x"}', "document_ids"),
        (b'{"colour": "red"}', "colour"),
        (b'{"contact": {"mobile": 5}}', "contact.mobile"),
        # Lone surrogates: no protobuf string (and no UTF-8 answer) can hold one.
        (b'{"description": "\\ud800"}', "description"),
        (b'{"document_ids": "\\ud800x"}', "document_ids"),
        (b'{"document_ids": ["\\udfff"]}', "document_ids[0]"),
        (b'{"contact": "\\ud800x"}', "contact"),
        (b'{"contact": {"mobile": "05\\ud800"}}', "contact.mobile"),
        (b'{"fields": {"name\\ud800": "x"}}', "fields"),
        (b'{"\\ud800": 1}', "body"),
        (b'{"a":' + b"[" * 1500 + b"]" * 1500 + b"}", "body"),
    ],
)
async def test_bad_json_is_400_naming_the_field(
    backends: Backends, body: bytes, field: str
) -> None:
    answer = await backends.http.post(
        "/api/v1/requests",
        content=body,
        headers={**backends.token(CITIZEN, Role.CITIZEN), "Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["fields"].keys() == {field}
    assert backends.intake.submissions == []


async def test_a_number_past_python_s_digits_is_400(tmp_path: Path) -> None:
    # 4,300 digits are more than the fixture's 4 KiB bodies hold.
    async for served in _serve(tmp_path, max_body_bytes=64 * 1024):
        for path in ("/api/v1/requests", "/dev/sign-in"):
            answer = await served.http.post(
                path,
                content=b'{"description": ' + b"1" * 5000 + b"}",
                headers={**served.token(CITIZEN, Role.CITIZEN), "Content-Type": "application/json"},
            )
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["fields"].keys() == {"body"}
        assert served.intake.submissions == []


@pytest.mark.parametrize("authorization", [b"Bearer abc\tdef", b"Bearer t\xe9st"])
async def test_a_token_no_header_can_carry_is_401(backends: Backends, authorization: bytes) -> None:
    answer = await backends.http.get("/api/v1/requests", headers={b"Authorization": authorization})
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "UNAUTHENTICATED"
    assert backends.intake.tokens == []


async def test_the_catalog_comes_in_arabic_or_english_only(backends: Backends) -> None:
    answer = await backends.http.get("/api/v1/catalog", params={"locale": "fr"})
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"].keys() == {"locale"}


async def test_bodies_past_their_limit_are_413(backends: Backends) -> None:
    headers = backends.token(CITIZEN, Role.CITIZEN)
    big = {**GOOD, "description": "x" * 5000}
    answer = await backends.http.post("/api/v1/requests", json=big, headers=headers)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(4):
            yield b"%" * 60_000

    backends.docs.finish.clear()
    upload = await backends.http.post(
        "/api/v1/documents",
        params={"filename": "a.pdf"},
        content=streamed(),
        headers={**headers, "Content-Type": "application/pdf"},
    )
    assert upload.status_code == 413
    await asyncio.wait_for(backends.docs.cancelled.wait(), 10)
    assert backends.docs.received == []


async def test_an_upload_streams_in_chunks_with_its_declared_type(backends: Backends) -> None:
    data = b"%PDF-1.4\n" + b"x" * 150_000
    answer = await backends.http.post(
        "/api/v1/documents",
        params={"filename": "error.pdf", "sub_service_code": "s", "document_kind": "photo"},
        content=data,
        headers={
            **backends.token(CITIZEN, Role.CITIZEN),
            "Content-Type": "application/pdf; charset=binary",
        },
    )
    assert answer.status_code == 201, answer.text
    document = answer.json()["document"]
    assert (document["size_bytes"], document["state"]) == (
        str(len(data)),
        "DOCUMENT_STATE_QUARANTINED",
    )
    sent = backends.docs.metadata[-1]
    assert (sent.filename, sent.declared_content_type, sent.document_kind, sent.size_bytes) == (
        "error.pdf",
        "application/pdf",
        "photo",
        len(data),  # its Content-Length
    )


async def test_a_chunked_upload_declares_no_size(backends: Backends) -> None:
    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length
        yield b"%PDF-1.4\n"
        yield b"x" * 60_000

    answer = await backends.http.post(
        "/api/v1/documents",
        params={"filename": "a.pdf"},
        content=streamed(),
        headers={**backends.token(CITIZEN, Role.CITIZEN), "Content-Type": "application/pdf"},
    )
    assert answer.status_code == 201, answer.text
    assert [m.size_bytes for m in backends.docs.metadata] == [0]
    assert backends.docs.received == [60_009]


async def test_an_upload_whose_body_stops_coming_ends_at_the_upload_timeout(
    tmp_path: Path,
) -> None:
    """A client that stops sending its file, still connected, holds no handler past
    upload_timeout_seconds: it is answered 504."""
    never = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b"%PDF-1.4\n"
        await never.wait()  # the client sends nothing more
        yield b"x"

    async for served in _serve(tmp_path, bootstrap_client=True, upload_timeout_seconds=0.3):
        async with asyncio.timeout(5):
            answer = await served.http.post(
                "/api/v1/documents",
                params={"filename": "a.pdf"},
                content=stalls(),
                headers={**served.token(CITIZEN, Role.CITIZEN), "Content-Type": "application/pdf"},
            )
        assert answer.status_code == 504, answer.text
        assert answer.json()["error"]["code"] == "DEADLINE_EXCEEDED"


async def test_tracking_needs_no_sign_in_and_sends_no_token(backends: Backends) -> None:
    answer = await backends.http.post(
        "/api/v1/tracking/start",
        json={"request_number": "TW1", "id_number": CITIZEN, "mobile": "0551234567"},
    )
    assert answer.json() == {"code_valid_seconds": 300}
    assert backends.intake.tokens[-1] == ""


async def test_calls_past_the_rate_are_429_with_retry_after(tmp_path: Path) -> None:
    async for served in _serve(tmp_path, rate_per_minute=2, tracking_per_minute_per_address=1):
        headers = served.token(CITIZEN, Role.CITIZEN)
        codes = [
            (await served.http.get("/api/v1/requests", headers=headers)).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        refused = await served.http.get("/api/v1/requests", headers=headers)
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "RESOURCE_EXHAUSTED"
        # Another person is not held back by the first.
        other = served.token("1012345672", Role.CITIZEN)
        assert (await served.http.get("/api/v1/requests", headers=other)).status_code == 200
        body = {"request_number": "TW1", "id_number": CITIZEN, "mobile": "0551234567"}
        first = await served.http.post("/api/v1/tracking/start", json=body)
        second = await served.http.post("/api/v1/tracking/start", json=body)
        assert (first.status_code, second.status_code) == (200, 429)


async def test_a_client_address_that_is_no_address_is_not_passed_on(tmp_path: Path) -> None:
    """uvicorn takes a trusted proxy's X-Forwarded-For as the client's address as written
    (latin-1): one gRPC metadata cannot carry must not make the call a 500."""
    async for served in _serve(tmp_path):
        body = {"request_number": "TW1", "id_number": CITIZEN, "mobile": "0551234567"}
        for address in ("caf\xe9", "1.2.3.4\x7f", "not an address"):
            transport = httpx.ASGITransport(app=served.app, client=(address, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
                answer = await http.post("/api/v1/tracking/start", json=body)
            assert answer.status_code == 200, address


async def test_forged_tokens_do_not_use_up_the_calls_of_whom_they_name(tmp_path: Path) -> None:
    """The gateway counts calls per subject as the token names it, before intake verifies
    it: a token anyone can write must not spend the named person's or establishment's
    calls, or anyone could lock them out."""
    async for served in _serve(
        tmp_path, rate_per_minute=2, bulk_files_per_hour=1, max_upload_bytes=1000
    ):

        def forged(subject: str, role: str) -> dict[str, str]:
            token = jwt.encode({"sub": subject, "role": role}, key="", algorithm="none")
            return {"Authorization": f"Bearer {token}"}

        fake = forged(CITIZEN, "citizen")
        for _ in range(3):
            answer = await served.http.get("/api/v1/requests", headers=fake)
            assert answer.status_code == 401
            # The catalog is public: the token is neither sent nor counted.
            answer = await served.http.get("/api/v1/catalog", headers=fake)
            assert answer.status_code == 200
            # Refused by the gateway itself: no backend verified the token.
            too_big = {**fake, "Content-Type": "application/pdf"}
            answer = await served.http.post(
                "/api/v1/documents", headers=too_big, content=b"%PDF" * 999
            )
            assert answer.status_code == 413
        own = await served.http.get("/api/v1/requests", headers=served.token(CITIZEN, Role.CITIZEN))
        assert own.status_code == 200
        bulk = "/api/v1/establishment/requests:bulk"
        fake = forged("7000000013", "establishment")
        assert (await served.http.post(bulk, headers=fake, content=BULK)).status_code == 401
        # A file that cannot be read, or one no row of which reaches intake, never had its
        # token verified either.
        unreadable = await served.http.post(bulk, headers=fake, content=b"\xff\xfe")
        assert unreadable.status_code == 400
        shapeless = await served.http.post(bulk, headers=fake, content=BULK_HEADER + "1,2\n")
        assert (shapeless.status_code, shapeless.json()["filed"]) == (200, 0)
        real = served.token("7000000013", Role.ESTABLISHMENT)
        assert (await served.http.post(bulk, headers=real, content=BULK)).status_code == 200


async def test_one_ipv6_subscriber_is_one_address_to_the_limits(tmp_path: Path) -> None:
    """A subscriber is given a whole /64: each of its addresses is not a new client."""
    async for served in _serve(tmp_path, tracking_per_minute_per_address=1):
        body = {"request_number": "TW1", "id_number": CITIZEN, "mobile": "0551234567"}
        codes = []
        for address in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:3::1"):
            transport = httpx.ASGITransport(app=served.app, client=(address, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
                codes.append((await http.post("/api/v1/tracking/start", json=body)).status_code)
        assert codes == [200, 429, 200]


NOT_A_MOBILE = "0000000000"
BULK_URL = "/api/v1/establishment/requests:bulk"
BULK_HEADER = "subject_id,sub_service_code,description,mobile,field.iqama_number\n"
BULK = (
    BULK_HEADER
    + "2034567897,reports.general-inquiry,Iqama renewal fails with error 17 for this worker,"
    "0551234567,2034567897\n"
    "2023456789,reports.general-inquiry,Iqama renewal fails with error 17 for this worker,"
    "0551234567,2023456789\n"
    "2056789015,reports.general-inquiry,short,0551234567,2056789015\n"
    "1,2\n"
)


async def test_bulk_filing_answers_each_row_and_files_nothing_twice(backends: Backends) -> None:
    headers = {
        **backends.token("7000000013", Role.ESTABLISHMENT),
        "Content-Type": "text/csv",
        "Accept-Language": "en",
    }
    url = "/api/v1/establishment/requests:bulk"
    first = await backends.http.post(url, content=BULK.encode(), headers=headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["filed"], body["refused"]) == (1, 3)
    own, foreign, short, broken = body["results"]
    assert own["row"] == 1
    assert own["request_number"].startswith("TW")
    assert foreign["error"]["code"] == "PERMISSION_DENIED"
    assert foreign["error"]["fields"] == {"subject_id": "not one of your workers"}
    assert short["error"]["fields"] == {"description": "describe it precisely"}
    assert (broken["row"], list(broken["error"]["fields"])) == (4, ["row"])
    assert backends.intake.submissions[0].subject_id == "2034567897"
    assert backends.intake.submissions[0].fields["iqama_number"] == "2034567897"

    # The same file again at once (a double click, a proxy's retry): the row's request is
    # answered as filed already, not again, as intake says, whatever the clocks say.
    later = (await backends.http.post(url, content=BULK.encode(), headers=headers)).json()
    assert (later["filed"], later["already_filed"], later["refused"]) == (0, 1, 3)
    assert later["results"][0] == {
        "row": 1,
        "request_number": own["request_number"],
        "already_filed": True,
    }
    keys = [
        s.idempotency_key for s in backends.intake.submissions if s.subject_id == OWN_WORKERS[0]
    ]
    assert len(keys) == 2
    assert len(set(keys)) == 1
    assert len(backends.intake.by_key) == 1


def _establishment(backends: Backends) -> dict[str, str]:
    return {
        **backends.token("7000000013", Role.ESTABLISHMENT),
        "Content-Type": "text/csv",
        "Accept-Language": "en",
    }


async def test_bulk_rows_after_a_multi_line_description_keep_their_numbers(
    backends: Backends,
) -> None:
    """A description's line breaks, quoted as Excel writes them, are within one row of the
    spreadsheet: the rows after it are numbered as it shows them."""
    multiline = (
        BULK_HEADER
        + '2034567897,reports.general-inquiry,"Iqama renewal fails\nwith error 17 every time",'
        "0551234567,2034567897\n"
        "2056789015,reports.general-inquiry,short,0551234568,2056789015\n"
    )
    body = (
        await backends.http.post(
            BULK_URL, content=multiline.encode(), headers=_establishment(backends)
        )
    ).json()
    filed, short = body["results"]
    assert (filed["row"], short["row"]) == (1, 2)
    assert short["error"]["fields"] == {"description": "describe it precisely"}


async def test_a_bulk_row_whose_quote_is_left_open_is_refused_whatever_ids_it_swallowed(
    backends: Backends,
) -> None:
    """Rows swallowed by a quote left open, their IDs typed in Arabic-Indic digits, were filed
    inside the first row's description with the last one's mobile, and missing from the
    answer: the first row is refused instead, naming them, and nothing is filed."""
    left_open = (
        BULK_HEADER
        + '2034567897,reports.general-inquiry,"Iqama renewal fails with error 17,0551234567,'
        "2034567897\n"
        "٢٠٥٦٧٨٩٠١٥,reports.general-inquiry,Cancel the exit visa issued in error,0551234568,\n"
        '٢٠٣٤٥٦٧٨٩٧,reports.general-inquiry,Mark this "urgent" please for this worker,'
        "0551234569,\n"
    )
    body = (
        await backends.http.post(
            BULK_URL, content=left_open.encode(), headers=_establishment(backends)
        )
    ).json()
    (refused,) = body["results"]
    assert refused["row"] == 1
    assert "so row(s) 2, 3 were read" in refused["error"]["fields"]["row"]
    assert backends.intake.submissions == []


async def test_a_bulk_file_in_arabic_windows_encoding_is_told_how_to_save_it(
    backends: Backends,
) -> None:
    """Excel's plain CSV on Arabic Windows is Windows-1256: the refusal says, in the caller's
    language (Arabic when it names none), how to save the file as UTF-8."""
    cp1256 = (
        BULK_HEADER + "2034567897,reports.general-inquiry,تجديد الإقامة يفشل,0551234567,\n"
    ).encode("cp1256")
    headers = _establishment(backends)
    del headers["Accept-Language"]
    arabic = await backends.http.post(BULK_URL, content=cp1256, headers=headers)
    assert arabic.status_code == 400
    assert "«حفظ باسم»" in arabic.json()["error"]["fields"]["file"]
    english = await backends.http.post(BULK_URL, content=cp1256, headers=_establishment(backends))
    assert '"CSV UTF-8 (Comma delimited)"' in english.json()["error"]["fields"]["file"]
    assert backends.intake.submissions == []


async def test_a_bulk_file_separated_by_semicolons_is_filed(backends: Backends) -> None:
    """Excel where the decimal separator is a comma writes ';' between cells."""
    semicolons = (
        BULK_HEADER.replace(",", ";")
        + '2034567897;reports.general-inquiry;"Iqama renewal fails; error 17, every time";'
        "0551234567;2034567897\n"
    )
    body = (
        await backends.http.post(
            BULK_URL, content=semicolons.encode(), headers=_establishment(backends)
        )
    ).json()
    (filed,) = body["results"]
    assert filed["request_number"].startswith("TW")
    (submitted,) = backends.intake.submissions
    assert submitted.description == "Iqama renewal fails; error 17, every time"
    assert submitted.fields["iqama_number"] == "2034567897"


async def test_a_bulk_row_s_refusal_names_the_file_s_columns(backends: Backends) -> None:
    headers = {
        **backends.token("7000000013", Role.ESTABLISHMENT),
        "Content-Type": "text/csv",
    }
    data = (
        "subject_id,sub_service_code,description,mobile,field.iqama_number\n"
        "2034567897,reports.general-inquiry,Iqama renewal fails with error 17 for this worker,"
        f"{NOT_A_MOBILE},2034567897\n"
    )
    answer = await backends.http.post(
        "/api/v1/establishment/requests:bulk", content=data.encode(), headers=headers
    )
    (row,) = answer.json()["results"]
    assert row["error"]["fields"] == {
        "mobile": "not a Saudi mobile number",
        "field.iqama_number": "not on record",
    }


async def test_a_bulk_row_names_the_rejected_request_it_corrects(backends: Backends) -> None:
    """SPEC §2: the cites_request_number column reaches intake; its refusal names the column."""
    headers = {
        **backends.token("7000000013", Role.ESTABLISHMENT),
        "Content-Type": "text/csv",
        "Accept-Language": "en",
    }
    url = "/api/v1/establishment/requests:bulk"
    description = "Iqama renewal fails with error 17 for this worker"
    first = await backends.http.post(
        url,
        content=(
            BULK_HEADER
            + f"2034567897,reports.general-inquiry,{description},0551234567,2034567897\n"
        ).encode(),
        headers=headers,
    )
    (rejected,) = first.json()["results"]
    data = (
        BULK_HEADER.strip() + ",cites_request_number\n"
        f"2034567897,reports.general-inquiry,{description} (corrected),0551234567,2034567897,"
        f"{rejected['request_number']}\n"
        f"2034567897,reports.general-inquiry,{description} (again),0551234567,2034567897,"
        "TW999999990\n"
    )
    answer = await backends.http.post(url, content=data.encode(), headers=headers)
    corrected, unknown = answer.json()["results"]
    assert corrected["request_number"].startswith("TW")
    assert backends.intake.submissions[-2].cites_request_number == rejected["request_number"]
    assert unknown["error"]["fields"] == {
        "cites_request_number": "not a rejected request of this account"
    }


async def test_bulk_filing_is_for_establishments_and_limits_rows(backends: Backends) -> None:
    url = "/api/v1/establishment/requests:bulk"
    citizen = await backends.http.post(
        url, content=BULK.encode(), headers=backends.token(CITIZEN, Role.CITIZEN)
    )
    assert citizen.status_code == 403
    anonymous = await backends.http.post(url, content=BULK.encode())
    assert anonymous.status_code == 401
    # A token intake refuses fails the file, not each row.
    backends.intake.refuse_all = True
    refused = await backends.http.post(
        url, content=BULK.encode(), headers=backends.token("7000000013", Role.ESTABLISHMENT)
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "UNAUTHENTICATED")
    backends.intake.refuse_all = False
    rows = BULK.split("\n", 1)[1] * 3
    too_many = await backends.http.post(
        url,
        content=(BULK.split("\n", 1)[0] + "\n" + rows).encode(),
        headers={**backends.token("7000000013", Role.ESTABLISHMENT), "Accept-Language": "en"},
    )
    assert too_many.status_code == 400
    assert "at most 5 rows" in too_many.json()["error"]["fields"]["file"]


async def test_dev_sign_in_gives_tokens_the_api_accepts(backends: Backends) -> None:
    people = (await backends.http.get("/dev/people")).json()["people"]
    kinds = {p["id"]: p["kind"] for p in people}
    assert (kinds["1000000008"], kinds["7000000013"]) == ("citizen", "establishment")
    signed = await backends.http.post("/dev/sign-in", json={"id": "7000000013"})
    assert signed.status_code == 200
    body = signed.json()
    assert (body["role"], body["expires_at"][-1]) == ("establishment", "Z")
    answer = await backends.http.post(
        "/api/v1/establishment/requests:bulk",
        content=BULK.encode(),
        headers={"Authorization": f"Bearer {body['token']}"},
    )
    assert answer.status_code == 200
    unknown = await backends.http.post(
        "/dev/sign-in", json={"id": "1234567890"}, headers={"Accept-Language": "en"}
    )
    assert (unknown.status_code, unknown.json()["error"]["fields"]) == (
        404,
        {"id": "not a person of the development registry"},
    )
    for bad, named in (
        (b"[" * 1500 + b"]" * 1500, "body"),
        (b'{"id": "\\ud800"}', "id"),
        (b"{nope", "body"),
    ):
        refused = await backends.http.post("/dev/sign-in", content=bad)
        assert (refused.status_code, refused.json()["error"]["fields"].keys()) == (400, {named})


async def test_dev_sign_in_is_off_unless_enabled(tmp_path: Path) -> None:
    async for served in _serve(tmp_path, dev_sign_in=False):
        assert (await served.http.get("/dev/people")).status_code == 404
        assert (await served.http.post("/dev/sign-in", json={"id": CITIZEN})).status_code == 404


async def test_the_openapi_description_has_the_messages(backends: Backends) -> None:
    spec = (await backends.http.get("/openapi.json")).json()
    paths = spec["paths"]
    actions = {
        path: paths[f"/api/v1/requests/{{request_number}}/{path}"]["post"]["summary"]
        for path in ("follow-up", "cancel", "respond", "appeal")
    }
    assert actions == {
        "follow-up": "FollowUp",
        "cancel": "CancelRequest",
        "respond": "RespondToInfoRequest",
        "appeal": "AppealRejection",
    }
    assert "/api/v1/establishment/requests:bulk" in paths
    submit = paths["/api/v1/requests"]["post"]
    ref = submit["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    error = submit["responses"]["default"]["content"]["application/json"]["schema"]["$ref"]
    assert spec["components"]["schemas"][error.rsplit("/", 1)[1]]["required"] == ["error"]
    assert "/api/v1/documents/{document_id}/download-url" in paths
    assert {"idempotency_key", "document_ids", "contact", "fields"} <= schema["properties"].keys()


async def test_the_web_page_is_served_when_it_exists(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "index.html").write_text("<h1>تواصل</h1>")
    async for served in _serve(tmp_path):
        page = await served.http.get("/")
        assert (page.status_code, "تواصل" in page.text) == (200, True)
        assert (await served.http.get("/healthz")).json() == {"status": "serving"}


async def test_the_page_cannot_be_framed_and_answers_are_not_kept(tmp_path: Path) -> None:
    """Another site may not frame the page (clickjacking the tracking form or the sign-in),
    no answer is sniffed as another type, and none holding a person's data is kept by a
    browser or a proxy cache."""
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "index.html").write_text("<h1>تواصل</h1>")
    async for served in _serve(tmp_path):
        citizen = served.token(CITIZEN, Role.CITIZEN)
        answers = {
            "page": await served.http.get("/"),
            "api": await served.http.get("/api/v1/requests", headers=citizen),
            "refusal": await served.http.get("/api/v1/requests/TW404", headers=citizen),
            "no route": await served.http.get("/api/v1/nothing"),
        }
        for name, answer in answers.items():
            assert answer.headers.get("x-frame-options") == "DENY", name
            assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", "")
            assert answer.headers.get("x-content-type-options") == "nosniff", name
            assert answer.headers.get("referrer-policy") == "no-referrer", name
        for name in ("api", "refusal"):
            assert answers[name].headers.get("cache-control") == "no-store", name


CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as exporter:
        yield exporter


@pytest.fixture
def log_lines(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """The gateway's log lines as its process writes them (tawasul_platform.logs), formatted
    as they are written: inside the request's span."""
    caplog.set_level(logging.INFO, logger=gateway_http.log.name)
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(formatter("gateway"))
    gateway_http.log.addHandler(handler)
    yield lines
    gateway_http.log.removeHandler(handler)


def _ids(span: ReadableSpan) -> tuple[str, str]:
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


async def test_each_request_is_a_server_span_by_route_whose_calls_carry_its_trace(
    tmp_path: Path, spans: InMemorySpanExporter, log_lines: io.StringIO
) -> None:
    async for served in _serve(tmp_path, bootstrap_client=True):
        headers = served.token(CITIZEN, Role.CITIZEN)
        created = await served.http.post(
            "/api/v1/requests",
            json=GOOD,
            headers={**headers, "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
        )
        assert created.status_code == 201, created.text
        missing = await served.http.get("/api/v1/requests/TW999", headers=headers)
        assert missing.status_code == 404
        upload = await served.http.post(
            "/api/v1/documents",
            params={"filename": "passport-of-1000000008.pdf"},
            content=b"%PDF-1.4\n",
            headers={**headers, "Content-Type": "application/pdf"},
        )
        assert upload.status_code == 201, upload.text
        assert (await served.http.get("/healthz")).status_code == 200  # probes: no span

    submit, get, uploaded = spans.get_finished_spans()
    assert [(s.name, s.kind) for s in (submit, get, uploaded)] == [
        ("POST /api/v1/requests", SpanKind.SERVER),
        ("GET /api/v1/requests/{request_number}", SpanKind.SERVER),
        ("POST /api/v1/documents", SpanKind.SERVER),
    ]
    # The caller's trace goes on; without one, a request starts its own.
    assert submit.parent is not None
    assert (_ids(submit)[0], f"{submit.parent.span_id:016x}") == (CALLER_TRACE, CALLER_SPAN)
    assert (get.parent, uploaded.parent) == (None, None)
    assert len({_ids(s)[0] for s in (submit, get, uploaded)}) == 3
    assert dict(get.attributes or {}) == {
        "http.request.method": "GET",
        "http.route": "/api/v1/requests/{request_number}",
        "http.response.status_code": 404,
    }
    # No path, query, number or person in any span.
    recorded = json.dumps([[s.name, dict(s.attributes or {})] for s in spans.get_finished_spans()])
    for personal in ("TW999", CITIZEN, "passport-of", created.json()["request"]["request_number"]):
        assert personal not in recorded

    # intake's and docs' calls continue each request's span.
    assert served.intake.traces == [tracing.traceparent(s.context) for s in (submit, get)]
    assert served.docs.traces == [tracing.traceparent(uploaded.context)]

    # Each request's log line names its span.
    logged = {
        line["event"].rsplit(" ", 1)[0]: (line["trace_id"], line["span_id"])
        for line in map(json.loads, log_lines.getvalue().splitlines())
        if line["logger"] == gateway_http.log.name and "trace_id" in line
    }
    assert logged == {
        "POST /api/v1/requests 201": _ids(submit),
        "GET /api/v1/requests/{request_number} 404": _ids(get),
        "POST /api/v1/documents 201": _ids(uploaded),
    }


def _answering_everything() -> grpc.aio.Server:
    """intake and docs as a server that answers every call with its empty response."""
    server = grpc.aio.server()
    for service in (
        intake_pb2.DESCRIPTOR.services_by_name["IntakeService"],
        docs_pb2.DESCRIPTOR.services_by_name["DocsService"],
    ):
        handlers = {}
        for method in service.methods:
            ask = message_factory.GetMessageClass(method.input_type)
            answer = message_factory.GetMessageClass(method.output_type)
            if method.client_streaming:

                async def taking(
                    requests: AsyncIterator[Any], _: Context, answer: Any = answer
                ) -> Any:
                    async for _ in requests:
                        pass
                    return answer()

                handlers[method.name] = grpc.stream_unary_rpc_method_handler(
                    taking, ask.FromString, answer.SerializeToString
                )
            else:

                async def giving(_: Any, __: Context, answer: Any = answer) -> Any:
                    return answer()

                handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                    giving, ask.FromString, answer.SerializeToString
                )
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(service.full_name, handlers)]
        )
    return server


async def test_the_openapi_description_says_what_each_route_answers(tmp_path: Path) -> None:
    """Each operation of /openapi.json declares the success status its route answers, the
    body it reads, and the Error shape of its refusals (none of FastAPI's own 422, which the
    gateway never answers)."""
    server = _answering_everything()
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    json_headers = {"Content-Type": "application/json"}
    json_body: dict[str, Any] = {"content": b"{}", "headers": json_headers}
    try:
        async for served in _serve(
            tmp_path, bootstrap_client=True, intake_address=address, docs_address=address
        ):
            citizen = served.token(CITIZEN, Role.CITIZEN)
            signed_in = {"content": b"{}", "headers": {**json_headers, **citizen}}
            calls: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
                ("get", "/api/v1/catalog"): ("/api/v1/catalog", {}),
                ("post", "/api/v1/requests"): ("/api/v1/requests", signed_in),
                ("get", "/api/v1/requests"): ("/api/v1/requests", {"headers": citizen}),
                ("get", "/api/v1/requests/{request_number}"): (
                    "/api/v1/requests/TW1",
                    {"headers": citizen},
                ),
                **{
                    ("post", f"/api/v1/requests/{{request_number}}/{action}"): (
                        f"/api/v1/requests/TW1/{action}",
                        signed_in,
                    )
                    for action in ("follow-up", "cancel", "respond", "appeal")
                },
                ("post", "/api/v1/tracking/start"): ("/api/v1/tracking/start", json_body),
                ("post", "/api/v1/tracking/track"): ("/api/v1/tracking/track", json_body),
                ("post", "/api/v1/documents"): (
                    "/api/v1/documents?filename=a.pdf",
                    {
                        "content": b"%PDF-1.7",
                        "headers": {**citizen, "Content-Type": "application/pdf"},
                    },
                ),
                ("get", "/api/v1/documents/{document_id}"): (
                    "/api/v1/documents/d1",
                    {"headers": citizen},
                ),
                ("get", "/api/v1/documents/{document_id}/download-url"): (
                    "/api/v1/documents/d1/download-url",
                    {"headers": citizen},
                ),
                ("post", "/api/v1/establishment/requests:bulk"): (
                    "/api/v1/establishment/requests:bulk",
                    {
                        "content": BULK.encode(),
                        "headers": {
                            **served.token("7000000013", Role.ESTABLISHMENT),
                            "Content-Type": "text/csv",
                        },
                    },
                ),
                ("get", "/dev/people"): ("/dev/people", {}),
                ("post", "/dev/sign-in"): (
                    "/dev/sign-in",
                    {"json": {"id": CITIZEN}, "headers": json_headers},
                ),
            }
            spec = (await served.http.get("/openapi.json")).json()
            operations = {
                (m, path): op for path, ops in spec["paths"].items() for m, op in ops.items()
            }
            assert operations.keys() == calls.keys()
            assert (
                not {"HTTPValidationError", "ValidationError"}
                & spec["components"]["schemas"].keys()
            )
            for (method, path), (url, request) in calls.items():
                operation = operations[method, path]
                answer = await served.http.request(method.upper(), url, **request)
                answered = {code for code in operation["responses"] if code.startswith("2")}
                assert (path, answered) == (path, {str(answer.status_code)}), answer.text
                refusal = operation["responses"]["default"]["content"]["application/json"]
                assert (path, refusal, "422" in operation["responses"]) == (
                    path,
                    {"schema": {"$ref": "#/components/schemas/Error"}},
                    False,
                )
                sent = request.get("headers", {}).get("Content-Type")
                takes = operation.get("requestBody", {}).get("content", {})
                assert (path, sent in takes if sent else takes == {}) == (path, True)
            # A bad parameter is refused in the declared shape, not FastAPI's.
            bad = await served.http.get(
                "/api/v1/requests", params={"page_size": "x"}, headers=citizen
            )
            assert (bad.status_code, bad.json()["error"]["fields"].keys()) == (400, {"page_size"})
    finally:
        await server.stop(None)


async def test_a_backend_not_answering_is_told_in_the_callers_language_not_grpcs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """gRPC's own text of a call intake did not answer names intake's address, in English:
    the page gets the gateway's words in its language, the operators gRPC's in the log."""
    caplog.set_level(logging.WARNING)
    async for served in _serve(
        tmp_path, bootstrap_client=True, intake_address="127.0.0.1:1", call_timeout_seconds=1.0
    ):
        answer = await served.http.get("/api/v1/catalog", headers={"Accept-Language": "ar"})
        assert (answer.status_code, answer.headers["retry-after"]) == (503, "1")
        assert answer.json()["error"] == {
            "code": "UNAVAILABLE",
            "message": "الخدمة غير متاحة؛ أعد المحاولة بعد قليل",
            "fields": {},
        }
        assert "127.0.0.1:1" in caplog.text


async def test_the_gateway_s_and_the_sdk_s_own_refusals_come_in_the_callers_language(
    tmp_path: Path,
) -> None:
    async for served in _serve(tmp_path, bootstrap_client=True):
        arabic = {"Accept-Language": "ar"}
        said = {}
        for name, method, path, headers in (
            ("no page", "GET", "/nowhere", arabic),
            ("no such method", "POST", "/healthz", arabic),
            ("not a bearer token", "GET", "/api/v1/requests", {"Authorization": "Bearer a b"}),
            # Past gRPC's 8 KiB of metadata: intake would refuse it as RESOURCE_EXHAUSTED.
            (
                "token too long",
                "POST",
                "/api/v1/requests",
                {"Authorization": "Bearer " + "a" * 9000},
            ),
        ):
            answer = await served.http.request(
                method, path, json=GOOD, headers={**arabic, **headers}
            )
            said[name] = (answer.status_code, answer.json()["error"]["message"])
        assert said == {
            "no page": (404, "لا توجد صفحة بهذا العنوان"),
            "no such method": (405, "هذه الطريقة غير مسموحة هنا"),
            "not a bearer token": (
                401,
                "الرمز ليس رمز Bearer: أحرف لاتينية وأرقام و - . _ ~ + / = فقط",
            ),
            "token too long": (401, "الرمز أطول من 6144 حرفًا"),
        }
        assert served.intake.tokens == []


async def _gone_mid_body(
    app: FastAPI, path: str, content_type: bytes, authorization: bytes
) -> list[MutableMapping[str, Any]]:
    """What the app sends for a POST whose client goes away after a part of its body."""
    received: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"description": "' + b"x" * 1000, "more_body": True},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return received.pop(0) if received else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"filename=a.pdf",
        "root_path": "",
        "headers": [
            (b"host", b"gateway"),
            (b"authorization", authorization),
            (b"content-type", content_type),
            (b"content-length", b"3000"),
        ],
        "client": ("10.0.0.1", 1234),
        "server": ("gateway", 80),
    }
    await app(scope, receive, send)
    return sent


async def test_oversized_uploads_docs_took_count_against_their_subject(tmp_path: Path) -> None:
    """Docs verified the token of an upload that streamed to it, so one refused past its size
    is a call of the subject's: else an account sends docs oversized uploads past its rate.
    One whose Content-Length says it is too large never reaches docs and is given back."""
    async for served in _serve(tmp_path, rate_per_minute=2, max_upload_bytes=1000):
        headers = {**served.token(CITIZEN, Role.CITIZEN), "Content-Type": "application/pdf"}
        declared = [
            (
                await served.http.post("/api/v1/documents", headers=headers, content=b"%PDF" * 999)
            ).status_code
            for _ in range(4)
        ]
        assert (declared, served.docs.metadata) == ([413] * 4, [])

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b"%PDF" * 300

        streamed = [
            (
                await served.http.post("/api/v1/documents", headers=headers, content=chunked())
            ).status_code
            for _ in range(3)
        ]
        assert streamed == [413, 413, 429]
        # The third never reached docs. Whether docs read an oversized one's first message
        # before the gateway gave up the call is a race (CI once saw one of the two).
        reached = [m.declared_content_type for m in served.docs.metadata]
        assert reached in ([], ["application/pdf"], ["application/pdf"] * 2)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/api/v1/documents", b"application/pdf"), ("/api/v1/requests", b"application/json")],
)
async def test_a_client_gone_while_sending_its_body_is_499_not_the_gateways_failure(
    tmp_path: Path,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    path: str,
    content_type: bytes,
) -> None:
    """A client that goes away mid-body is no failure of the gateway's: counted as 499
    (nginx's client closed), its span not failed, no traceback, and no 5xx for the alert.
    A JSON body is read whole before any backend call, so it is no call of the person its
    token names; an upload streams to docs as it comes, and docs verified its token."""
    caplog.set_level(logging.INFO)
    async for served in _serve(tmp_path, rate_per_minute=1):
        before = {status: handled(path, "POST", status) for status in (499, 500)}
        token = served.token(CITIZEN, Role.CITIZEN)["Authorization"].encode()
        sent = await _gone_mid_body(served.app, path, content_type, token)
        assert {status: handled(path, "POST", status) - n for status, n in before.items()} == {
            499: 1,
            500: 0,
        }
        assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499]
        assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
        (span,) = spans.get_finished_spans()
        assert span.status.status_code == StatusCode.UNSET
        assert (span.attributes or {})["http.response.status_code"] == 499
        assert served.intake.submissions == []
        listed = await served.http.get(
            "/api/v1/requests", headers={"Authorization": token.decode()}
        )
        counted = path == "/api/v1/documents"
        assert listed.status_code == (429 if counted else 200), listed.text
