"""The SMS provider's HTTP API.

POST /v1/messages {from, to, text, reference} with an Idempotency-Key header -> 201 {id, status}
(200 with the same id when the key was seen before: the provider does not send twice);
GET /v1/messages/<id> -> {status: "delivered" | "undelivered" | ..., ...}, the delivery
receipt; GET /v1/health.

Requests go through a pool of kept-alive HTTP/1.1 connections (adapters.http1): each message
and each receipt is a request, on the process that sends every SMS.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import quote

from tawasul_notify.adapters.http1 import HttpError
from tawasul_notify.app.ports import DELIVERED, ChannelUnavailable
from tawasul_notify.domain.model import Channel, Outgoing, SendOutcome

PATH = "/v1/messages"
# Client errors that say "later", not "never".
_RETRYABLE = frozenset({408, 425, 429})
# A receipt's final words: reached the handset, or never will (the provider gave up on it).
_FINAL = frozenset({DELIVERED, "undelivered", "undeliverable", "failed", "expired", "rejected"})
# Receipts asked for at once.
_RECEIPT_CONCURRENCY = 8
# What the pool raises when the provider cannot be reached or answers nonsense.
_UNREACHABLE = (HttpError, TimeoutError, OSError)
# The longest provider id a delivery's row keeps (its column's length).
MESSAGE_ID_MOST = 200
_STATUS = re.compile(r"[a-z_]{1,32}")
log = logging.getLogger(__name__)


class Pool(Protocol):
    """Connections to the provider (adapters.http1.Http1Pool); targets relative to its URL."""

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        timeout_seconds: float,
    ) -> tuple[int, bytes]: ...


class HttpSmsGateway:
    """Sends through `pool`, which bootstrap builds and closes."""

    def __init__(
        self,
        pool: Pool,
        *,
        sender: str,
        timeout_seconds: float,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._pool = pool
        self._sender = sender
        self._timeout = timeout_seconds
        self._headers = [("Accept", "application/json")]
        if credentials:
            token = base64.b64encode(":".join(credentials).encode()).decode()
            self._headers.append(("Authorization", f"Basic {token}"))

    @property
    def channel(self) -> Channel:
        return Channel.SMS

    async def send(self, message: Outgoing) -> SendOutcome:
        body = json.dumps(
            {
                "from": self._sender,
                "to": message.to,
                "text": message.text,
                "reference": message.key,
            },
            ensure_ascii=False,
        ).encode()
        code, answer = await self._request(
            "POST",
            PATH,
            body,
            [("Content-Type", "application/json"), ("Idempotency-Key", message.key)],
        )
        if code >= 500 or code in _RETRYABLE or code < 200 or 300 <= code < 400:
            raise ChannelUnavailable(f"SMS gateway answered {code}")
        if code in (401, 403):
            # Our credentials, not the message: an outage until someone fixes them.
            raise ChannelUnavailable(f"SMS gateway refused our credentials ({code})")
        if code >= 400:
            # Never the provider's words: an answer may echo the message, and with it a
            # one-time code or a beneficiary's details, into an error staff read.
            return SendOutcome(accepted=False, detail=_refused(code))
        reply = _json(answer)
        status = str(reply.get("status", "accepted"))
        if status != "accepted":
            # A word of the provider's, kept only when it is one: a longer answer may carry
            # the message into an error staff read.
            said = repr(status) if _STATUS.fullmatch(status) else "not understood"
            return SendOutcome(accepted=False, detail=f"gateway status {said}")
        message_id = str(reply.get("id", ""))
        if len(message_id) > MESSAGE_ID_MOST:
            # Taken all the same; only its receipt cannot be asked for.
            log.warning("SMS gateway's message id is %d characters long", len(message_id))
            message_id = ""
        return SendOutcome(accepted=True, provider_message_id=message_id)

    async def healthy(self) -> bool:
        try:
            code, _ = await self._request("GET", "/v1/health")
        except ChannelUnavailable:
            return False
        return code == 200

    async def settled(self, provider_message_ids: list[str]) -> dict[str, str]:
        limit = asyncio.Semaphore(_RECEIPT_CONCURRENCY)

        async def receipt(message_id: str) -> tuple[str, str] | None:
            async with limit:
                code, answer = await self._request("GET", f"{PATH}/{quote(message_id, safe='')}")
            if code != 200:
                return None
            status = _json(answer).get("status")
            # Anything but one of the final words is no receipt yet: a list or an object would
            # not even be looked up (unhashable), and would fail the whole batch.
            if isinstance(status, str) and status in _FINAL:
                return message_id, status
            return None

        found = await asyncio.gather(*(receipt(m) for m in provider_message_ids if m))
        return dict(f for f in found if f is not None)

    async def _request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
    ) -> tuple[int, bytes]:
        try:
            return await self._pool.request(
                method,
                path,
                headers=[*self._headers, *headers],
                body=body,
                timeout_seconds=self._timeout,
            )
        except _UNREACHABLE as exc:
            raise ChannelUnavailable(f"SMS gateway unreachable: {exc!r}") from exc


def _refused(code: int) -> str:
    """What a refusal says, whatever the provider's answer said: its status code and the
    code's standard phrase, e.g. "400: refused by the SMS provider (Bad Request)"."""
    try:
        return f"{code}: refused by the SMS provider ({HTTPStatus(code).phrase})"
    except ValueError:
        return f"{code}: refused by the SMS provider"


def _json(body: bytes) -> dict[str, Any]:
    """The answer's JSON object; an unreadable body of a 2xx still means the SMS was taken."""
    try:
        found = json.loads(body)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
