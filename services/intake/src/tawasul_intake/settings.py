from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS
from tawasul_platform.settings import ServiceSettings, loadable

from tawasul_intake.adapters.registry import FileRegistry


class IntakeSettings(ServiceSettings):
    identity_audience: str = "tawasul-intake"
    docs_address: str
    docs_deadline_seconds: float = Field(default=DEFAULT_DEADLINE_SECONDS, gt=0)
    notify_address: str
    notify_deadline_seconds: float = Field(default=DEFAULT_DEADLINE_SECONDS, gt=0)
    # The relationship registry's data file (the development stand-in for Absher / Muqeem).
    registry_file: Path
    # Keys the hashes of one-time tracking codes, and of the details each request's tracking
    # attempts are counted under; never the code or the details themselves at rest.
    tracking_code_secret: str
    tracking_per_caller_per_hour: int = Field(default=20, ge=1)
    # Callers (by their client certificate's name) that call on behalf of many people and
    # name each one's address in `x-forwarded-for`: the channels' HTTP gateway. Anyone else's
    # header is ignored, so it cannot dodge the per-caller limit.
    tracking_trusted_forwarders: frozenset[str] = frozenset({"gateway"})
    tracking_per_request_per_hour: int = Field(default=5, ge=1)

    @field_validator("registry_file")
    @classmethod
    def _registry(cls, path: Path) -> Path:
        return loadable(path, FileRegistry.from_file)
