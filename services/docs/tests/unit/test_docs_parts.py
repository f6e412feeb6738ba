"""The upload's stream as the handler reads it: its end is the caller's, or an error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from tawasul.docs.v1 import docs_pb2
from tawasul_docs.entrypoints.grpc import Context, _parts
from tawasul_platform.errors import DeadlineExceeded


class Remaining:
    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds

    def time_remaining(self) -> float | None:
        return self.seconds


async def sent(*chunks: bytes) -> AsyncIterator[docs_pb2.UploadDocumentRequest]:
    for chunk in chunks:
        yield docs_pb2.UploadDocumentRequest(chunk=chunk)


async def read(seconds: float | None) -> list[Any]:
    context = cast(Context, Remaining(seconds))
    return [part async for part in _parts(sent(b"%PDF-", b"1.7"), context)]


@pytest.mark.parametrize("seconds", [None, 0.5])
async def test_a_stream_the_caller_ended_gives_every_part(seconds: float | None) -> None:
    assert await read(seconds) == [b"%PDF-", b"1.7"]


@pytest.mark.parametrize("seconds", [0.0, -0.001])
async def test_a_stream_ended_by_the_caller_s_deadline_is_not_a_whole_file(seconds: float) -> None:
    """grpc.aio ends it as if the caller had half-closed it, and cancels the handler a few
    milliseconds later: the file read so far is cut, not complete."""
    with pytest.raises(DeadlineExceeded, match="deadline passed before the upload ended"):
        await read(seconds)
