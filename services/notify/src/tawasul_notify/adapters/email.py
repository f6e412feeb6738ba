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
            return _answered(exc.recipients[0].code)
        except (
            aiosmtplib.SMTPConnectResponseError,
            aiosmtplib.SMTPHeloError,
            aiosmtplib.SMTPSenderRefused,
        ) as exc:
            # The greeting, our name or our sender address: the same for every message.
            raise ChannelUnavailable(f"mail server refused us ({exc.code})") from exc
        except aiosmtplib.SMTPResponseException as exc:
            return _answered(exc.code)
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


# RFC 5321's permanent replies, in its words.
_PERMANENT = {
    500: "syntax error",
    501: "syntax error in parameters",
    502: "command not implemented",
    503: "bad sequence of commands",
    504: "parameter not implemented",
    521: "does not accept mail",
    550: "mailbox unavailable",
    551: "user not local",
    552: "exceeded storage allocation",
    553: "mailbox name not allowed",
    554: "transaction failed",
    555: "parameters not recognized",
    556: "domain does not accept mail",
}
# Authentication and encryption the server requires (RFC 4954, RFC 3207).
_OURS = frozenset({454, 530, 534, 535, 538})


def _answered(code: int) -> SendOutcome:
    """A refusal as an outcome, a failure to retry as ChannelUnavailable; either says the code
    and a fixed reason, never the server's words: a reply may echo the recipient's address or
    the message, and its error is what staff read."""
    if code in _OURS:
        # Our credentials or settings, not the message: an outage until someone fixes them.
        raise ChannelUnavailable(f"mail server refused our credentials ({code})")
    if not 500 <= code < 600:
        # 4xx: greylisting, a full mailbox, a busy server; all say "later".
        raise ChannelUnavailable(f"mail server answered {code}")
    reason = _PERMANENT.get(code)
    suffix = f" ({reason})" if reason else ""
    return SendOutcome(accepted=False, detail=f"{code}: refused by the mail server{suffix}")
