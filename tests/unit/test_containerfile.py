"""deploy/images/Containerfile resolves one package from the workspace's lock with every
member's pyproject.toml copied in first, so a member added to the workspace (as the reviewers'
CLI was) must be copied there too, or the images are built from a workspace the lock does not
describe."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_workspace_member_s_pyproject_is_copied() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    members = sorted(
        path.parent.relative_to(ROOT).as_posix()
        for pattern in patterns["members"]
        for path in ROOT.glob(f"{pattern}/pyproject.toml")
    )
    assert "services/review-cli" in members
    copied = (ROOT / "deploy" / "images" / "Containerfile").read_text()
    missing = [m for m in members if f"COPY {m}/pyproject.toml {m}/\n" not in copied]
    assert not missing
