"""The HTTP SMS gateway adapter against an in-process httpx transport (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from tawasul_notify.adapters.gateway import HttpSmsGateway
from tawasul_notify.app.ports import GatewayUnavailable


def gateway(answer: Callable[[httpx.Request], httpx.Response]) -> HttpSmsGateway:
    client = httpx.AsyncClient(
        base_url="http://sms.test", transport=httpx.MockTransport(answer), timeout=1.0
    )
    return HttpSmsGateway(client)


async def test_an_accepted_message() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "prov-1", "status": "accepted"})

    outcome = await gateway(answer).send(to="+966512345678", text="مرحبا", reference="ref-1")
    assert outcome.accepted
    assert outcome.provider_message_id == "prov-1"
    [request] = seen
    assert (request.method, str(request.url)) == ("POST", "http://sms.test/v1/messages")
    assert json.loads(request.content) == {
        "to": "+966512345678",
        "text": "مرحبا",
        "reference": "ref-1",
    }


async def test_a_client_error_is_a_refusal_not_a_retry() -> None:
    outcome = await gateway(lambda _: httpx.Response(400, json={"error": "bad"})).send(
        to="x", text="t", reference="r"
    )
    assert not outcome.accepted
    assert "400" in outcome.detail


@pytest.mark.parametrize("code", [500, 503, 429])
async def test_server_errors_and_throttling_are_retried(code: int) -> None:
    with pytest.raises(GatewayUnavailable):
        await gateway(lambda _: httpx.Response(code)).send(to="x", text="t", reference="r")


async def test_a_network_error_is_retried() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(GatewayUnavailable):
        await gateway(answer).send(to="x", text="t", reference="r")
