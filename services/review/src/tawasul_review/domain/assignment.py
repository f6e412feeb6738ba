"""Push assignment: which reviewer a queue hands its next item to.

Only reviewers who are available, read the item's language and hold less than their capacity
are eligible. Round-robin takes the next eligible reviewer after the last one given work;
least-loaded takes the one holding least (ties by id, so the choice is reproducible).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Mode(StrEnum):
    PULL = "pull"
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"


@dataclass(frozen=True)
class Candidate:
    reviewer_id: str
    available: bool
    languages: frozenset[str]
    capacity: int
    load: int

    def has_room(self) -> bool:
        return self.available and self.load < self.capacity

    def eligible(self, language: str) -> bool:
        return self.has_room() and language in self.languages


def choose(mode: Mode, candidates: list[Candidate], *, language: str, last: str = "") -> str | None:
    """The reviewer to give the item to, or None (pull, or nobody eligible)."""
    eligible = sorted((c for c in candidates if c.eligible(language)), key=lambda c: c.reviewer_id)
    if mode is Mode.PULL or not eligible:
        return None
    if mode is Mode.LEAST_LOADED:
        return min(eligible, key=lambda c: (c.load, c.reviewer_id)).reviewer_id
    after = [c for c in eligible if c.reviewer_id > last]
    return (after or eligible)[0].reviewer_id
