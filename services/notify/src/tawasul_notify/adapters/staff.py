"""The employee directory notify reaches supervisors through: a JSON file of id -> e-mail
(the stand-in for the directorate's directory; `staff.dev.json` for the development stack)."""

from __future__ import annotations

import json
from pathlib import Path

DEV_DIRECTORY = Path(__file__).with_name("staff.dev.json")


def load_staff(path: Path | None) -> dict[str, str]:
    """Nobody has an address when no directory is configured: supervisors get in-app only."""
    if path is None:
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and "@" in v for k, v in raw.items()
    ):
        raise ValueError(f"{path}: expected an object of employee id -> e-mail address")
    return dict(raw)
