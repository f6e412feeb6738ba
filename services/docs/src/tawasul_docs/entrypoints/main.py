from __future__ import annotations

from pathlib import Path

from tawasul_platform.service import run

from tawasul_docs.bootstrap import build
from tawasul_docs.settings import DocsSettings


def main() -> None:
    run(
        name="docs",
        settings=DocsSettings,
        build=build,
        migrations=Path(__file__).resolve().parents[1] / "migrations",
    )
