from __future__ import annotations

from pathlib import Path

from tawasul_platform.service import run

from tawasul_routing.bootstrap import build
from tawasul_routing.settings import RoutingSettings


def main() -> None:
    run(
        name="routing",
        settings=RoutingSettings,
        build=build,
        migrations=Path(__file__).resolve().parents[1] / "migrations",
    )
