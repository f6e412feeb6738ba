"""The SMS provider's HTTP API: POST /v1/messages {to, text, reference} -> 201 {id, status}."""

from __future__ import annotations

from typing import Any

import httpx

from tawasul_notify.app.ports import GatewayUnavailable
from tawasul_notify.domain.model import SendOutcome

PATH = "/v1/messages"
# Client errors that say "later", not "never".
_RETRYABLE = frozenset({408, 425, 429})


class HttpSmsGateway:
    """Uses a shared httpx.AsyncClient whose base_url and timeout come from bootstrap."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(self, *, to: str, text: str, reference: str) -> SendOutcome:
        try:
            response = await self._client.post(
                PATH, json={"to": to, "text": text, "reference": reference}
            )
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"SMS gateway unreachable: {exc!r}") from exc
        code = response.status_code
        if code >= 500 or code in _RETRYABLE or code < 200 or 300 <= code < 400:
            raise GatewayUnavailable(f"SMS gateway answered {code}")
        if code >= 400:
            return SendOutcome(accepted=False, detail=f"{code}: {response.text[:500]}")
        body = _json(response)
        status = str(body.get("status", "accepted"))
        return SendOutcome(
            accepted=status == "accepted",
            provider_message_id=str(body.get("id", "")),
            detail="" if status == "accepted" else f"gateway status {status!r}",
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; an unreadable body of a 2xx still means the SMS was taken."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
