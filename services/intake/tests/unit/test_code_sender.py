"""StartTracking says nothing about whether the details matched: not in its answer, and not
in how long it takes. Only a match sends a code, so sending must not hold up the answer or
change it (a slow or failing notify would otherwise tell a guesser which details match)."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from tawasul.notify.v1 import notify_pb2
from tawasul_intake.adapters.notify import GrpcCodeSender
from tawasul_intake.domain.model import Contact


class Outage(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.UNAVAILABLE,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            details="notify is down",
        )


class Notify:
    """NotifyService's stub: answers when `answer` is set, or fails with `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.answer = asyncio.Event()
        self.error = error
        self.asked: list[notify_pb2.SendOneTimeCodeRequest] = []

    async def SendOneTimeCode(
        self,
        request: notify_pb2.SendOneTimeCodeRequest,
        timeout: float,  # noqa: ASYNC109
    ) -> notify_pb2.SendOneTimeCodeResponse:
        self.asked.append(request)
        if self.error is not None:
            raise self.error
        await self.answer.wait()
        return notify_pb2.SendOneTimeCodeResponse(delivery_id=str(uuid.uuid4()))


def sender(notify: Notify) -> GrpcCodeSender:
    built = GrpcCodeSender(grpc.aio.insecure_channel("localhost:1"), deadline_seconds=5)
    stub: Any = notify
    built._stub = stub
    return built


def request() -> Any:
    """What the sender reads of a request."""
    return SimpleNamespace(id=uuid.uuid4(), contact=Contact(mobile="+966551234567"))


async def test_a_slow_notify_does_not_hold_up_the_answer() -> None:
    notify = Notify()
    codes = sender(notify)
    await asyncio.wait_for(codes.send(request=request(), code="123456", valid_minutes=5), 0.5)
    notify.answer.set()
    await codes.drain()
    assert [a.code for a in notify.asked] == ["123456"]
    assert notify.asked[0].mobile == "+966551234567"


async def test_a_failing_notify_does_not_change_the_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    codes = sender(Notify(error=Outage()))
    await codes.send(request=request(), code="654321", valid_minutes=5)
    await codes.drain()
    # The failure is logged, without the code or the mobile.
    assert "notify answered UNAVAILABLE" in caplog.text
    assert "654321" not in caplog.text
    assert "551234567" not in caplog.text
