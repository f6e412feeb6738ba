"""Notify's SMTP sender against a real SMTP server (aiosmtpd, in process) that refuses what the
test tells it to, the way mail servers do: in their own words, which often repeat the
recipient's address or a line of the message. What a delivery's error keeps is the reply's
code and a fixed reason; a refusal that says "later" or that is about us is retried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from tawasul_devstack.procs import free_port
from tawasul_notify.adapters.email import SmtpSender
from tawasul_notify.app.ports import ChannelUnavailable
from tawasul_notify.domain.model import Outgoing

ADDRESS = "citizen.482913@mail.example"
MESSAGE = Outgoing(to=ADDRESS, text="Your Tawasul code is 482913", key="key-1", subject="Tawasul")


@dataclass
class Refusing:
    """aiosmtpd's handler: answers MAIL, RCPT and DATA with the reply set for them."""

    replies: dict[str, str] = field(default_factory=dict)
    stored: list[Envelope] = field(default_factory=list)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.mail_from = address
        return self.replies.get("MAIL", "250 OK")

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.rcpt_tos.append(address)
        return self.replies.get("RCPT", "250 OK")

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self.replies.get("DATA", "250 OK")
        if reply.startswith("250"):
            self.stored.append(envelope)
        return reply


@dataclass
class Mail:
    handler: Refusing
    sender: SmtpSender


@pytest.fixture
async def mail() -> AsyncIterator[Mail]:
    handler = Refusing()
    loop = asyncio.get_running_loop()
    port = free_port()
    server = await loop.create_server(
        lambda: SMTP(handler, enable_SMTPUTF8=True, hostname="localhost", loop=loop),
        "127.0.0.1",
        port,
    )
    sender = SmtpSender(
        host="127.0.0.1", port=port, sender="no-reply@tawasul.example", timeout_seconds=5.0
    )
    try:
        yield Mail(handler, sender)
    finally:
        server.close()
        await server.wait_closed()


async def test_an_accepted_message_is_sent_under_its_delivery_key(mail: Mail) -> None:
    outcome = await mail.sender.send(MESSAGE)
    assert (outcome.accepted, outcome.provider_message_id) == (True, "<key-1@tawasul.notify>")
    [envelope] = mail.handler.stored
    assert envelope.rcpt_tos == [ADDRESS]


@pytest.mark.parametrize(
    ("command", "reply", "detail"),
    [
        (
            "RCPT",
            f"550 5.1.1 <{ADDRESS}>: Recipient address rejected: User unknown",
            "550: refused by the mail server (mailbox unavailable)",
        ),
        (
            "RCPT",
            f"553 5.1.3 <{ADDRESS}> is not a valid mailbox",
            "553: refused by the mail server (mailbox name not allowed)",
        ),
        (
            "DATA",
            "554 5.7.1 Message rejected as spam: 'Your Tawasul code is 482913'",
            "554: refused by the mail server (transaction failed)",
        ),
        (
            "DATA",
            f"557 5.7.0 {ADDRESS} does not take mail from you",
            "557: refused by the mail server",
        ),
    ],
    ids=["unknown user", "invalid mailbox", "spam", "unknown code"],
)
async def test_a_refusal_keeps_the_code_and_no_word_of_the_servers(
    mail: Mail, command: str, reply: str, detail: str
) -> None:
    mail.handler.replies[command] = reply
    outcome = await mail.sender.send(MESSAGE)
    assert (outcome.accepted, outcome.detail) == (False, detail)
    assert mail.handler.stored == []


@pytest.mark.parametrize(
    ("command", "reply", "error"),
    [
        (
            "RCPT",
            f"450 4.2.0 <{ADDRESS}>: Recipient address rejected: Greylisted, try again",
            "mail server answered 450",
        ),
        ("DATA", f"452 4.2.2 Mailbox of {ADDRESS} is full", "mail server answered 452"),
        ("MAIL", "530 5.7.0 Authentication required", "mail server refused us (530)"),
        (
            "MAIL",
            "550 5.7.1 Sender no-reply@tawasul.example refused",
            "mail server refused us (550)",
        ),
        ("DATA", "535 5.7.8 Authentication credentials invalid", "refused our credentials (535)"),
    ],
    ids=["greylisted", "mailbox full", "auth required", "sender refused", "credentials"],
)
async def test_a_refusal_for_now_or_of_us_is_retried_and_says_no_word_of_the_servers(
    mail: Mail, command: str, reply: str, error: str
) -> None:
    mail.handler.replies[command] = reply
    with pytest.raises(ChannelUnavailable) as raised:
        await mail.sender.send(MESSAGE)
    assert str(raised.value).endswith(error)
    assert ADDRESS not in str(raised.value)
    assert "482913" not in str(raised.value)
