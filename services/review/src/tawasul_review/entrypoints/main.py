from __future__ import annotations

from pathlib import Path

from tawasul_platform.service import run

from tawasul_review.bootstrap import build
from tawasul_review.settings import ReviewSettings


def main() -> None:
    run(
        name="review",
        settings=ReviewSettings,
        build=build,
        migrations=Path(__file__).resolve().parents[1] / "migrations",
    )
