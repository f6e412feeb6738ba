"""What review's image and venv install, from the lock: none of the reviewers' CLI's terminal
libraries. structlog imports rich whenever it is installed (6 MiB of every review process idle,
issue 12's P6); the CLI is its own package, tawasul-review-cli."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

LOCK = Path(__file__).resolve().parents[4] / "uv.lock"
Wanted = tuple[str, tuple[str, ...]]


def _wanted(entries: list[dict[str, Any]]) -> list[Wanted]:
    return [(entry["name"], tuple(entry.get("extra", ()))) for entry in entries]


def _installed(root: str) -> set[str]:
    """Every package `uv sync --package root --no-dev` installs, extras followed, markers not
    (a package any platform would get counts)."""
    packages: dict[str, dict[str, Any]] = {
        package["name"]: package for package in tomllib.loads(LOCK.read_text())["package"]
    }
    found: set[str] = set()
    todo: list[Wanted] = [(root, ())]
    while todo:
        name, extras = todo.pop()
        package = packages[name]
        if name not in found:
            found.add(name)
            todo.extend(_wanted(package.get("dependencies", [])))
        optional = package.get("optional-dependencies", {})
        for extra in extras:
            todo.extend(_wanted(optional[extra]))
    return found


def test_review_installs_no_terminal_libraries() -> None:
    installed = _installed("tawasul-review")
    assert {"tawasul-platform", "structlog", "sqlalchemy", "aiokafka"} <= installed
    assert not installed & {"rich", "pygments", "typer", "httpx", "tawasul-review-cli"}


def test_the_cli_is_a_client_of_review_not_of_its_code() -> None:
    installed = _installed("tawasul-review-cli")
    assert {"rich", "typer", "tawasul-contracts"} <= installed
    assert "tawasul-review" not in installed
