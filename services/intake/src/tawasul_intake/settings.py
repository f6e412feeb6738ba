from __future__ import annotations

from tawasul_platform.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    pass
