from __future__ import annotations

from pathlib import Path

from tawasul_platform.service import run

from tawasul_intake.bootstrap import build
from tawasul_intake.settings import IntakeSettings


def main() -> None:
    run(
        name="intake",
        settings=IntakeSettings,
        build=build,
        migrations=Path(__file__).resolve().parents[1] / "migrations",
    )
