"""E-mail over SMTP (aiosmtplib): one connection per message, the delivery id as Message-ID."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from tawasul_notify.app.ports import ChannelUnavailable
from tawasul_notify.domain.model import Channel, Outgoing, SendOutcome


class SmtpSender:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        timeout_seconds: float,
        username: str = "",
        password: str = "",
        start_tls: bool = False,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._timeout = timeout_seconds
        self._login = (username, password) if username else None
        self._start_tls = start_tls

    @property
    def channel(self) -> Channel:
        return Channel.EMAIL

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            timeout=self._timeout,
            start_tls=self._start_tls,
            username=self._login[0] if self._login else None,
            password=self._login[1] if self._login else None,
        )

    async def send(self, message: Outgoing) -> SendOutcome:
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = message.to
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        # The same id on a resend after a crash: mail clients show one message for both.
        message_id = f"<{message.key}@tawasul.notify>"
        mail["Message-ID"] = message_id
        mail.set_content(message.text)
        try:
            async with self._client() as smtp:
                await smtp.send_message(mail)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return SendOutcome(accepted=False, detail=f"refused: {exc.recipients[0]}"[:300])
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                return SendOutcome(accepted=False, detail=f"{exc.code}: {exc.message}"[:300])
            raise ChannelUnavailable(f"mail server answered {exc.code}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ChannelUnavailable(f"mail server unreachable: {exc!r}") from exc
        return SendOutcome(accepted=True, provider_message_id=message_id)

    async def healthy(self) -> bool:
        try:
            async with self._client() as smtp:
                await smtp.noop()
        except (aiosmtplib.SMTPException, OSError):
            return False
        return True
