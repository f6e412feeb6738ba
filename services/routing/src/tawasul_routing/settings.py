from __future__ import annotations

from tawasul_platform.settings import ServiceSettings


class RoutingSettings(ServiceSettings):
    identity_audience: str = "tawasul-routing"
