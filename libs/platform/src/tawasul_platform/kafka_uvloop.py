"""aiokafka under uvloop: a broker connection closed under a write is a connection error.

Writing to a connection the broker has closed raises OSError on asyncio's loop, which aiokafka
turns into KafkaConnectionError and recovers from (it reconnects). uvloop raises RuntimeError
("unable to perform operation on <TCPTransport closed=True ...>") instead, which aiokafka does
not catch (aio-libs/aiokafka#1038, open in 0.14). Met by a consumer group's coordination
routine, it ends the routine: the process lives on and the group never heartbeats or commits
again (seen when the broker restarted). `install` makes aiokafka see the error it handles.
"""

from __future__ import annotations

from typing import Any

from aiokafka.conn import AIOKafkaConnection, CloseReason
from aiokafka.errors import KafkaConnectionError, KafkaError

_send = AIOKafkaConnection.send


def _send_or_broken(self: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
    try:
        return _send(self, request, expect_response)
    except RuntimeError as err:
        # aiokafka's own errors are RuntimeErrors too.
        writer = self._writer
        if isinstance(err, KafkaError) or writer is None or not writer.transport.is_closing():
            raise
        self.close(reason=CloseReason.CONNECTION_BROKEN)
        raise KafkaConnectionError(f"Connection at {self.host}:{self.port} broken: {err}") from err


def install() -> None:
    """Idempotent; for processes that run aiokafka on uvloop."""
    AIOKafkaConnection.send = _send_or_broken
