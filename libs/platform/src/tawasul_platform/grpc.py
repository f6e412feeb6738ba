"""gRPC plumbing: server with health and reflection, error mapping, identity, client deadlines."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from tawasul_platform import deadlines, errors, i18n, metrics, tracing
from tawasul_platform.authz import AUTHORIZATION, Gate

# Re-exported: where callers have always found it.
from tawasul_platform.deadlines import DEFAULT_DEADLINE_SECONDS as DEFAULT_DEADLINE_SECONDS
from tawasul_platform.faults import is_conflict, is_transient
from tawasul_platform.hygiene import message_violations
from tawasul_platform.identity import Principal
from tawasul_platform.settings import CannotStart
from tawasul_platform.tls import TlsConfig, server_credentials

if TYPE_CHECKING:
    from tawasul_platform.settings import ServiceSettings

log = logging.getLogger(__name__)

# The principal the gate admitted, for the method's handler (each RPC runs in its own task).
_CALLER: ContextVar[Principal | None] = ContextVar("tawasul_caller", default=None)

_CODES: dict[type[errors.DomainError], int] = {
    errors.InvalidArgument: code_pb2.INVALID_ARGUMENT,
    errors.NotFound: code_pb2.NOT_FOUND,
    errors.AlreadyExists: code_pb2.ALREADY_EXISTS,
    errors.FailedPrecondition: code_pb2.FAILED_PRECONDITION,
    errors.PermissionDenied: code_pb2.PERMISSION_DENIED,
    errors.Unauthenticated: code_pb2.UNAUTHENTICATED,
    errors.ResourceExhausted: code_pb2.RESOURCE_EXHAUSTED,
    errors.Unavailable: code_pb2.UNAVAILABLE,
    errors.DeadlineExceeded: code_pb2.DEADLINE_EXCEEDED,
}


def to_status(error: errors.DomainError, locale: str = i18n.DEFAULT_LOCALE) -> grpc.Status:
    """The rich status for a domain error: field violations and existing resources as details.

    Each field's message and the error's own go in the caller's `locale` (Arabic unless they
    asked for English) as google.rpc.LocalizedMessage too, when they have text in it
    (i18n.Bilingual); `description` and `message` stay English, for logs and developers."""
    code = next(c for cls, c in _CODES.items() if isinstance(error, cls))
    details: list[Message] = []
    if isinstance(error, errors.InvalidArgument):
        violations = [_violation(f, d, locale) for f, d in error.violations.items()]
        details.append(error_details_pb2.BadRequest(field_violations=violations))
    elif isinstance(error, errors.AlreadyExists) and error.existing:
        details.append(error_details_pb2.ResourceInfo(resource_name=error.existing))
    said = error.args[0] if len(error.args) == 1 and isinstance(error.args[0], str) else ""
    return _status(code, said or str(error), locale, details)


def _status(code: int, message: str, locale: str, details: Sequence[Message] = ()) -> grpc.Status:
    """A status with its details, and its message in `locale` when it has text in it."""
    status = status_pb2.Status(code=code, message=str(message))
    for detail in details:
        _pack(status, detail)
    if (text := i18n.in_locale(message, locale)) is not None:
        _pack(status, error_details_pb2.LocalizedMessage(locale=locale, message=text))
    result: grpc.Status = rpc_status.to_status(status)
    return result


def _violation(
    field: str, description: str, locale: str
) -> error_details_pb2.BadRequest.FieldViolation:
    violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
    if (text := i18n.in_locale(description, locale)) is not None:
        violation.localized_message.locale = locale
        violation.localized_message.message = text
    return violation


def _pack(status: status_pb2.Status, detail: Message) -> None:
    packed = any_pb2.Any()
    packed.Pack(detail)
    status.details.append(packed)


def caller_locale(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The language the call's `accept-language` prefers, of those Tawasul speaks; Arabic, the
    default, for a call naming neither."""
    for key, value in context.invocation_metadata() or ():
        if key == i18n.ACCEPT_LANGUAGE and isinstance(value, str):
            return i18n.preferred_locale(value)
    return i18n.DEFAULT_LOCALE


def status_details(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The rich status a server attached to an error, for clients; None when it has none, or
    when its bytes are not a status (a proxy's or a broken server's): the error's code and
    message still say what happened, and a client must not fail on reading them."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = status_details(error)
    found: dict[str, str] = {}
    for detail in status.details if status else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def existing_resource(error: grpc.aio.AioRpcError) -> str:
    status = status_details(error)
    for detail in status.details if status else ():
        info = error_details_pb2.ResourceInfo()
        if detail.Unpack(info):
            return str(info.resource_name)
    return ""


_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class _Undecodable:
    """What a request's bytes became when they are not the method's message."""


_UNDECODABLE = _Undecodable()
_DEPENDENCY = i18n.Bilingual(
    "a dependency is unavailable; retry shortly", "خدمة مساندة غير متاحة؛ أعد المحاولة بعد قليل"
)
_INTERNAL = i18n.Bilingual("internal error", "خطأ داخلي")
_CONFLICT = i18n.Bilingual(
    "a concurrent change got in the way; try it again", "تعارض مع تغيير متزامن؛ أعد المحاولة"
)
_NOT_A_MESSAGE = i18n.Bilingual(
    "the request's bytes are not a valid message of this method",
    "بيانات الطلب ليست رسالة صالحة لهذه العملية",
)


def _lenient(decode: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """The method's deserializer, answering bad bytes with a marker instead of raising: gRPC
    would otherwise answer INTERNAL for what is the caller's mistake."""
    if decode is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception:
            return _UNDECODABLE

    return deserialize


def _admit(request: Any) -> None:
    """Refuses, before the handler sees it, a request no handler should ever see."""
    if request is _UNDECODABLE:
        raise errors.InvalidArgument({"request": _NOT_A_MESSAGE})
    # A method registered without a deserializer takes raw bytes: nothing to walk.
    if isinstance(request, Message) and (problems := message_violations(request)):
        raise errors.InvalidArgument(problems)


async def _decoded(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        _admit(request)
        yield request


def _bounded(method: str, behaviour: _Handler, seconds: float | None) -> _Handler:
    """The handler, cancelled once it has run `seconds`: its caller gets DEADLINE_EXCEEDED and
    the process stops spending on an answer whose caller has likely given up."""
    if seconds is None:
        return behaviour

    async def bounded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        limit = asyncio.timeout(seconds)
        try:
            async with limit:
                return await behaviour(request, context)
        except TimeoutError:
            if not limit.expired():
                raise  # the handler's own timeout: an outage, for _guard to map
            log.warning("%s ran past the server's limit of %.0f s; cancelled", method, seconds)
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED, "the server's time limit for this call ran out"
            )

    return bounded


# A refused client stream is answered once its caller has sent its last message, within these
# bounds: grpc.aio's client reports a call that ended while it was still writing as INTERNAL,
# not as the server's status (grpc/grpc#36066, a fix proposed in grpc/grpc#43486). The bound
# is in bytes, not messages: a file refused at its metadata or past docs' limit (10 MiB) is
# still coming in 256 KiB chunks, and a 30 MiB one is 120 of them. DRAIN_BYTES is several
# times the largest file any service takes, read in well under DRAIN_SECONDS in the cluster.
# A caller streaming on past either bound is answered anyway (and may see INTERNAL).
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0
# Each message's length prefix on the wire: an empty message counts too.
_FRAME_BYTES = 5


def _wire_size(message: Any) -> int:
    if isinstance(message, Message):
        return _FRAME_BYTES + message.ByteSize()
    if isinstance(message, bytes):  # a method registered without a deserializer
        return _FRAME_BYTES + len(message)
    return _FRAME_BYTES  # bytes that were not the method's message: their size is gone


async def _drain(requests: AsyncIterator[Any]) -> None:
    """Reads, and drops, what a refused caller still sends, until they half-close."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            read = 0
            async for message in requests:
                read += _wire_size(message)
                if read >= DRAIN_BYTES:
                    return
    except Exception:  # the stream broke or took too long: nothing more to wait for
        return


@asynccontextmanager
async def _answering(
    method: str,
    context: grpc.aio.ServicerContext[Any, Any],
    gate: Gate,
    requests: AsyncIterator[Any] | None = None,
) -> AsyncIterator[None]:
    """One call's frame, whatever its kind: its span (continuing the caller's trace), deadline,
    the gate first (a refused caller learns nothing about their input), then the error
    mapping around the handler. A client stream (`requests`) is drained before a refusal."""
    started = time.perf_counter()
    span, entered = tracing.enter_server_span(method, context.invocation_metadata())
    deadline = deadlines.enter(context.time_remaining())
    try:
        _CALLER.set(gate.admit(method, context))
        yield
    except errors.DomainError as exc:
        if requests is not None:
            await _drain(requests)
        await context.abort_with_status(to_status(exc, caller_locale(context)))
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        if requests is not None:
            await _drain(requests)
        locale = caller_locale(context)
        if is_transient(exc):
            log.warning("dependency unavailable in %s: %r", method, exc)
            await context.abort_with_status(_status(code_pb2.UNAVAILABLE, _DEPENDENCY, locale))
        if is_conflict(exc):
            # Two calls (or a call and an event) took the same things in turn: one is undone.
            log.warning("concurrent change in %s: %r", method, exc)
            await context.abort_with_status(_status(code_pb2.ABORTED, _CONFLICT, locale))
        log.exception("unexpected error in %s", method)
        tracing.fail(span, exc)
        await context.abort_with_status(_status(code_pb2.INTERNAL, _INTERNAL, locale))
    finally:
        deadlines.leave(deadline)
        code = _code(context)
        tracing.leave_server_span(span, entered, code)
        metrics.observe_call(method, code, time.perf_counter() - started)


def _code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    """How the call is ending, from within its frame's `finally`: an abort set the code, a
    cancelled handler (the caller gone) has none, and an answer leaves it unset: OK."""
    if isinstance(sys.exc_info()[1], asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return context.code() or grpc.StatusCode.OK


def _checked(request: Any, streaming: bool) -> Any:
    if streaming:
        return _decoded(request)
    _admit(request)
    return request


def _guard(method: str, behaviour: _Handler, gate: Gate, *, streaming: bool = False) -> _Handler:
    """A handler answering one message (unary or client-streaming), framed."""

    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async with _answering(method, context, gate, request if streaming else None):
            return await behaviour(_checked(request, streaming), context)
        return None  # not reached: _answering ends every error in an abort

    return guarded


def _guard_replies(
    method: str, behaviour: Callable[..., Any], gate: Gate, *, streaming: bool
) -> Callable[..., Any]:
    """A handler answering a stream (server- or bidi-streaming), framed the same way. grpc
    takes either an async generator or a coroutine writing with context.write: the wrapper
    keeps the handler's own style."""
    if inspect.isasyncgenfunction(behaviour):

        async def replies(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            async with _answering(method, context, gate):
                async for reply in behaviour(_checked(request, streaming), context):
                    yield reply

        return replies

    async def writes(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        async with _answering(method, context, gate):
            await behaviour(_checked(request, streaming), context)

    return writes


# What gRPC's own limit of calls in flight answered, word for word and without a rich status:
# the SDK takes a refusal so worded for a call the server never started, and sends it again
# (tawasul_sdk.errors.too_busy_to_start).
CONCURRENT_RPC_LIMIT = "Concurrent RPC limit exceeded!"


def _refusal(method: str, started: float) -> grpc.RpcMethodHandler[Any, Any]:
    """A call past the server's limit, answered RESOURCE_EXHAUSTED and counted: nothing of it
    is read or decoded, and no gate, span or handler runs. A stream-stream handler takes any
    kind of call without waiting for a message."""

    async def refuse(
        _requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED
        try:
            await context.abort(exhausted, CONCURRENT_RPC_LIMIT)
        finally:
            metrics.observe_call(method, exhausted, time.perf_counter() - started)
            metrics.overloaded(method)

    return grpc.stream_stream_rpc_method_handler(refuse)


class DomainErrorInterceptor(grpc.aio.ServerInterceptor):
    """Admits each call through the gate, then maps DomainError to its status, outages to
    UNAVAILABLE and a transaction PostgreSQL undid for a concurrent one's sake (a deadlock) to
    ABORTED; anything else is a bug, logged and answered INTERNAL. Bytes that are not the
    method's message, and messages past the platform's limits (hygiene.py: control
    characters, huge strings and lists), are INVALID_ARGUMENT before the handler runs. Each
    call's deadline bounds the calls made on its behalf (deadlines.py).

    It wraps every kind of method: unary, client-, server- and bidi-streaming. With
    `handler_seconds`, a handler answering one message and running longer is cancelled
    (DEADLINE_EXCEEDED); one answering a stream (health's Watch) may run as long as its
    caller listens. With `max_calls`, a call arriving while that many are in flight (health's
    included) is refused at once (`_refusal`); gRPC's own limit (maximum_concurrent_rpcs) did
    the same before any interceptor, so no metric counted what an overloaded server refused.
    """

    def __init__(
        self, gate: Gate, handler_seconds: float | None = None, max_calls: int | None = None
    ) -> None:
        self._gate = gate
        self._seconds = handler_seconds
        self._max_calls = max_calls
        self._calls = 0

    def _ended(self, _call: asyncio.Task[Any]) -> None:
        self._calls -= 1

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[_Req, _Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Req, _Resp] | None:
        started = time.perf_counter()
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if self._max_calls is not None:
            if self._calls >= self._max_calls:
                return _refusal(method, started)
            # Counted until the call's task ends (grpc.aio runs each call in one, this included),
            # however it ends: a caller gone before its handler ran too.
            self._calls += 1
            cast(asyncio.Task[Any], asyncio.current_task()).add_done_callback(self._ended)
        decode = _lenient(handler.request_deserializer)
        encode = handler.response_serializer
        if handler.unary_unary:
            behaviour = _bounded(method, cast(_Handler, handler.unary_unary), self._seconds)
            return grpc.unary_unary_rpc_method_handler(
                _guard(method, behaviour, self._gate), decode, encode
            )
        if handler.stream_unary:
            behaviour = _bounded(method, cast(_Handler, handler.stream_unary), self._seconds)
            return grpc.stream_unary_rpc_method_handler(
                _guard(method, behaviour, self._gate, streaming=True),
                decode,
                encode,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _guard_replies(method, handler.unary_stream, self._gate, streaming=False),
                decode,
                encode,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _guard_replies(method, handler.stream_stream, self._gate, streaming=True),
                decode,
                encode,
            )
        return handler


def caller() -> Principal:
    """The principal the gate admitted for this call; a method whose rule admits callers
    without a token (public, or services by certificate) has none."""
    principal = _CALLER.get()
    if principal is None:
        raise errors.Unauthenticated("this call needs a signed-in caller")
    return principal


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return ((AUTHORIZATION, f"Bearer {token}"),)


Registration = Callable[[grpc.aio.Server], None]


@dataclass(frozen=True)
class ServerLimits:
    """How much one process takes on at once, and for how long."""

    # Calls in flight at once; the server answers RESOURCE_EXHAUSTED past it (health included).
    max_concurrent_rpcs: int | None = None
    # A handler still running after this is cancelled; its caller gets DEADLINE_EXCEEDED.
    handler_seconds: float | None = None
    # A caller's connection is closed after about this long (gRPC adds ±10 %), its calls in
    # flight let finish: the caller connects again and resolves the service's name anew, so
    # replicas started since the caller connected get their share of its calls.
    connection_seconds: float | None = None

    @classmethod
    def of(cls, settings: ServiceSettings) -> ServerLimits:
        return cls(
            settings.grpc_max_concurrent_rpcs,
            settings.grpc_handler_seconds,
            settings.grpc_connection_seconds,
        )

    def options(self) -> list[tuple[str, int]]:
        if self.connection_seconds is None:
            return []
        aged = [("grpc.max_connection_age_ms", round(self.connection_seconds * 1000))]
        if self.handler_seconds is None:
            return aged  # gRPC's default grace: calls in flight finish, however long
        # No call runs past the handler's limit anyway.
        return [*aged, ("grpc.max_connection_age_grace_ms", round(self.handler_seconds * 1000))]


class GrpcServer:
    """A grpc.aio server with health and reflection; health is SERVING only once started.

    With `tls` it serves mutual TLS only: no plaintext port is opened beside it.
    """

    def __init__(
        self,
        address: str,
        gate: Gate,
        register: Registration,
        *,
        max_message_bytes: int = 4 * 1024 * 1024,
        stream_window_bytes: int = 64 * 1024,
        tls: TlsConfig | None = None,
        limits: ServerLimits = ServerLimits(),
    ) -> None:
        # A message past the limit is refused by gRPC itself (RESOURCE_EXHAUSTED) before the
        # service holds it: a service that takes small messages says so. No BDP probing: it
        # grows each stream's receive window to megabytes, so uploads waiting for one of
        # docs' slots were buffered whole in the server (20 concurrent photos: +70 MiB, seen
        # once spans shifted the timing); the fixed window keeps them in the senders. Every
        # caller is in the cluster (the gateway, services), where the window is no limit.
        # `stream_window_bytes` is that fixed window: what a caller may send ahead of what the
        # handler has read. gRPC's 64 KiB suits messages; a stream of chunks goes at one
        # window per round trip, so a service receiving files takes a larger one.
        self._server = grpc.aio.server(
            # The interceptor holds the limit of calls in flight, not gRPC: gRPC's refusals
            # went unseen by the interceptor, and so by the metrics.
            interceptors=[
                DomainErrorInterceptor(gate, limits.handler_seconds, limits.max_concurrent_rpcs)
            ],
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.http2.bdp_probe", 0),
                ("grpc.http2.lookahead_bytes", stream_window_bytes),
                # gRPC shares a port by default (SO_REUSEPORT): a process of the last release
                # left running on the address got half the calls beside the new one, unseen.
                ("grpc.so_reuseport", 0),
                *limits.options(),
            ],
        )
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        register(self._server)
        service_names = gate.services
        self._names = (*service_names, "")
        reflection.enable_server_reflection(
            (
                *service_names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self._server,
        )
        try:
            self.port = (
                self._server.add_insecure_port(address)
                if tls is None
                else self._server.add_secure_port(address, server_credentials(tls))
            )
        except RuntimeError:
            # gRPC says only "Failed to bind", with the reason in its debug log.
            self.port = 0
        if self.port == 0:
            raise CannotStart(
                f"TAWASUL_GRPC_ADDRESS: cannot listen on {address} "
                "(in use, or not an address of this host)"
            )

    async def start(self) -> None:
        await self._set(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._server.start()

    async def serving(self, ready: bool) -> None:
        await self._set(
            health_pb2.HealthCheckResponse.SERVING
            if ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )

    async def stop(self, grace: float) -> None:
        await self.serving(False)
        await self._server.stop(grace)

    async def _set(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for name in self._names:
            await self._health.set(name, status)
