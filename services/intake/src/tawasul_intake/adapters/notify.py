"""Sends one-time tracking codes through the notify service over gRPC.

A direct call, not an event: the code must not rest in clear on a topic or in a table.

The call is handed off, not awaited: only details that match get a code, so an answer that
waited for notify (an SMS gateway's round trip) or failed with it would tell a guesser which
request number, ID and mobile belong together. A code that could not be sent is logged; the
beneficiary, receiving nothing, asks again.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from tawasul.notify.v1 import notify_pb2, notify_pb2_grpc
from tawasul_platform.deadlines import call_timeout

from tawasul_intake.domain.model import Request

log = logging.getLogger(__name__)


class GrpcCodeSender:
    def __init__(self, channel: grpc.aio.Channel, *, deadline_seconds: float) -> None:
        self._stub = notify_pb2_grpc.NotifyServiceStub(channel)
        self._deadline = deadline_seconds
        self._sending: set[asyncio.Task[None]] = set()

    async def send(self, *, request: Request, code: str, valid_minutes: int) -> None:
        message = notify_pb2.SendOneTimeCodeRequest(
            request_id=str(request.id),
            mobile=request.contact.mobile,
            code=code,
            locale=request.contact.locale.value,
            valid_minutes=valid_minutes,
        )
        task = asyncio.get_running_loop().create_task(self._send(message))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, message: notify_pb2.SendOneTimeCodeRequest) -> None:
        try:
            await self._stub.SendOneTimeCode(message, timeout=call_timeout(self._deadline))
        except grpc.aio.AioRpcError as exc:
            # Neither the code nor the mobile: the request id is enough to look into it.
            log.warning(
                "tracking code for request %s not sent: notify answered %s",
                message.request_id,
                exc.code().name,
            )
        except Exception:
            log.exception("tracking code for request %s not sent", message.request_id)

    async def drain(self) -> None:
        """Waits for the codes being sent (at shutdown, before the channel closes)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
