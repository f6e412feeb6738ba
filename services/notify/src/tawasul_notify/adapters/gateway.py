"""The SMS provider's HTTP API.

POST /v1/messages {from, to, text, reference} with an Idempotency-Key header -> 201 {id, status}
(200 with the same id when the key was seen before: the provider does not send twice);
GET /v1/messages/<id> -> {status: "delivered", ...}, the delivery receipt; GET /v1/health.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tawasul_notify.app.ports import ChannelUnavailable
from tawasul_notify.domain.model import Channel, Outgoing, SendOutcome

PATH = "/v1/messages"
# Client errors that say "later", not "never".
_RETRYABLE = frozenset({408, 425, 429})
# Receipts asked for at once.
_RECEIPT_CONCURRENCY = 8


class HttpSmsGateway:
    """Uses a shared httpx.AsyncClient whose base_url, credentials and timeout come from
    bootstrap."""

    def __init__(self, client: httpx.AsyncClient, *, sender: str) -> None:
        self._client = client
        self._sender = sender

    @property
    def channel(self) -> Channel:
        return Channel.SMS

    async def send(self, message: Outgoing) -> SendOutcome:
        try:
            response = await self._client.post(
                PATH,
                json={
                    "from": self._sender,
                    "to": message.to,
                    "text": message.text,
                    "reference": message.key,
                },
                headers={"Idempotency-Key": message.key},
            )
        except httpx.HTTPError as exc:
            raise ChannelUnavailable(f"SMS gateway unreachable: {exc!r}") from exc
        code = response.status_code
        if code >= 500 or code in _RETRYABLE or code < 200 or 300 <= code < 400:
            raise ChannelUnavailable(f"SMS gateway answered {code}")
        if code in (401, 403):
            # Our credentials, not the message: an outage until someone fixes them.
            raise ChannelUnavailable(f"SMS gateway refused our credentials ({code})")
        if code >= 400:
            return SendOutcome(accepted=False, detail=f"{code}: {response.text[:300]}")
        body = _json(response)
        status = str(body.get("status", "accepted"))
        return SendOutcome(
            accepted=status == "accepted",
            provider_message_id=str(body.get("id", "")),
            detail="" if status == "accepted" else f"gateway status {status!r}",
        )

    async def healthy(self) -> bool:
        try:
            response = await self._client.get("/v1/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def delivered(self, provider_message_ids: list[str]) -> set[str]:
        limit = asyncio.Semaphore(_RECEIPT_CONCURRENCY)

        async def receipt(message_id: str) -> str | None:
            async with limit:
                try:
                    response = await self._client.get(f"{PATH}/{message_id}")
                except httpx.HTTPError as exc:
                    raise ChannelUnavailable(f"SMS gateway unreachable: {exc!r}") from exc
            if response.status_code != 200:
                return None
            return message_id if _json(response).get("status") == "delivered" else None

        found = await asyncio.gather(*(receipt(m) for m in provider_message_ids if m))
        return {m for m in found if m is not None}


def _json(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; an unreadable body of a 2xx still means the SMS was taken."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
