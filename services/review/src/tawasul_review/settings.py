from __future__ import annotations

from pydantic import Field
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS
from tawasul_platform.settings import ServiceSettings


class ReviewSettings(ServiceSettings):
    identity_audience: str = "tawasul-review"
    docs_address: str
    docs_deadline_seconds: float = Field(default=DEFAULT_DEADLINE_SECONDS, gt=0)
    # How long the broker may gather notify's receipts for review (TAWASUL_CONSUMER_GATHER_MS
    # is review's other group's, 0: requests are answered at once).
    receipts_gather_ms: int = Field(default=100, ge=0, le=5000)
    # A claim lapses when its holder does nothing for this long (Znuny's UnlockTimeout).
    claim_lease_seconds: float = Field(default=1800.0, gt=0)
    # How often lapsed claims, information deadlines and SLA marks are looked for.
    sweep_seconds: float = Field(default=10.0, gt=0)
    # Employee ids that manage reviewers in every department, comma-separated.
    review_admins: str = ""
    # The share of decisions, in per cent, sampled into the quality-review queue.
    quality_sample_percent: int = Field(default=10, ge=0, le=100)
