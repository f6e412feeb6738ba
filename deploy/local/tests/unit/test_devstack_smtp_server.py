"""The development SMTP server, run through its console script as the stack runs it."""

from __future__ import annotations

import mailbox
import os
import random
import signal
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from tawasul_devstack.journey import Clients
from tawasul_devstack.procs import StackError, free_port, port_in_use, wait_until_ready
from tawasul_devstack.smtp_server import greets, received
from tawasul_devstack.stack import PROCESSES, Stack, StackConfig

SENDER = "Tawasul <no-reply@tawasul.example>"
SUBJECT = "تم استلام طلبك رقم TW123456789"
BODY = "عزيزي المواطن،\nتم استلام طلبك وسيتم الرد عليه خلال ٣ أيام عمل.\n.سطر يبدأ بنقطة\n"


@dataclass
class Server:
    port: int
    maildir: Path
    log: Path
    process: subprocess.Popen[bytes]

    def send(self, message: EmailMessage, to_addrs: list[str] | None = None) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as smtp:
            smtp.send_message(message, to_addrs=to_addrs)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(10)


def start(tmp_path: Path, maildir: Path, *, by_env: bool = False) -> Server:
    """Starts `tawasul-smtp-server` (told where by options, or by environment) and waits for
    its greeting."""
    port = free_port()
    log = tmp_path / f"smtp-{port}.log"
    argv = [str(Path(sys.executable).parent / "tawasul-smtp-server")]
    env = dict(os.environ)
    if by_env:
        env |= {"TAWASUL_SMTP_PORT": str(port), "TAWASUL_SMTP_MAILDIR": str(maildir)}
    else:
        argv += ["--port", str(port), "--maildir", str(maildir)]
    with log.open("ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(port, maildir, log, process)

    try:
        wait_until_ready(process, lambda: greets(port), timeout=15.0, what="an SMTP greeting")
    except StackError as error:
        pytest.fail(f"{error}:\n{log.read_text()}")
    return server


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    """The servers a test starts; whatever still runs at its end is killed."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def smtp(tmp_path: Path, servers: list[Server]) -> Server:
    # Two levels that do not exist yet: the server creates them.
    servers.append(start(tmp_path, tmp_path / "smtp" / "maildir"))
    return servers[-1]


def arabic_message(to: str, subject: str = SUBJECT) -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = to
    message["Subject"] = subject
    message.set_content(BODY)
    return message


def test_an_arabic_message_arrives_intact(smtp: Server) -> None:
    smtp.send(arabic_message("مواطن <citizen@example.sa>"))

    [message] = received(smtp.maildir)
    assert message["Subject"] == SUBJECT
    assert message["From"] == SENDER
    assert message["To"] == "مواطن <citizen@example.sa>"
    assert message["To"].addresses[0].addr_spec == "citizen@example.sa"
    assert message.get_content() == BODY
    assert message.get_all("Delivered-To") == ["citizen@example.sa"]
    assert message["Return-Path"] == "<no-reply@tawasul.example>"
    assert message["X-Received-Order"] == "1"


def test_utf8_headers_and_addresses_are_kept_as_sent(smtp: Server) -> None:
    """SMTPUTF8: raw UTF-8 in headers and addresses, no encoded-words to undo."""
    original = arabic_message("مواطن <مستخدم@مثال.السعودية>")
    original.set_content(BODY, cte="8bit")  # BODY=8BITMIME: the body's bytes as they are

    smtp.send(original)  # smtplib asks for SMTPUTF8 itself: the address is not ASCII

    [message] = received(smtp.maildir)
    assert message["Subject"] == SUBJECT
    assert message.get_all("Delivered-To") == ["مستخدم@مثال.السعودية"]
    assert message.get_content() == BODY
    [path] = (smtp.maildir / "new").iterdir()
    raw = path.read_bytes()
    assert f"Subject: {SUBJECT}\n".encode() in raw
    assert BODY.encode() in raw
    assert b"=?utf-8?" not in raw


def test_messages_come_back_in_the_order_they_arrived(smtp: Server) -> None:
    subjects = [f"رسالة {n}" for n in range(1, 7)]
    for subject in subjects:
        smtp.send(arabic_message("citizen@example.sa", subject))

    messages = received(smtp.maildir)

    assert [m["Subject"] for m in messages] == subjects
    assert [m["X-Received-Order"] for m in messages] == ["1", "2", "3", "4", "5", "6"]


def test_every_envelope_recipient_is_recorded(smtp: Server) -> None:
    message = arabic_message("first@example.sa")
    message["Cc"] = "second@example.sa"

    smtp.send(message, ["first@example.sa", "second@example.sa", "hidden@example.sa"])

    [stored] = received(smtp.maildir)
    assert stored.get_all("Delivered-To") == [
        "first@example.sa",
        "second@example.sa",
        "hidden@example.sa",
    ]
    assert "Bcc" not in stored


def test_sigterm_stops_it_even_with_a_client_connected(smtp: Server) -> None:
    idle = smtplib.SMTP("127.0.0.1", smtp.port, timeout=10)
    idle.ehlo()

    code = smtp.stop()

    assert code == 0
    assert not port_in_use(smtp.port)
    assert "smtp server stopped" in smtp.log.read_text()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        idle.noop()
    idle.close()


def test_the_order_goes_on_after_a_restart(
    tmp_path: Path, smtp: Server, servers: list[Server]
) -> None:
    smtp.send(arabic_message("citizen@example.sa", "الأولى"))
    assert smtp.stop() == 0

    servers.append(start(tmp_path, smtp.maildir))
    servers[-1].send(arabic_message("citizen@example.sa", "الثانية"))

    messages = received(smtp.maildir)
    assert [m["Subject"] for m in messages] == ["الأولى", "الثانية"]
    assert [m["X-Received-Order"] for m in messages] == ["1", "2"]


def test_port_and_maildir_can_come_from_the_environment(
    tmp_path: Path, servers: list[Server]
) -> None:
    maildir = tmp_path / "from-env"

    servers.append(start(tmp_path, maildir, by_env=True))
    servers[-1].send(arabic_message("citizen@example.sa"))

    assert [m["Subject"] for m in received(maildir)] == [SUBJECT]


def test_received_needs_an_existing_maildir(tmp_path: Path) -> None:
    with pytest.raises(mailbox.NoSuchMailboxError):
        received(tmp_path / "nothing-here")


# -- in the stack ---------------------------------------------------------------------------


def free_port_base() -> int:
    """A port base whose SMS gateway and SMTP ports are free, below the ephemeral range."""
    for _ in range(100):
        base = random.randrange(20000, 32000, 100)
        if not any(port_in_use(base + offset) for offset in (25, 80)):
            return base
    raise RuntimeError("no free port base found")


def test_smtp_settings_derive_from_the_stack(tmp_path: Path) -> None:
    config = StackConfig(tmp_path / "state", tmp_path / "cache", port_base=20000)

    assert "smtp" in PROCESSES
    assert config.smtp_port == 20025
    assert config.smtp_maildir == tmp_path / "state" / "smtp" / "maildir"


async def test_the_stack_runs_the_smtp_server_and_the_gateway(tmp_path: Path) -> None:
    config = StackConfig(tmp_path / "state", tmp_path / "cache", port_base=free_port_base())
    stack = Stack(config)
    assert stack.status()["smtp"] is False
    try:
        stack.start_service("smtp")
        stack.start_service("sms-gateway")
        running = stack.status()
        with smtplib.SMTP("127.0.0.1", config.smtp_port, timeout=10) as smtp:
            smtp.send_message(arabic_message("citizen@example.sa"))
        async with Clients(config) as clients:
            anonymous = await clients.http.get(f"{config.sms_gateway_url}/v1/messages")
            emails = clients.emails_received()
            sms = await clients.sms_received()
    finally:
        stack.stop_service("sms-gateway")
        stack.stop_service("smtp")

    assert running["smtp"] is running["sms-gateway"] is True
    assert [m["Subject"] for m in emails] == [SUBJECT]
    assert emails[0].get_content() == BODY
    assert anonymous.status_code == 401
    assert sms == []
    assert stack.status()["smtp"] is False
    assert not port_in_use(config.smtp_port)
    assert "smtp server stopped" in stack.log_path("smtp").read_text()
