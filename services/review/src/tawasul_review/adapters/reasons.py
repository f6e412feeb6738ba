"""The reason catalog for decisions: versioned data shipped with the service."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from tawasul_review.domain.model import Decision, Reason


@cache
def load_reasons() -> dict[str, Reason]:
    raw = json.loads(resources.files("tawasul_review").joinpath("reasons.v1.json").read_text())
    reasons = {
        r["code"]: Reason(
            code=r["code"],
            ar=r["ar"],
            en=r["en"],
            decisions=frozenset(Decision(d) for d in r["decisions"]),
        )
        for r in raw["reasons"]
    }
    if len(reasons) != len(raw["reasons"]):
        raise ValueError("reasons.v1.json: reason codes must be unique")
    return reasons
