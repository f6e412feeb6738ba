from __future__ import annotations

from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS
from tawasul_platform.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    docs_address: str
    docs_deadline_seconds: float = DEFAULT_DEADLINE_SECONDS
