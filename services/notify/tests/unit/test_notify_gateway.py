"""The HTTP SMS gateway adapter's reading of status codes, against a connection pool that
answers in-process (the service tier runs it against the development gateway itself)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterable, Callable

import httpcore
import pytest
from tawasul_notify.adapters.gateway import HttpSmsGateway
from tawasul_notify.app.ports import ChannelUnavailable
from tawasul_notify.domain.model import Outgoing

MESSAGE = Outgoing(to="+966512345678", text="مرحبا", key="key-1")
Answer = Callable[[httpcore.Request, bytes], httpcore.Response]


class Answering(httpcore.AsyncConnectionPool):
    """A pool whose every request (and its body) `answer` answers, with no connection."""

    def __init__(self, answer: Answer) -> None:
        super().__init__()
        self._answer = answer

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        assert isinstance(request.stream, AsyncIterable)
        return self._answer(request, b"".join([chunk async for chunk in request.stream]))


def reply(status: int, body: object = None) -> httpcore.Response:
    return httpcore.Response(status, content=b"" if body is None else json.dumps(body).encode())


def gateway(answer: Answer) -> HttpSmsGateway:
    return HttpSmsGateway(
        Answering(answer),
        base_url="http://sms.test/",
        sender="Tawasul",
        timeout_seconds=1.0,
        credentials=("sms-user", "sms-password"),
    )


async def test_an_accepted_message_carries_its_idempotency_key_and_credentials() -> None:
    seen: list[tuple[httpcore.Request, bytes]] = []

    def answer(request: httpcore.Request, body: bytes) -> httpcore.Response:
        seen.append((request, body))
        return reply(201, {"id": "prov-1", "status": "accepted"})

    outcome = await gateway(answer).send(MESSAGE)
    assert (outcome.accepted, outcome.provider_message_id) == (True, "prov-1")
    [(request, body)] = seen
    assert (request.method, request.url) == (b"POST", httpcore.URL("http://sms.test/v1/messages"))
    headers = {k.decode(): v.decode() for k, v in request.headers}
    assert headers["Idempotency-Key"] == "key-1"
    assert headers["Host"] == "sms.test"
    assert (
        headers["Authorization"] == "Basic " + base64.b64encode(b"sms-user:sms-password").decode()
    )
    assert json.loads(body) == {
        "from": "Tawasul",
        "to": "+966512345678",
        "text": "مرحبا",
        "reference": "key-1",
    }


async def test_a_client_error_is_a_refusal_not_a_retry() -> None:
    outcome = await gateway(lambda *_: reply(400, {"error": "bad"})).send(MESSAGE)
    assert not outcome.accepted
    assert outcome.detail == '400: {"error": "bad"}'


@pytest.mark.parametrize("code", [500, 503, 429, 401])
async def test_server_errors_throttling_and_our_credentials_are_retried(code: int) -> None:
    with pytest.raises(ChannelUnavailable, match=str(code)):
        await gateway(lambda *_: reply(code)).send(MESSAGE)


@pytest.mark.parametrize(
    "error",
    [httpcore.ConnectError("refused"), httpcore.ReadTimeout("slow"), ConnectionResetError()],
)
async def test_an_unreachable_gateway_is_retried_and_unhealthy(error: Exception) -> None:
    def answer(request: httpcore.Request, body: bytes) -> httpcore.Response:
        raise error

    with pytest.raises(ChannelUnavailable, match="unreachable"):
        await gateway(answer).send(MESSAGE)
    assert not await gateway(answer).healthy()


async def test_an_unreadable_answer_to_a_sent_message_still_means_it_was_taken() -> None:
    outcome = await gateway(lambda *_: httpcore.Response(201, content=b"<html>")).send(MESSAGE)
    assert (outcome.accepted, outcome.provider_message_id) == (True, "")


async def test_receipts_name_the_delivered_messages() -> None:
    def answer(request: httpcore.Request, body: bytes) -> httpcore.Response:
        message_id = request.url.target.decode().rsplit("/", 1)[-1]
        if message_id == "gone":
            return reply(404)
        status = "delivered" if message_id == "a" else "accepted"
        return reply(200, {"id": message_id, "status": status})

    assert await gateway(answer).delivered(["a", "b", "gone", ""]) == {"a"}
