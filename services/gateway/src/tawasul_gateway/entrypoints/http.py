"""The HTTP API: each endpoint's JSON body is its gRPC request message in proto3 JSON (the
proto's field names), and its answer the gRPC response message the same way. The end user's
bearer token goes through to intake and docs; they decide everything else."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, TypeVar

import grpc
import jwt
from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from google.protobuf import json_format
from google.protobuf.message import Message
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from tawasul.docs.v1 import docs_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul_calendar import RIYADH
from tawasul_platform import tracing
from tawasul_platform.i18n import Bilingual
from tawasul_sdk import TawasulClient, TawasulError

from tawasul_gateway import bulk
from tawasul_gateway.adapters.dev_identity import DevRegistry, DevTokenIssuer, UnknownPerson
from tawasul_gateway.adapters.ratelimit import RateLimiter, retry_after
from tawasul_gateway.entrypoints import language, metrics, schemas
from tawasul_gateway.entrypoints.errors import (
    NOT_VALID,
    ApiError,
    bad_request,
    error_body,
    parse_error_fields,
)
from tawasul_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)
PREFIX = "/api/v1"
_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
# Starlette's own refusals (no route, the page's files) say these in English only.
_HTTP_SAID = {
    404: Bilingual("no such page", "لا توجد صفحة بهذا العنوان"),
    405: Bilingual("this method is not allowed here", "هذه الطريقة غير مسموحة هنا"),
}
# The answer counted for a call whose client went away before it was answered (nginx's).
CLIENT_CLOSED = 499
ERROR_REF = {"$ref": "#/components/schemas/Error"}
# Every route's refusals: with it declared, FastAPI declares no 422 of its own either (the
# gateway answers a bad parameter 400, in this shape).
ERRORS: dict[int | str, dict[str, Any]] = {
    "default": {
        "description": "a refusal: gRPC status name, message, field violations",
        "content": {"application/json": {"schema": ERROR_REF}},
    }
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string", "examples": ["INVALID_ARGUMENT"]},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                "existing": {"type": "string", "description": "ALREADY_EXISTS: what exists"},
            },
        }
    },
}


@dataclass(frozen=True)
class DevSignIn:
    """The development stand-in for the national single sign-on."""

    registry: DevRegistry
    issuer: DevTokenIssuer


@dataclass(frozen=True)
class Limits:
    per_subject: RateLimiter
    per_address: RateLimiter
    tracking: RateLimiter
    bulk: RateLimiter


def to_json(message: Message) -> dict[str, Any]:
    """proto3 JSON with the proto's field names; fields at their default are given too, so
    a page need not know proto3's defaults (an empty list is [], not missing)."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


# What JSON's \uXXXX escapes leave in a string when they are not a valid pair.
_SURROGATE = re.compile("[\ud800-\udfff]")


def load_json(body: bytes) -> Any:
    """The body's JSON; 400 when it is not JSON, holds a number no integer type can, nests
    deeper than the parser goes, or holds a lone surrogate (a string no UTF-8, so no protobuf
    and no answer, can carry)."""
    try:
        loaded = json.loads(body)
    except ValueError as exc:
        # Not UTF-8, not JSON, or an integer past Python's 4,300 digits.
        raise bad_request({"body": Bilingual(f"not JSON: {exc}", "ليس JSON صالحًا")}) from None
    except RecursionError:
        raise bad_request({"body": Bilingual("nested too deeply", "متداخل بعمق زائد")}) from None
    where = lone_surrogate(loaded)
    if where is not None:
        raise bad_request(
            {where: Bilingual("not Unicode text: a lone surrogate", "ليس نصًا يونيكود صالحًا")}
        )
    return loaded


def lone_surrogate(loaded: Any) -> str | None:
    """The path of a string holding a lone surrogate ("body" or the object's own path when
    a key does, the key not being fit to repeat); None when none does."""
    stack: list[tuple[str, Any]] = [("body", loaded)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return path
                stack.append((key if path == "body" else f"{path}.{key}", item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return None


_PLAIN_NAME = re.compile(r"[a-z0-9_]{1,64}")
NOT_TEXT = Bilingual("must be text, in quotes", "يجب أن يكون نصًا بين علامتي تنصيص")


def parse_message(body: bytes, message: M) -> M:
    """The body as `message`'s proto3 JSON; 400 naming the field when it is not."""
    if not body.strip():
        return message
    loaded = load_json(body)
    if not isinstance(loaded, dict):
        raise bad_request({"body": Bilingual("a JSON object is expected", "يُنتظر كائن JSON")})
    # protobuf names the map, not the entry, of a value that is not text.
    values = loaded.get("fields")
    if isinstance(values, dict) and (
        wrong := {
            f"fields.{name}": NOT_TEXT
            for name, value in values.items()
            if not isinstance(value, str) and _PLAIN_NAME.fullmatch(name)
        }
    ):
        raise bad_request(wrong)
    try:
        return json_format.ParseDict(loaded, message)
    except json_format.ParseError as exc:
        raise bad_request(parse_error_fields(str(exc))) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise bad_request(
            {"body": Bilingual(str(exc) or "not a valid message", "ليست رسالة صالحة")}
        ) from None


def content_length(request: Request) -> int:
    """The body's length as its Content-Length gives it (the HTTP server holds the body to
    it); 0 when it has none, as with a chunked body."""
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0


async def body_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body as it arrives; 413 as soon as it is past `limit` bytes (at once when its
    Content-Length says so)."""
    if content_length(request) > limit:
        raise too_large(limit)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        if chunk:
            yield chunk


async def streaming(request: Request, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The body as a backend's call pulls it: from its first pull the backend has the call and
    has verified its token, so the call counts against the token's subject whatever follows
    (else a signed-in account could send docs oversized uploads past its rate)."""
    request.state.streaming = True
    async for chunk in chunks:
        yield chunk


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "PAYLOAD_TOO_LARGE",
        Bilingual(f"the body is larger than {limit} bytes", f"حجم المحتوى أكبر من {limit} بايت"),
    )


async def read_body(request: Request, limit: int) -> bytes:
    return b"".join([chunk async for chunk in body_chunks(request, limit)])


def bearer(request: Request) -> str | None:
    """The end user's token from `Authorization: Bearer`, passed on as it is."""
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def unverified_claims(token: str | None) -> dict[str, Any]:
    """The token's claims, NOT verified: only to count calls per subject (intake and docs
    verify every token; a forged one still counts against its address)."""
    if not token:
        return {}
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return {}
    return claims


def client_address(request: Request) -> str:
    """The client's IP address, or "unknown": uvicorn takes a trusted proxy's
    X-Forwarded-For as written, which need not be an address (nor fit in gRPC metadata)."""
    host = request.client.host if request.client else ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "unknown"


def address_key(request: Request) -> str:
    """The client as the per-address limits count it: an IPv6 address as its /64, which one
    subscriber gets whole (each of its addresses would otherwise be a fresh bucket)."""
    address = client_address(request)
    try:
        found = ipaddress.ip_address(address)
    except ValueError:
        return f"ip:{address}"
    if isinstance(found, ipaddress.IPv6Address):
        if found.ipv4_mapped is None:
            return f"ip:{ipaddress.IPv6Network((found, 64), strict=False)}"
        found = found.ipv4_mapped
    return f"ip:{found}"


SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The probes' path: no span for them (a pod's every few seconds).
HEALTH = "/healthz"


def _route(request: Request) -> str | None:
    """The route's template, never the path or query: they may hold people's data."""
    return getattr(request.scope.get("route"), "path", None) or None


def _template(request: Request) -> str:
    return _route(request) or "(no API route)"


def _admit(limiter: RateLimiter, key: str) -> None:
    wait = limiter.take(key)
    if wait > 0:
        raise ApiError(
            429,
            "RESOURCE_EXHAUSTED",
            Bilingual("too many requests; retry later", "محاولات كثيرة؛ أعد المحاولة لاحقًا"),
            headers={"Retry-After": retry_after(wait)},
        )


def create_app(
    settings: GatewaySettings,
    *,
    client_factory: Callable[[], TawasulClient],
    limits: Limits,
    dev: DevSignIn | None = None,
) -> FastAPI:
    """The gateway's ASGI app; `client_factory` opens the SDK client at start-up (closed at
    shutdown), so tests give one on in-process servers."""
    state: dict[str, TawasulClient] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["client"] = client_factory()
        try:
            yield
        finally:
            await state.pop("client").close()

    app = FastAPI(
        title="Tawasul channels API",
        version="1.0.0",
        description=(
            "JSON over HTTP for the web and mobile channels and the establishment portal. "
            "Each body is the gRPC request message of the same name in proto3 JSON with the "
            "proto's field names, each answer the gRPC response message. Errors: "
            '`{"error": {"code": "INVALID_ARGUMENT", "message": "...", "fields": {...}}}`, '
            "in English when Accept-Language prefers en to ar, in Arabic (the default) "
            "otherwise."
        ),
        lifespan=lifespan,
        responses=ERRORS,
    )
    components: dict[str, Any] = {}

    def client() -> TawasulClient:
        return state["client"]

    def doc(
        request: type[Message] | None, response: type[Message], *, status: int = 200
    ) -> dict[str, Any]:
        """OpenAPI for a body of `request` and an answer of `response`."""
        extra: dict[str, Any] = {
            "responses": {
                str(status): {
                    "description": response.DESCRIPTOR.name,
                    "content": {
                        "application/json": {"schema": schemas.ref(response.DESCRIPTOR, components)}
                    },
                },
            }
        }
        if request is not None:
            extra["requestBody"] = {
                "required": False,
                "content": {
                    "application/json": {"schema": schemas.ref(request.DESCRIPTOR, components)}
                },
            }
        return extra

    def limit_subject(token: str | None) -> str | None:
        """Counts the call against the subject its token names (unverified: intake and docs
        verify it); the subject's key, to give the call back should no backend verify the
        token: anyone can write a token naming someone, and it must not spend their calls."""
        subject = unverified_claims(token).get("sub")
        if not isinstance(subject, str) or not subject:
            return None
        key = f"sub:{subject}"
        _admit(limits.per_subject, key)
        return key

    async def call(
        request: Request,
        run: Callable[[TawasulClient, str | None], Awaitable[M]],
        *,
        public: bool = False,
    ) -> M:
        """`run` against the backends, counted against the address, and unless `public` (the
        token is not sent) against the token's subject."""
        token = bearer(request)
        _admit(limits.per_address, address_key(request))
        counted = None if public else limit_subject(token)
        try:
            return await run(client(), token)
        except TawasulError as exc:
            if counted and exc.code is grpc.StatusCode.UNAUTHENTICATED:
                limits.per_subject.give_back(counted)
            raise ApiError.of(exc) from None
        except (ApiError, ClientDisconnect):
            # Refused here, or the client went away while sending: no backend verified the
            # token, unless it was already streaming to one (an upload past its size).
            if counted and not getattr(request.state, "streaming", False):
                limits.per_subject.give_back(counted)
            raise

    async def body_of(request: Request, message: M) -> M:
        return parse_message(await read_body(request, settings.max_body_bytes), message)

    def numbered(message: M, request_number: str) -> M:
        given = getattr(message, "request_number")  # noqa: B009 (each of these messages has it)
        if given and given != request_number:
            raise bad_request(
                {
                    "request_number": Bilingual(
                        "differs from the request number in the path",
                        "يختلف عن رقم الطلب في المسار",
                    )
                }
            )
        setattr(message, "request_number", request_number)  # noqa: B010
        return message

    # -- errors -----------------------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        fields = {
            ".".join(str(p) for p in e.get("loc", ())[1:]) or "request": Bilingual(
                str(e.get("msg", "")), "قيمة غير صالحة لهذا الحقل"
            )
            for e in exc.errors()
        }
        return JSONResponse(error_body("INVALID_ARGUMENT", NOT_VALID, fields), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "UNKNOWN")
        message = _HTTP_SAID.get(exc.status_code, str(exc.detail))
        return JSONResponse(
            error_body(code, message), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, __: ClientDisconnect) -> Response:
        """The client went away while sending its body: the caller's doing, no failure of
        the gateway's (no 500, no traceback); counted as such, its answer going nowhere."""
        return Response(status_code=CLIENT_CLOSED)

    @app.middleware("http")
    async def _access_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Each request's SERVER span (continuing the caller's trace; the SDK's calls carry
        it on to intake and docs), its metrics and its log line, inside the span."""
        started = time.monotonic()
        span, entered = tracing.enter_http_span(
            request.method,
            request.headers.get(tracing.TRACEPARENT),
            probe=request.url.path == HEALTH,
        )
        status: int | None = None
        try:
            response = await call_next(request)
            status = response.status_code
        except Exception as exc:
            # Starlette answers 500 for it, outside this middleware: counted here.
            status = 500
            tracing.fail(span, exc)
            raise
        finally:
            # No status: cancelled, the client gone; no answer to count.
            if status is not None:
                seconds = time.monotonic() - started
                template = _template(request)
                metrics.observe(template, request.method, status, seconds)
                log.info("%s %s %d %.1fms", request.method, template, status, seconds * 1000)
            tracing.leave_http_span(
                span, entered, method=request.method, route=_route(request), status=status
            )
        return response

    @app.middleware("http")
    async def _language(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """The call's language, for intake's and docs' refusals and the gateway's own."""
        entered = language.enter(request.headers.get("accept-language"))
        try:
            return await call_next(request)
        finally:
            language.leave(entered)

    @app.middleware("http")
    async def _security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """No other site frames the page (clickjacking the tracking form or the sign-in), no
        answer is sniffed as another type, and no API answer (a person's requests, an
        error naming their data) is kept by a browser or a cache on the way."""
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if request.url.path.startswith(PREFIX):
            response.headers["Cache-Control"] = "no-store"
        return response

    # -- health -----------------------------------------------------------------------------

    @app.get(HEALTH, include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "serving" if "client" in state else "starting"}

    # -- catalog and requests ---------------------------------------------------------------

    @app.get(
        f"{PREFIX}/catalog",
        summary="GetCatalog",
        openapi_extra=doc(None, intake_pb2.GetCatalogResponse),
    )
    async def get_catalog(
        request: Request,
        locale: Literal["ar", "en"] = Query("ar", description="ar (default) or en"),
    ) -> Response:
        answer = await call(request, lambda c, _: c.get_catalog(locale), public=True)
        return JSONResponse(to_json(answer))

    @app.post(
        f"{PREFIX}/requests",
        summary="SubmitRequest",
        status_code=201,
        openapi_extra=doc(
            intake_pb2.SubmitRequestRequest, intake_pb2.SubmitRequestResponse, status=201
        ),
    )
    async def submit_request(request: Request) -> Response:
        message = await body_of(request, intake_pb2.SubmitRequestRequest())
        answer = await call(request, lambda c, t: c.submit_request(message, token=t))
        number = answer.request.request_number
        return JSONResponse(
            to_json(answer),
            status_code=201,
            headers={"Location": f"{PREFIX}/requests/{number}"},
        )

    @app.get(
        f"{PREFIX}/requests",
        summary="ListMyRequests",
        openapi_extra=doc(None, intake_pb2.ListMyRequestsResponse),
    )
    async def list_my_requests(
        request: Request,
        page_size: int = Query(0, ge=0, le=2**31 - 1, description="0 means 20, at most 100"),
        page_token: str = Query("", max_length=1000),
    ) -> Response:
        message = intake_pb2.ListMyRequestsRequest(page_size=page_size, page_token=page_token)
        answer = await call(request, lambda c, t: c.list_my_requests(message, token=t))
        return JSONResponse(to_json(answer))

    @app.get(
        f"{PREFIX}/requests/{{request_number}}",
        summary="GetRequest",
        openapi_extra=doc(None, intake_pb2.GetRequestResponse),
    )
    async def get_request(request: Request, request_number: str) -> Response:
        message = intake_pb2.GetRequestRequest(request_number=request_number)
        answer = await call(request, lambda c, t: c.get_request(message, token=t))
        return JSONResponse(to_json(answer))

    # A request's actions: the body is the rest of the action's message, the number is the
    # path's. Each is the SDK's call of the same name; none is retried.
    def action(
        kind: type[M], run: Callable[[TawasulClient, M, str | None], Awaitable[Message]]
    ) -> Callable[[Request, str], Awaitable[Response]]:
        async def act(request: Request, request_number: str) -> Response:
            message = numbered(await body_of(request, kind()), request_number)
            answer = await call(request, lambda c, t: run(c, message, t))
            return JSONResponse(to_json(answer))

        return act

    actions: list[tuple[str, str, type[Message], type[Message], Any]] = [
        (
            "follow-up",
            "follow_up",
            intake_pb2.FollowUpRequest,
            intake_pb2.FollowUpResponse,
            action(intake_pb2.FollowUpRequest, lambda c, m, t: c.follow_up(m, token=t)),
        ),
        (
            "cancel",
            "cancel_request",
            intake_pb2.CancelRequestRequest,
            intake_pb2.CancelRequestResponse,
            action(intake_pb2.CancelRequestRequest, lambda c, m, t: c.cancel_request(m, token=t)),
        ),
        (
            "respond",
            "respond",
            intake_pb2.RespondToInfoRequestRequest,
            intake_pb2.RespondToInfoRequestResponse,
            action(
                intake_pb2.RespondToInfoRequestRequest,
                lambda c, m, t: c.respond_to_info_request(m, token=t),
            ),
        ),
        (
            "appeal",
            "appeal",
            intake_pb2.AppealRejectionRequest,
            intake_pb2.AppealRejectionResponse,
            action(
                intake_pb2.AppealRejectionRequest, lambda c, m, t: c.appeal_rejection(m, token=t)
            ),
        ),
    ]
    for path, name, kind, answer, endpoint in actions:
        app.post(
            f"{PREFIX}/requests/{{request_number}}/{path}",
            name=name,
            # The RPC's name: FollowUpResponse answers FollowUp.
            summary=answer.DESCRIPTOR.name.removesuffix("Response"),
            openapi_extra=doc(kind, answer),
        )(endpoint)

    # -- tracking without sign-in -----------------------------------------------------------

    async def tracking(request: Request, run: Callable[[TawasulClient], Awaitable[M]]) -> M:
        _admit(limits.tracking, address_key(request))
        try:
            return await run(client())
        except TawasulError as exc:
            raise ApiError.of(exc) from None

    @app.post(
        f"{PREFIX}/tracking/start",
        summary="StartTracking",
        openapi_extra=doc(intake_pb2.StartTrackingRequest, intake_pb2.StartTrackingResponse),
    )
    async def start_tracking(request: Request) -> Response:
        message = await body_of(request, intake_pb2.StartTrackingRequest())
        answer = await tracking(
            request, lambda c: c.start_tracking(message, on_behalf_of=client_address(request))
        )
        return JSONResponse(to_json(answer))

    @app.post(
        f"{PREFIX}/tracking/track",
        summary="TrackRequest",
        openapi_extra=doc(intake_pb2.TrackRequestRequest, intake_pb2.TrackRequestResponse),
    )
    async def track_request(request: Request) -> Response:
        message = await body_of(request, intake_pb2.TrackRequestRequest())
        answer = await tracking(
            request, lambda c: c.track_request(message, on_behalf_of=client_address(request))
        )
        return JSONResponse(to_json(answer))

    # -- documents --------------------------------------------------------------------------

    upload_doc = doc(None, docs_pb2.UploadDocumentResponse, status=201)
    upload_doc["requestBody"] = {
        "required": True,
        "description": "the file's bytes; its Content-Type is the declared type",
        "content": {
            kind: {"schema": {"type": "string", "format": "binary"}}
            for kind in ("application/pdf", "image/jpeg")
        },
    }

    @app.post(
        f"{PREFIX}/documents", summary="UploadDocument", status_code=201, openapi_extra=upload_doc
    )
    async def upload_document(
        request: Request,
        filename: str = Query("", max_length=1000),
        sub_service_code: str = Query("", max_length=200),
        document_kind: str = Query("", max_length=200),
    ) -> Response:
        declared = request.headers.get("content-type", "").split(";", 1)[0].strip()
        if declared.lower().startswith("multipart/"):
            # An HTML form's encoding: its boundaries and headers would reach docs as the file.
            raise ApiError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                Bilingual(
                    "send the file's own bytes as the body, not a form",
                    "أرسل بايتات الملف نفسه في المحتوى، لا نموذجًا",
                ),
            )
        limit = settings.max_upload_bytes

        async def upload(c: TawasulClient, t: str | None) -> docs_pb2.UploadDocumentResponse:
            if content_length(request) > limit:
                raise too_large(limit)  # before docs has the call
            return await c.upload_document(
                streaming(request, body_chunks(request, limit)),
                filename=filename,
                content_type=declared,
                sub_service_code=sub_service_code,
                document_kind=document_kind,
                size_bytes=content_length(request),
                token=t,
            )

        answer = await call(request, upload)
        return JSONResponse(to_json(answer), status_code=201)

    @app.get(
        f"{PREFIX}/documents/{{document_id}}",
        summary="GetDocument",
        openapi_extra=doc(None, docs_pb2.GetDocumentResponse),
    )
    async def get_document(request: Request, document_id: str) -> Response:
        message = docs_pb2.GetDocumentRequest(document_id=document_id)
        answer = await call(request, lambda c, t: c.get_document(message, token=t))
        return JSONResponse(to_json(answer))

    @app.get(
        f"{PREFIX}/documents/{{document_id}}/download-url",
        summary="GetDownloadUrl",
        openapi_extra=doc(None, docs_pb2.GetDownloadUrlResponse),
    )
    async def get_download_url(request: Request, document_id: str) -> Response:
        message = docs_pb2.GetDownloadUrlRequest(document_id=document_id)
        answer = await call(request, lambda c, t: c.get_download_url(message, token=t))
        return JSONResponse(to_json(answer))

    # -- establishment portal ---------------------------------------------------------------

    bulk_doc: dict[str, Any] = {
        "requestBody": {
            "required": True,
            "description": (
                "CSV, UTF-8, a header and one request a row: subject_id, sub_service_code, "
                "description, mobile, optional email and locale, the sub-service's fields as "
                "field.<name>, documents as document_ids (separated by spaces or ;) or "
                "document.<kind>, and optionally cites_request_number, the rejected request "
                "the row corrects"
            ),
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        "responses": {
            "200": {
                "description": (
                    "filed, already_filed and refused counts, and one result a row: its request"
                    " number (already_filed when an earlier upload filed it), or its error"
                ),
                "content": {"application/json": {}},
            }
        },
    }

    @app.post(
        f"{PREFIX}/establishment/requests:bulk",
        summary="File requests in bulk (establishments)",
        openapi_extra=bulk_doc,
    )
    async def file_in_bulk(request: Request) -> Response:
        token = bearer(request)
        claims = unverified_claims(token)
        establishment = claims.get("sub")
        if not token or not isinstance(establishment, str) or not establishment:
            raise ApiError(
                401,
                "UNAUTHENTICATED",
                Bilingual("sign in as an establishment", "سجّل الدخول بحساب منشأة"),
            )
        if claims.get("role") != "establishment":
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                Bilingual("bulk filing is for establishments", "التقديم الجماعي للمنشآت فقط"),
            )
        # The establishment's files and calls are spent only by a file some row of which intake
        # takes to check, and so verifies the token: a forged token must not spend them.
        _admit(limits.per_address, address_key(request))
        data = await read_body(request, settings.max_bulk_bytes)
        try:
            rows = bulk.parse(data, max_rows=settings.bulk_max_rows)
        except bulk.BadFile as exc:
            raise bad_request(
                exc.fields, Bilingual("the file cannot be read", "تعذرت قراءة الملف")
            ) from None
        files = f"est:{establishment}"
        counted = limit_subject(token)
        try:
            _admit(limits.bulk, files)
        except ApiError:
            if counted:
                limits.per_subject.give_back(counted)
            raise

        def give_back() -> None:
            limits.bulk.give_back(files)
            if counted:
                limits.per_subject.give_back(counted)

        started = time.time()
        day = datetime.fromtimestamp(started, RIYADH).date()
        try:
            results = [await _file_row(client(), token, establishment, day, row) for row in rows]
        except ApiError as exc:
            if exc.status == 401:
                give_back()
            raise
        if all(isinstance(row, bulk.BadRow) for row in rows):
            give_back()
        taken = [r for r in results if "request_number" in r]
        filed = sum(1 for r in taken if not r.get("already_filed"))
        return JSONResponse(
            {
                "filed": filed,
                "already_filed": len(taken) - filed,
                "refused": len(results) - len(taken),
                "results": results,
            }
        )

    # -- development sign-in ----------------------------------------------------------------

    if dev is not None:
        _dev_routes(app, dev, settings)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            spec.setdefault("components", {}).setdefault("schemas", {}).update(
                {**components, "Error": ERROR_SCHEMA}
            )
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.api_route(
        f"{PREFIX}/{{path:path}}",
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        include_in_schema=False,
    )
    async def not_in_the_api(request: Request) -> Response:
        """An API path no route takes with this method: the page's files, mounted at "/",
        would answer 404, or 405 naming their own methods instead of the route's."""
        path = request.url.path
        allowed = sorted(
            method
            for route in app.routes
            if isinstance(route, APIRoute)
            and route.endpoint is not not_in_the_api
            and route.path_regex.fullmatch(path)
            for method in route.methods or ()
        )
        if not allowed:
            raise ApiError(
                404, "NOT_FOUND", Bilingual("no such API path", "لا يوجد مسار بهذا الاسم")
            )
        raise ApiError(
            405,
            "METHOD_NOT_ALLOWED",
            Bilingual(
                f"this path takes {', '.join(allowed)}",
                f"هذا المسار يقبل {'، '.join(allowed)}",
            ),
            headers={"Allow": ", ".join(allowed)},
        )

    if settings.web_dir.is_dir():
        app.mount("/", StaticFiles(directory=settings.web_dir, html=True), name="web")
    return app


async def _file_row(
    client: TawasulClient,
    token: str,
    establishment: str,
    day: date,
    row: bulk.Row | bulk.BadRow,
) -> dict[str, Any]:
    if isinstance(row, bulk.BadRow):
        return {
            "row": row.number,
            **error_body(
                "INVALID_ARGUMENT",
                Bilingual("the row cannot be read", "تعذرت قراءة الصف"),
                row.fields,
            ),
        }
    message = intake_pb2.SubmitRequestRequest(
        idempotency_key=row.idempotency_key(establishment, day),
        sub_service_code=row.sub_service_code,
        description=row.description,
        document_ids=list(row.document_ids),
        subject_id=row.subject_id,
        fields=row.fields,
        cites_request_number=row.cites_request_number,
    )
    message.contact.mobile = row.mobile
    message.contact.email = row.email
    message.contact.locale = row.locale
    try:
        answer = await client.submit_request(message, token=token)
    except TawasulError as exc:
        error = ApiError.of(exc)
        if error.status == 401:
            raise error from None  # the sign-in, not the row: every row would fail the same
        # Named by the file's columns, where intake names its request's fields.
        fields = {row.column(name): problem for name, problem in error.fields.items()}
        if exc.code_name == "PERMISSION_DENIED" and not fields:
            # Whom the row is about is what the establishment may not file for.
            fields = {"subject_id": error.message}
        return {
            "row": row.number,
            **error_body(error.code, error.message, fields, existing=error.existing),
        }
    filed = {"row": row.number, "request_number": answer.request.request_number}
    # The row's key was taken before: the same row of an earlier upload, answered as it was.
    if answer.replayed:
        filed["already_filed"] = True
    return filed


_SIGN_IN_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "string", "description": "a person of /dev/people"}
                    },
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "a token the API takes, and whom it names",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            name: {"type": "string"}
                            for name in ("token", "expires_at", "subject", "role")
                        },
                    }
                }
            },
        }
    },
}


def _dev_routes(app: FastAPI, dev: DevSignIn, settings: GatewaySettings) -> None:
    @app.get("/dev/people", summary="Development only: the sample people and establishments")
    async def people() -> dict[str, Any]:
        return {"people": [p.as_json() for p in dev.registry.people]}

    @app.post(
        "/dev/sign-in",
        summary='Development only: a token for {"id": "1000000008"}',
        openapi_extra=_SIGN_IN_DOC,
    )
    async def sign_in(request: Request) -> dict[str, Any]:
        loaded = load_json(await read_body(request, settings.max_body_bytes) or b"{}")
        id_number = loaded.get("id") if isinstance(loaded, dict) else None
        if not isinstance(id_number, str) or not id_number:
            raise bad_request(
                {
                    "id": Bilingual(
                        "the ID of a person of the development registry",
                        "رقم هوية شخص من سجل التطوير",
                    )
                }
            )
        try:
            person = dev.registry.find(id_number)
        except UnknownPerson:
            raise ApiError(
                404,
                "NOT_FOUND",
                Bilingual(
                    "no such person in the development registry",
                    "لا يوجد هذا الشخص في سجل التطوير",
                ),
                fields={
                    "id": Bilingual(
                        "not a person of the development registry", "ليس شخصًا من سجل التطوير"
                    )
                },
            ) from None
        token, expires = dev.issuer.issue(person)
        return {
            "token": token,
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
            "subject": person.id,
            "role": person.role,
        }
