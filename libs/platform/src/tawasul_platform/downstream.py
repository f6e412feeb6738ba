"""Errors of the services this one calls, translated once into the errors its caller sees.

A refusal from a dependency is usually the caller's own problem passed along: their token
does not reach the document (PERMISSION_DENIED), the document is gone (NOT_FOUND). Calling
every such answer an outage (UNAVAILABLE) invites a retry that can never succeed. Only a
dependency that cannot answer now is an outage; a dependency answering INTERNAL or UNKNOWN,
or a code this service should never provoke, is a bug and stays one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import grpc

from tawasul_platform import errors
from tawasul_platform.grpc import existing_resource, field_violations

_Translate = Callable[[str, grpc.aio.AioRpcError], errors.DomainError]


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


def _plain(kind: type[errors.DomainError]) -> _Translate:
    return lambda service, error: kind(_message(service, error))


_TRANSLATIONS: dict[grpc.StatusCode, _Translate] = {
    grpc.StatusCode.UNAUTHENTICATED: _plain(errors.Unauthenticated),
    grpc.StatusCode.PERMISSION_DENIED: _plain(errors.PermissionDenied),
    grpc.StatusCode.NOT_FOUND: _plain(errors.NotFound),
    grpc.StatusCode.INVALID_ARGUMENT: _invalid,
    grpc.StatusCode.FAILED_PRECONDITION: _plain(errors.FailedPrecondition),
    grpc.StatusCode.ALREADY_EXISTS: _exists,
    grpc.StatusCode.RESOURCE_EXHAUSTED: _plain(errors.ResourceExhausted),
    grpc.StatusCode.UNAVAILABLE: _outage,
    grpc.StatusCode.DEADLINE_EXCEEDED: _outage,
}


def translate(service: str, error: grpc.aio.AioRpcError) -> errors.DomainError | None:
    """The DomainError for a dependency's answer, or None when the answer is a bug."""
    translation = _TRANSLATIONS.get(error.code())
    return translation(service, error) if translation else None


@asynccontextmanager
async def downstream(service: str) -> AsyncIterator[None]:
    """Calls to `service` inside raise DomainErrors; a bug's AioRpcError is raised as it is
    (the interceptor logs it and answers INTERNAL).

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
