"""A development SMTP server (aiosmtpd): takes any message for anyone, stores it in a Maildir.

It listens on 127.0.0.1, offers SMTPUTF8 and 8BITMIME (Arabic headers and bodies arrive as
sent) and keeps each message as it came, with Unix line ends, behind three headers of its own:
X-Received-Order (1, 2, ... across restarts: Maildir keys are not ordered), Return-Path and one
Delivered-To per envelope recipient. `received()` reads them back, oldest first. SIGTERM stops
it.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import mailbox
import os
import signal
import smtplib
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

ORDER = "X-Received-Order"
HOST = "127.0.0.1"


def received(maildir: Path) -> list[EmailMessage]:
    """Every message stored in `maildir`, parsed with email.policy.default, oldest first."""
    box = mailbox.Maildir(maildir, create=False)
    messages = [
        email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        for key in box.iterkeys()
    ]
    return sorted(messages, key=lambda message: int(str(message[ORDER])))


def greets(port: int, timeout: float = 1.0) -> bool:
    """Whether an SMTP server on the port answers a connection with its greeting."""
    try:
        with smtplib.SMTP(HOST, port, timeout=timeout):
            return True
    except OSError:  # smtplib's errors are OSErrors too
        return False


class MaildirHandler:
    """aiosmtpd's handler: stores each message's DATA in the Maildir."""

    def __init__(self, maildir: Path) -> None:
        maildir.parent.mkdir(parents=True, exist_ok=True)
        self._box = mailbox.Maildir(maildir, create=True)
        stored = received(maildir)
        self._last = int(str(stored[-1][ORDER])) if stored else 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # Only this event loop's thread stores: the counter needs no lock.
        self._last += 1
        trace = [f"{ORDER}: {self._last}", f"Return-Path: <{envelope.mail_from or ''}>"]
        trace += [f"Delivered-To: {recipient}" for recipient in envelope.rcpt_tos]
        content = envelope.original_content or b""
        # Unix line ends in the file, so that parsed bodies carry no stray "\r".
        data = "\n".join([*trace, ""]).encode() + content.replace(b"\r\n", b"\n")
        key = self._box.add(data)
        print(
            f"stored #{self._last} ({key}) from {envelope.mail_from} "
            f"to {', '.join(envelope.rcpt_tos)}",
            flush=True,
        )
        return "250 OK"


async def serve(port: int, maildir: Path) -> None:
    """Serves until SIGTERM or SIGINT."""
    handler = MaildirHandler(maildir)
    loop = asyncio.get_running_loop()
    # A fixed hostname: the default, socket.getfqdn(), can wait on DNS at every connection.
    server = await loop.create_server(
        lambda: SMTP(handler, enable_SMTPUTF8=True, hostname="localhost", loop=loop), HOST, port
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"smtp server on {HOST}:{port}, maildir {maildir}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()
    print("smtp server stopped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="tawasul-smtp-server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--port",
        type=int,
        default=os.environ.get("TAWASUL_SMTP_PORT"),
        required="TAWASUL_SMTP_PORT" not in os.environ,
        help=f"port on {HOST} (env TAWASUL_SMTP_PORT)",
    )
    parser.add_argument(
        "--maildir",
        type=Path,
        default=os.environ.get("TAWASUL_SMTP_MAILDIR"),
        required="TAWASUL_SMTP_MAILDIR" not in os.environ,
        help="Maildir the messages are stored in, created if missing (env TAWASUL_SMTP_MAILDIR)",
    )
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.maildir))
