from __future__ import annotations

from tawasul_platform.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    # Base URL of the SMS provider, e.g. http://127.0.0.1:19080 for the local stand-in.
    sms_gateway_url: str
    sms_timeout_seconds: float = 5.0
