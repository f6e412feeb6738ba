"""Sends one-time tracking codes through the notify service over gRPC.

A direct call, not an event: the code must not rest in clear on a topic or in a table.
"""

from __future__ import annotations

import grpc
from tawasul.notify.v1 import notify_pb2, notify_pb2_grpc
from tawasul_platform.deadlines import call_timeout
from tawasul_platform.downstream import downstream

from tawasul_intake.domain.model import Request


class GrpcCodeSender:
    def __init__(self, channel: grpc.aio.Channel, *, deadline_seconds: float) -> None:
        self._stub = notify_pb2_grpc.NotifyServiceStub(channel)
        self._deadline = deadline_seconds

    async def send(self, *, request: Request, code: str, valid_minutes: int) -> None:
        async with downstream("notify"):
            await self._stub.SendOneTimeCode(
                notify_pb2.SendOneTimeCodeRequest(
                    request_id=str(request.id),
                    mobile=request.contact.mobile,
                    code=code,
                    locale=request.contact.locale.value,
                    valid_minutes=valid_minutes,
                ),
                timeout=call_timeout(self._deadline),
            )
