"""Errors of the services this one calls, translated once into the errors its caller sees.

A refusal from a dependency is usually the caller's own problem passed along: their token
expired (UNAUTHENTICATED), the document is gone or not theirs (NOT_FOUND), a field is wrong
(INVALID_ARGUMENT). Calling every such answer an outage (UNAVAILABLE) invites a retry that
can never succeed. A dependency that cannot answer now is an outage; a dependency answering
INTERNAL or UNKNOWN, or a code this service should never provoke, is a bug and stays one.

PERMISSION_DENIED and RESOURCE_EXHAUSTED are outages too: every call made through here
(intake's and review's to docs) forwards the caller's token to a method any signed-in caller
may call, and docs answers a document the caller may not read as NOT_FOUND. Either refusal
there is about this service, not the caller's request: its certificate or kind of call
refused, its share of the dependency's capacity spent (gRPC's limit of calls in flight
answers RESOURCE_EXHAUSTED). The caller may retry; what was refused is logged, not told.

ABORTED is what a Tawasul server answers when PostgreSQL undid its transaction for a
concurrent one's sake: a conflict (errors.Conflict), as one here would be, so this service
answers ABORTED in turn and a consumer applies its event again instead of dead-lettering it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import grpc

from tawasul_platform import errors
from tawasul_platform.grpc import existing_resource, field_violations

log = logging.getLogger(__name__)

_Translate = Callable[[str, grpc.aio.AioRpcError], Exception]


def _message(service: str, error: grpc.aio.AioRpcError) -> str:
    # The dependency's message was written for callers (a DomainError's text); which service
    # said it helps whoever reads the answer.
    return f"{service}: {error.details() or error.code().name.lower()}"


def _invalid(service: str, error: grpc.aio.AioRpcError) -> errors.DomainError:
    return errors.InvalidArgument(field_violations(error) or {"request": _message(service, error)})


def _exists(service: str, error: grpc.aio.AioRpcError) -> errors.DomainError:
    return errors.AlreadyExists(_message(service, error), existing=existing_resource(error))


def _outage(service: str, error: grpc.aio.AioRpcError) -> errors.DomainError:
    return errors.Unavailable(f"{service} is unavailable ({error.code().name})")


def _conflict(service: str, error: grpc.aio.AioRpcError) -> Exception:
    return errors.Conflict(_message(service, error))


def _refused_us(service: str, error: grpc.aio.AioRpcError) -> errors.DomainError:
    # How this service stands with the dependency is the operators' business, not the caller's.
    log.warning("%s refused this service: %s %s", service, error.code().name, error.details())
    return errors.Unavailable(f"{service} is unavailable")


def _plain(kind: type[errors.DomainError]) -> _Translate:
    return lambda service, error: kind(_message(service, error))


_TRANSLATIONS: dict[grpc.StatusCode, _Translate] = {
    grpc.StatusCode.UNAUTHENTICATED: _plain(errors.Unauthenticated),
    grpc.StatusCode.PERMISSION_DENIED: _refused_us,
    grpc.StatusCode.NOT_FOUND: _plain(errors.NotFound),
    grpc.StatusCode.INVALID_ARGUMENT: _invalid,
    grpc.StatusCode.FAILED_PRECONDITION: _plain(errors.FailedPrecondition),
    grpc.StatusCode.ALREADY_EXISTS: _exists,
    grpc.StatusCode.RESOURCE_EXHAUSTED: _refused_us,
    grpc.StatusCode.UNAVAILABLE: _outage,
    grpc.StatusCode.DEADLINE_EXCEEDED: _outage,
    grpc.StatusCode.ABORTED: _conflict,
}


def translate(service: str, error: grpc.aio.AioRpcError) -> Exception | None:
    """The DomainError (or errors.Conflict) for a dependency's answer, or None when the answer
    is a bug."""
    translation = _TRANSLATIONS.get(error.code())
    return translation(service, error) if translation else None


@asynccontextmanager
async def downstream(service: str) -> AsyncIterator[None]:
    """Calls to `service` inside raise DomainErrors (or errors.Conflict); a bug's AioRpcError
    is raised as it is (the interceptor logs it and answers INTERNAL).

        async with downstream("docs"):
            answer = await stub.GetDocument(request, timeout=call_timeout(deadline))
    """
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        translated = translate(service, exc)
        if translated is None:
            raise
        raise translated from exc
