"""Every RPC of every service, found through reflection, fed generated and corrupted messages
with good and bad tokens (hypothesis): no answer is INTERNAL or UNKNOWN, and every service
still answers its health check after. Every route of the gateway's HTTP API, found in its
OpenAPI document, fed generated paths, queries and bodies the same way: no answer is a 5xx.

The examples are derandomized so that CI tries the same ones each run; set
TAWASUL_FUZZ_EXAMPLES to try more, and TAWASUL_FUZZ_RANDOM=1 for new ones each run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import urllib.parse
import uuid
from contextlib import AsyncExitStack
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tawasul.common.v1 import common_pb2
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul_devstack.journey import new_citizen
from tawasul_devstack.stack import SERVICES, Stack
from tawasul_gateway import bootstrap as gateway
from tawasul_gateway.settings import GatewaySettings
from tawasul_platform.grpc import bearer
from tawasul_platform.identity import Role
from tawasul_platform.tls import open_sync_channel

EXAMPLES = int(os.environ.get("TAWASUL_FUZZ_EXAMPLES", "40"))
RANDOM = os.environ.get("TAWASUL_FUZZ_RANDOM") == "1"
FUZZING = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    suppress_health_check=list(HealthCheck),
)
TIMEOUT = 10.0
# Answers that mean the server failed, not the caller.
BROKEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
DEPARTMENTS = ["passports", "visas", "residents", "corrections", "reports"]

# Strings a message may carry: ordinary, hostile (controls, NUL, bidi marks, lone
# surrogates cannot be encoded by protobuf, so not those), digits of other scripts, and long.
HOSTILE = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\x1b[31m",
        "\u202e",
        "١٢٣٤٥٦٧٨٩٠",
        "۱۲۳۴۵۶۷۸۹۰",
        "𝟏𝟐𝟑",
        "' OR 1=1 --",
        "../../etc/passwd",
        "%s%n",
        "x" * 70_000,
        "ا" * 5_000,
        "TW00000000",
        "0000000000",
        "ar",
        "en",
    ]
)


def _scalar(field: FieldDescriptor, known: list[str]) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.text(max_size=60), HOSTILE, st.sampled_from(known))
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=2048)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        values = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(values), st.integers(-5, 1000))
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    unsigned = kind in (
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
    )
    bits = (
        32
        if kind
        in (
            FieldDescriptor.TYPE_INT32,
            FieldDescriptor.TYPE_UINT32,
            FieldDescriptor.TYPE_SINT32,
            FieldDescriptor.TYPE_FIXED32,
            FieldDescriptor.TYPE_SFIXED32,
        )
        else 64
    )
    if unsigned:
        return st.integers(0, 2**bits - 1)
    return st.one_of(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1), st.integers(-3, 300))


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, known: list[str], depth: int = 0) -> Message:
    """A message of `descriptor` with some fields set to generated values."""
    message = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = (
                field.message_type.fields_by_name["key"],
                field.message_type.fields_by_name["value"],
            )
            entries = draw(
                st.dictionaries(_scalar(key, known), _scalar(value, known), max_size=4)
                if value.message_type is None
                else st.just({})
            )
            getattr(message, field.name).update(entries)
        elif field.message_type is not None:
            if depth >= 3:
                continue
            inner: st.SearchStrategy[Message] = messages(field.message_type, known, depth + 1)
            if field.is_repeated:
                for item in draw(st.lists(inner, max_size=3)):
                    getattr(message, field.name).add().CopyFrom(item)
            else:
                getattr(message, field.name).CopyFrom(draw(inner))
        elif field.is_repeated:
            getattr(message, field.name).extend(draw(st.lists(_scalar(field, known), max_size=5)))
        else:
            setattr(message, field.name, draw(_scalar(field, known)))
    return message


@st.composite
def payloads(draw: st.DrawFn, descriptor: Descriptor, known: list[str]) -> bytes:
    """The wire bytes of a generated message, sometimes corrupted or not a message at all."""
    data = draw(messages(descriptor, known)).SerializeToString()
    how = draw(st.sampled_from(["as is"] * 4 + ["truncated", "flipped", "garbage"]))
    if how == "truncated" and data:
        return data[: draw(st.integers(0, len(data) - 1))]
    if how == "flipped" and data:
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if how == "garbage":
        return draw(st.binary(min_size=1, max_size=256))
    return data


def _methods(stack: Stack) -> list[tuple[str, MethodDescriptor]]:
    """Every RPC of every service, as its reflection service lists them."""
    found: list[tuple[str, MethodDescriptor]] = []
    pool = descriptor_pool.Default()
    for service in SERVICES:
        with open_sync_channel(stack.config.grpc_address(service), stack.config.tls()) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            answers = stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=TIMEOUT
            )
            names = [
                s.name
                for answer in answers
                for s in answer.list_services_response.service
                if s.name.startswith("tawasul.")
            ]
        found.extend((service, m) for n in names for m in pool.FindServiceByName(n).methods)
    return found


@pytest.fixture(scope="module")
def known(stack: Stack) -> list[str]:
    """Real identifiers for string fields to hit: a request's id and number, departments."""
    citizen = new_citizen()
    token = stack.config.identity.token(citizen, Role.CITIZEN)
    with open_sync_channel(stack.config.grpc_address("intake"), stack.config.tls()) as channel:
        answer = intake_pb2_grpc.IntakeServiceStub(channel).SubmitRequest(
            intake_pb2.SubmitRequestRequest(
                idempotency_key=str(uuid.uuid4()),
                sub_service_code="reports.general-inquiry",
                description="Where do I follow up a request I filed last week?",
                contact=common_pb2.Contact(mobile="0551234567"),
            ),
            timeout=TIMEOUT,
            metadata=bearer(token),
        )
    request = answer.request
    return [request.request_id, request.request_number, citizen, *DEPARTMENTS]


def _tokens(stack: Stack, service: str, citizen: str) -> list[tuple[tuple[str, str], ...]]:
    """Mostly tokens the service admits, so that examples reach its handlers; some flawed."""
    identity = stack.config.identity
    users = [
        bearer(identity.token(citizen, Role.CITIZEN)),
        bearer(identity.token("7000000005", Role.ESTABLISHMENT, channel="establishment-portal")),
    ]
    staff = [
        bearer(identity.token("E8001", Role.REVIEWER, ["reports", "passports"])),
        bearer(identity.token("A0001", Role.REVIEWER)),
    ]
    admitted = {"intake": users, "docs": users + staff, "notify": users + staff}.get(service, staff)
    flawed = [
        (),
        bearer("not-a-token"),
        bearer(identity.token(citizen, Role.CITIZEN, now=time.time() - 7200)),
    ]
    return admitted * 3 + flawed


def _serving(stack: Stack) -> dict[str, str]:
    status: dict[str, str] = {}
    for service in SERVICES:
        with open_sync_channel(stack.config.grpc_address(service), stack.config.tls()) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=TIMEOUT
                )
                status[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            except grpc.RpcError as error:
                status[service] = error.code().name
    return status


def _fuzz(
    path: str,
    call: Any,
    streaming: bool,
    body: st.SearchStrategy[Any],
    tokens: list[tuple[tuple[str, str], ...]],
    failures: list[str],
) -> None:
    """Tries one RPC with generated bodies and tokens, noting each broken answer."""

    @FUZZING
    @given(body=body, metadata=st.sampled_from(tokens))
    def fuzz(body: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        request: Any = iter(body) if streaming else body
        try:
            call(request, timeout=TIMEOUT, metadata=metadata)
        except grpc.RpcError as error:
            if error.code() in BROKEN:
                failures.append(f"{path}: {error.code().name} {error.details()}")

    fuzz()


def test_no_rpc_answers_internal_or_unknown_to_anything(stack: Stack, known: list[str]) -> None:
    methods = _methods(stack)
    assert {f"{m.containing_service.name}/{m.name}" for _, m in methods} >= {
        "IntakeService/SubmitRequest",
        "DocsService/UploadDocument",
        "ReviewService/DecideRequest",
    }
    failures: list[str] = []
    channels = {
        s: open_sync_channel(stack.config.grpc_address(s), stack.config.tls()) for s in SERVICES
    }
    try:
        for service, method in methods:
            path = f"/{method.containing_service.full_name}/{method.name}"
            channel = channels[service]
            streaming = method.client_streaming
            call: Any = channel.stream_unary(path) if streaming else channel.unary_unary(path)
            body: st.SearchStrategy[Any] = (
                st.lists(payloads(method.input_type, known), min_size=0, max_size=3)
                if streaming
                else payloads(method.input_type, known)
            )

            _fuzz(path, call, streaming, body, _tokens(stack, service, known[2]), failures)
    finally:
        for channel in channels.values():
            channel.close()
    assert failures == [], "\n".join(sorted(set(failures))[:40])
    assert _serving(stack) == dict.fromkeys(SERVICES, "SERVING")


# --- the gateway's HTTP routes -----------------------------------------------------------------

_ARABIC = re.compile("[\u0621-\u064a]")
# A route's call: its URL, query, headers and body.
Call = tuple[str, dict[str, str], dict[str, str], bytes]
# JSON of every kind, the strings hostile ones too; integers past what any proto field holds.
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
        HOSTILE,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
# Bodies no generator makes from a value: a lone surrogate, deep nesting, not UTF-8, not JSON.
RAW_BODIES = st.sampled_from(
    [
        b'{"description": "\\ud800"}',
        b"[" * 5000 + b"]" * 5000,
        b"\xff\xfe\x00",
        b"{",
        b"",
        b"subject_id,sub_service_code,description,mobile\n2034567897,x,\x00,05\n",
    ]
)


@st.composite
def http_calls(
    draw: st.DrawFn,
    path: str,
    operation: dict[str, Any],
    components: dict[str, Any],
    known: list[str],
) -> Call:
    """A call of one route: its path's parameters, some of its query's, and a body made from
    its schema's field names with values of any JSON kind, or raw bytes, under any type."""
    # No URL that long reaches a server: clients and servers refuse it first.
    strings = st.one_of(
        HOSTILE.filter(lambda v: len(v) < 8000), st.sampled_from(known), st.text(max_size=30)
    )
    url = re.sub(r"{(\w+)}", lambda _: urllib.parse.quote(draw(strings), safe="") or "%20", path)
    query = {
        p["name"]: str(draw(st.one_of(strings, st.integers(-(2**40), 2**40))))
        for p in operation.get("parameters", [])
        if p["in"] == "query" and draw(st.booleans())
    }
    declared = list(operation.get("requestBody", {}).get("content", {}))
    kind = draw(st.sampled_from([*declared, "application/json", "text/plain", ""]))
    schema = operation.get("requestBody", {}).get("content", {}).get(kind, {}).get("schema", {})
    name = schema.get("$ref", "").rsplit("/", 1)[-1]
    fields = list(components.get(name, {}).get("properties", {}))
    shaped = draw(st.booleans())
    if fields and shaped:
        body = json.dumps(
            draw(st.dictionaries(st.sampled_from(fields), JSON_VALUES, max_size=len(fields)))
        ).encode()
    else:
        body = draw(
            st.one_of(
                JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                st.binary(max_size=2048),
                RAW_BODIES,
            )
        )
    return url, query, {"content-type": kind} if kind else {}, body


async def _served(app: FastAPI) -> tuple[AsyncExitStack, httpx.AsyncClient]:
    """The app started (its SDK client made) and an HTTP client to it; a 500 comes back as
    an answer, not as the exception behind it."""
    opened = AsyncExitStack()
    await opened.enter_async_context(app.router.lifespan_context(app))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    http = await opened.enter_async_context(
        httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30.0)
    )
    return opened, http


def _fuzz_route(
    runner: asyncio.Runner,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    calls: st.SearchStrategy[Call],
    tokens: list[dict[str, str]],
    failures: list[str],
) -> None:
    """Tries one route with generated calls and tokens, noting each 5xx, and each field
    message of a refusal that is not in Arabic, the language every call asks for."""

    @FUZZING
    @given(call=calls, token=st.sampled_from(tokens))
    def fuzz(call: Call, token: dict[str, str]) -> None:
        url, query, headers, body = call
        asked = {**headers, **token, "accept-language": "ar"}
        answer = runner.run(http.request(method, url, params=query, headers=asked, content=body))
        sent = f"query {sorted(query)}, {headers.get('content-type', 'no type')}, {len(body)} B"
        if answer.status_code >= 500:
            failures.append(f"{method} {path}: {answer.status_code} {answer.text[:200]} ({sent})")
        elif answer.status_code >= 400 and path.startswith("/api/"):
            fields = answer.json()["error"]["fields"]
            if english := {f: m for f, m in fields.items() if not _ARABIC.search(m)}:
                failures.append(f"{method} {path}: not in Arabic {english} ({sent})")

    fuzz()


def test_no_gateway_route_answers_a_server_error_to_anything(
    stack: Stack, known: list[str]
) -> None:
    """The gateway's own app, on the stack's intake and docs with its certificate, its rate
    limits lifted so that every example reaches a route: no answer is a 5xx, and a
    refusal's field messages are in Arabic, the language every call asks for."""
    env = stack.config.gateway_env()
    lifted = dict.fromkeys(
        (
            "rate_per_minute",
            "rate_per_minute_per_address",
            "tracking_per_minute_per_address",
            "bulk_files_per_hour",
        ),
        1e9,
    )
    chosen = GatewaySettings.model_validate(
        {k.removeprefix("TAWASUL_").lower(): v for k, v in env.items() if "TAWASUL_" in k} | lifted
    )
    app = gateway.app(
        chosen,
        client_factory=gateway.client_factory(chosen),
        dev=gateway.dev_sign_in(chosen),
    )
    tokens = [dict(m) for m in _tokens(stack, "intake", known[2])] + [
        {"authorization": "Bearer " + stack.config.identity.token("E8001", Role.REVIEWER)}
    ]
    schema = app.openapi()
    components = schema["components"]["schemas"]
    routes = [
        (method.upper(), path, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]
    assert {(m, p) for m, p, _ in routes} >= {
        ("POST", "/api/v1/requests"),
        ("POST", "/api/v1/documents"),
        ("POST", "/api/v1/tracking/track"),
    }
    failures: list[str] = []
    with asyncio.Runner() as runner:
        opened, http = runner.run(_served(app))
        try:
            for method, path, operation in routes:
                calls = http_calls(path, operation, components, known)
                _fuzz_route(runner, http, method, path, calls, tokens, failures)
            health = runner.run(http.get("/healthz")).json()
        finally:
            runner.run(opened.aclose())
    assert health == {"status": "serving"}
    assert failures == [], "\n".join(sorted(set(failures))[:40])
    assert _serving(stack) == dict.fromkeys(SERVICES, "SERVING")
