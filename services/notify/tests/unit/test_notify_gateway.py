"""The HTTP SMS gateway adapter's reading of status codes, against a pool that answers
in-process (test_http1 holds the pool itself to real connections; the service tier runs both
against the development gateway)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from pydantic import ValidationError
from sqlalchemy import String
from tawasul_notify.adapters.gateway import MESSAGE_ID_MOST, HttpSmsGateway
from tawasul_notify.adapters.http1 import HttpError
from tawasul_notify.adapters.tables import deliveries
from tawasul_notify.app.ports import ChannelUnavailable
from tawasul_notify.domain.model import Outgoing
from tawasul_notify.settings import NotifySettings

MESSAGE = Outgoing(to="+966512345678", text="مرحبا", key="key-1")


@dataclass(frozen=True)
class Sent:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


Answer = Callable[[Sent], tuple[int, bytes]]


class Answering:
    """A pool whose every request `answer` answers, with no connection."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        timeout_seconds: float,
    ) -> tuple[int, bytes]:
        assert timeout_seconds == 1.0
        return self._answer(Sent(method, target, dict(headers), body))


def reply(status: int, body: object = None) -> tuple[int, bytes]:
    return status, b"" if body is None else json.dumps(body).encode()


def gateway(answer: Answer) -> HttpSmsGateway:
    return HttpSmsGateway(
        Answering(answer),
        sender="Tawasul",
        timeout_seconds=1.0,
        credentials=("sms-user", "sms-password"),
    )


async def test_an_accepted_message_carries_its_idempotency_key_and_credentials() -> None:
    seen: list[Sent] = []

    def answer(sent: Sent) -> tuple[int, bytes]:
        seen.append(sent)
        return reply(201, {"id": "prov-1", "status": "accepted"})

    outcome = await gateway(answer).send(MESSAGE)
    assert (outcome.accepted, outcome.provider_message_id) == (True, "prov-1")
    [sent] = seen
    assert (sent.method, sent.target) == ("POST", "/v1/messages")
    assert sent.headers == {
        "Accept": "application/json",
        "Authorization": "Basic " + base64.b64encode(b"sms-user:sms-password").decode(),
        "Content-Type": "application/json",
        "Idempotency-Key": "key-1",
    }
    assert json.loads(sent.body) == {
        "from": "Tawasul",
        "to": "+966512345678",
        "text": "مرحبا",
        "reference": "key-1",
    }


async def test_a_client_error_is_a_refusal_not_a_retry() -> None:
    outcome = await gateway(lambda _: reply(400, {"error": "bad"})).send(MESSAGE)
    assert not outcome.accepted
    assert outcome.detail == "400: refused by the SMS provider (Bad Request)"


@pytest.mark.parametrize(
    "body",
    [
        {"error": "text too long: 'Your Tawasul code is 482913'", "code": "482913"},
        "Unprocessable: Your Tawasul code is 482913 for +966512345678",
    ],
    ids=["json", "text"],
)
async def test_a_refusal_keeps_no_word_of_the_providers_answer(body: object) -> None:
    """A provider may echo the message, a one-time code or a number in it: the delivery's
    error, which staff read, says the status and a fixed reason, nothing the provider wrote."""
    answer = json.dumps(body).encode() if isinstance(body, dict) else str(body).encode()
    outcome = await gateway(lambda _: (422, answer)).send(MESSAGE)
    assert not outcome.accepted
    assert outcome.detail == "422: refused by the SMS provider (Unprocessable Entity)"
    outcome = await gateway(lambda _: (499, answer)).send(MESSAGE)
    assert outcome.detail == "499: refused by the SMS provider"


@pytest.mark.parametrize("code", [500, 503, 429, 401])
async def test_server_errors_throttling_and_our_credentials_are_retried(code: int) -> None:
    with pytest.raises(ChannelUnavailable, match=str(code)):
        await gateway(lambda _: reply(code)).send(MESSAGE)


@pytest.mark.parametrize(
    "error", [HttpError("refused"), TimeoutError(), ConnectionResetError()], ids=repr
)
async def test_an_unreachable_gateway_is_retried_and_unhealthy(error: Exception) -> None:
    def answer(sent: Sent) -> tuple[int, bytes]:
        raise error

    with pytest.raises(ChannelUnavailable, match="unreachable"):
        await gateway(answer).send(MESSAGE)
    assert not await gateway(answer).healthy()


async def test_an_unreadable_answer_to_a_sent_message_still_means_it_was_taken() -> None:
    outcome = await gateway(lambda _: (201, b"<html>")).send(MESSAGE)
    assert (outcome.accepted, outcome.provider_message_id) == (True, "")


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        ("rejected", "gateway status 'rejected'"),
        ("rejected: Your Tawasul code is 482913", "gateway status not understood"),
        ("x" * 33, "gateway status not understood"),
    ],
)
async def test_a_status_other_than_accepted_is_a_refusal_in_a_word_of_the_providers(
    status: str, detail: str
) -> None:
    outcome = await gateway(lambda _: reply(201, {"id": "prov-1", "status": status})).send(MESSAGE)
    assert (outcome.accepted, outcome.provider_message_id, outcome.detail) == (False, "", detail)


async def test_a_message_id_too_long_to_keep_is_taken_without_one() -> None:
    column = deliveries.c.provider_message_id.type
    assert isinstance(column, String)
    assert column.length == MESSAGE_ID_MOST
    longest = "p" * MESSAGE_ID_MOST
    outcome = await gateway(lambda _: reply(201, {"id": longest, "status": "accepted"})).send(
        MESSAGE
    )
    assert (outcome.accepted, outcome.provider_message_id) == (True, longest)
    outcome = await gateway(lambda _: reply(201, {"id": longest + "p", "status": "accepted"})).send(
        MESSAGE
    )
    assert (outcome.accepted, outcome.provider_message_id) == (True, "")


async def test_receipts_name_the_messages_delivered_and_those_never_to_be() -> None:
    asked: list[str] = []

    def answer(sent: Sent) -> tuple[int, bytes]:
        asked.append(sent.target)
        message_id = sent.target.rsplit("/", 1)[-1]
        if message_id == "gone":
            return reply(404)
        status = {"a": "delivered", "c": "undelivered", "d": "<script>"}.get(message_id, "sent")
        return reply(200, {"id": message_id, "status": status})

    assert await gateway(answer).settled(["a", "b", "c", "d", "gone", "", "x/y z"]) == {
        "a": "delivered",
        "c": "undelivered",
    }
    # A provider's id is one segment of the path, whatever it holds.
    assert sorted(asked) == sorted(
        [
            "/v1/messages/a",
            "/v1/messages/b",
            "/v1/messages/c",
            "/v1/messages/d",
            "/v1/messages/gone",
            "/v1/messages/x%2Fy%20z",
        ]
    )


@pytest.mark.parametrize("status", [["delivered"], {"delivered": True}, None, 1, True])
async def test_a_receipt_whose_status_is_not_a_word_is_no_receipt_yet(status: object) -> None:
    """One malformed receipt must not fail the batch: the others are still reported."""

    def answer(sent: Sent) -> tuple[int, bytes]:
        message_id = sent.target.rsplit("/", 1)[-1]
        said = "delivered" if message_id == "a" else status
        return reply(200, {"id": message_id, "status": said})

    assert await gateway(answer).settled(["a", "b"]) == {"a": "delivered"}


@pytest.mark.parametrize(
    "interval", ["receipts_seconds", "sms_timeout_seconds", "smtp_timeout_seconds"]
)
def test_an_interval_of_zero_is_refused_at_start(interval: str) -> None:
    # Zero receipts_seconds would ask the provider without a pause, forever.
    with pytest.raises(ValidationError) as caught:
        NotifySettings.model_validate(
            {
                "database_url": "postgresql+asyncpg://x/y",
                "kafka_bootstrap": "127.0.0.1:1",
                "grpc_address": "127.0.0.1:0",
                "identity_issuers": [],
                "sms_gateway_url": "http://x",
                interval: 0,
            }
        )
    assert [e["loc"] for e in caught.value.errors()] == [(interval,)]
