from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from tawasul_platform.settings import ServiceSettings, loadable

from tawasul_notify.adapters.staff import load_staff


class NotifySettings(ServiceSettings):
    identity_audience: str = "tawasul-notify"
    # Base URL of the SMS provider, e.g. http://127.0.0.1:19080 for the local stand-in.
    sms_gateway_url: str
    sms_gateway_user: str = ""
    sms_gateway_password: str = ""
    # The sender name the provider shows on the handset.
    sms_sender: str = "Tawasul"
    sms_timeout_seconds: float = Field(default=5.0, gt=0)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_sender: str = "Tawasul <no-reply@tawasul.example>"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_start_tls: bool = False
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    # Employee id -> e-mail for supervisors; without it they are told in-app only.
    staff_directory_file: Path | None = None
    # Nobody waits on notify at each step (a text may come a tenth of a second later): its
    # group takes a steady stream a poll's worth at a time, which at 60 submissions a second
    # took notify's CPU a submission from about 6 ms to 2.6 and Kafka's from 3 to 2.1.
    consumer_gather_ms: int = Field(default=100, ge=0, le=5000)
    # How long a message its channel cannot take now (a provider busy or throttling, a mail
    # server greylisting) is tried again before it is failed; failed only while the channel
    # takes others, so an outage for everyone is waited out however long.
    message_retry_seconds: float = Field(default=24 * 3600.0, gt=0)
    # The most messages a channel's sender takes from the table in one pass.
    send_batch: int = Field(default=100, ge=1)
    # How often a sender looks for messages nobody woke it for (another replica's, left
    # pending when it stopped).
    send_sweep_seconds: float = Field(default=5.0, gt=0)
    # How often the SMS gateway is asked for delivery receipts.
    receipts_seconds: float = Field(default=5.0, gt=0)

    @field_validator("sms_gateway_url")
    @classmethod
    def _sms_gateway(cls, url: str) -> str:
        # The HTTP pool refuses it too, but in the build, as a traceback naming no variable.
        # The URL itself is never said: it may hold the provider's credentials.
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:  # not a number, or past 65535
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
            raise ValueError("expected http(s)://host[:port][/path]")
        return url

    @field_validator("staff_directory_file")
    @classmethod
    def _staff_directory(cls, path: Path | None) -> Path | None:
        return None if path is None else loadable(path, load_staff)
