from __future__ import annotations

from pathlib import Path

from tawasul_platform.service import run

from tawasul_notify.bootstrap import build
from tawasul_notify.settings import NotifySettings


def main() -> None:
    run(
        name="notify",
        settings=NotifySettings,
        build=build,
        migrations=Path(__file__).resolve().parents[1] / "migrations",
    )
