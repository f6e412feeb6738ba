"""A dependency's answer, translated into what this service's caller should see."""

from __future__ import annotations

import logging

import grpc
import pytest
from tawasul_platform import errors
from tawasul_platform.downstream import downstream, translate
from tawasul_platform.faults import is_conflict, is_transient
from tawasul_platform.grpc import to_status


def _answer(error: errors.DomainError | None, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """What a Tawasul service's client sees when the server raised `error`."""
    if error is None:
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "boom")
    status = to_status(error)
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        status.details,
    )


@pytest.mark.parametrize(
    "error",
    [
        errors.Unauthenticated("token expired"),
        errors.NotFound("no such document"),
        errors.FailedPrecondition("still being scanned"),
    ],
)
def test_a_refusal_passes_through_as_the_same_kind(error: errors.DomainError) -> None:
    status = to_status(error)
    translated = translate("docs", _answer(error, status.code))
    assert type(translated) is type(error)
    assert str(translated) == f"docs: {error}"


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        # Docs' gate refusing this service's certificate or the forwarded call's kind.
        (
            _answer(
                errors.PermissionDenied("only service intake may call this"),
                grpc.StatusCode.PERMISSION_DENIED,
            ),
            "only service intake may call this",
        ),
        # gRPC's own refusal past docs' limit of calls in flight: no rich status.
        (
            grpc.aio.AioRpcError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                "Concurrent RPC limit exceeded!",
            ),
            "Concurrent RPC limit exceeded!",
        ),
        (
            _answer(
                errors.ResourceExhausted("at most 3 calls a second from intake"),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            ),
            "at most 3 calls a second from intake",
        ),
    ],
)
def test_a_refusal_of_this_service_itself_is_an_outage_that_keeps_its_detail_inside(
    answer: grpc.aio.AioRpcError, detail: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A call made on the caller's behalf is refused because of this service (its identity
    toward docs, its share of docs' capacity), not because of the caller's request: the
    caller may retry, and learns nothing of how the services trust each other."""
    with caplog.at_level(logging.WARNING, logger="tawasul_platform.downstream"):
        translated = translate("docs", answer)
    assert isinstance(translated, errors.Unavailable)
    assert str(translated) == "docs is unavailable"
    # The operators learn what docs said.
    assert detail in caplog.text
    assert answer.code().name in caplog.text


def test_invalid_argument_keeps_its_field_violations() -> None:
    error = errors.InvalidArgument({"document_id": "not a document id", "mobile": "required"})
    translated = translate("docs", _answer(error, grpc.StatusCode.INVALID_ARGUMENT))
    assert isinstance(translated, errors.InvalidArgument)
    assert translated.violations == error.violations


def test_invalid_argument_without_violations_still_says_what() -> None:
    translated = translate("docs", _answer(None, grpc.StatusCode.INVALID_ARGUMENT))
    assert isinstance(translated, errors.InvalidArgument)
    assert translated.violations == {"request": "docs: boom"}


def test_already_exists_keeps_the_existing_resource() -> None:
    error = errors.AlreadyExists("an open request exists", existing="TW482913578")
    translated = translate("intake", _answer(error, grpc.StatusCode.ALREADY_EXISTS))
    assert isinstance(translated, errors.AlreadyExists)
    assert translated.existing == "TW482913578"


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_only_an_outage_is_unavailable(code: grpc.StatusCode) -> None:
    translated = translate("notify", _answer(None, code))
    assert isinstance(translated, errors.Unavailable)
    assert "notify" in str(translated)


async def test_aborted_is_a_conflict_to_try_again_not_a_bug_nor_the_callers_fault() -> None:
    """What a Tawasul server answers when PostgreSQL undid its transaction for a concurrent
    one's sake: the caller answers ABORTED in turn, a consumer applies the event again."""
    answer = _answer(None, grpc.StatusCode.ABORTED)
    with pytest.raises(errors.Conflict) as caught:
        async with downstream("docs"):
            raise answer
    assert caught.value.__cause__ is answer
    assert str(caught.value) == "docs: boom"
    assert is_conflict(caught.value)
    # Neither an outage (UNAVAILABLE) nor the event's fault (a DomainError is dead-lettered).
    assert not is_transient(caught.value)
    assert not isinstance(caught.value, errors.DomainError)


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.CANCELLED,
    ],
)
async def test_a_bug_stays_a_bug(code: grpc.StatusCode) -> None:
    answer = _answer(None, code)
    assert translate("docs", answer) is None
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async with downstream("docs"):
            raise answer
    assert caught.value is answer


async def test_the_context_manager_raises_the_translation_from_the_answer() -> None:
    answer = _answer(errors.NotFound("no such document"), grpc.StatusCode.NOT_FOUND)
    with pytest.raises(errors.NotFound) as caught:
        async with downstream("docs"):
            raise answer
    assert caught.value.__cause__ is answer
