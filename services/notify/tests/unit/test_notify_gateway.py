"""The HTTP SMS gateway adapter's reading of status codes, against an in-process httpx
transport (the service tier runs it against the development gateway itself)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from tawasul_notify.adapters.gateway import HttpSmsGateway
from tawasul_notify.app.ports import ChannelUnavailable
from tawasul_notify.domain.model import Outgoing

MESSAGE = Outgoing(to="+966512345678", text="مرحبا", key="key-1")


def gateway(answer: Callable[[httpx.Request], httpx.Response]) -> HttpSmsGateway:
    client = httpx.AsyncClient(
        base_url="http://sms.test", transport=httpx.MockTransport(answer), timeout=1.0
    )
    return HttpSmsGateway(client, sender="Tawasul")


async def test_an_accepted_message_carries_its_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "prov-1", "status": "accepted"})

    outcome = await gateway(answer).send(MESSAGE)
    assert (outcome.accepted, outcome.provider_message_id) == (True, "prov-1")
    [request] = seen
    assert (request.method, str(request.url)) == ("POST", "http://sms.test/v1/messages")
    assert request.headers["Idempotency-Key"] == "key-1"
    assert json.loads(request.content) == {
        "from": "Tawasul",
        "to": "+966512345678",
        "text": "مرحبا",
        "reference": "key-1",
    }


async def test_a_client_error_is_a_refusal_not_a_retry() -> None:
    outcome = await gateway(lambda _: httpx.Response(400, json={"error": "bad"})).send(MESSAGE)
    assert not outcome.accepted
    assert outcome.detail.startswith("400: ")


@pytest.mark.parametrize("code", [500, 503, 429, 401])
async def test_server_errors_throttling_and_our_credentials_are_retried(code: int) -> None:
    with pytest.raises(ChannelUnavailable, match=str(code)):
        await gateway(lambda _: httpx.Response(code)).send(MESSAGE)


async def test_a_network_error_is_retried() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ChannelUnavailable):
        await gateway(answer).send(MESSAGE)


async def test_receipts_name_the_delivered_messages() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        message_id = request.url.path.rsplit("/", 1)[-1]
        if message_id == "gone":
            return httpx.Response(404)
        status = "delivered" if message_id == "a" else "accepted"
        return httpx.Response(200, json={"id": message_id, "status": status})

    assert await gateway(answer).delivered(["a", "b", "gone", ""]) == {"a"}
