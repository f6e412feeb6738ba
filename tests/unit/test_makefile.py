"""The Makefile's own logic, run by make in a scratch directory with `uv` stood in for: what
`make protos-check` and `make status` take for a failure."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from tawasul_devstack import cli

ROOT = Path(__file__).resolve().parents[2]


def _make(cwd: Path, target: str, uv: str) -> subprocess.CompletedProcess[str]:
    # The README's two commands are make's: where it is missing, nothing here runs at all.
    make = shutil.which("make")
    assert make is not None, "make is not installed"
    return subprocess.run(
        [make, "--no-print-directory", "-f", str(ROOT / "Makefile"), target, f"UV={uv}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def contracts(tmp_path: Path) -> Path:
    """A repository whose libs/contracts holds one committed generated file."""
    _git(tmp_path, "init", "-q")
    generated = tmp_path / "libs" / "contracts" / "tawasul"
    generated.mkdir(parents=True)
    (generated / "intake_pb2.py").write_text("# generated\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "contracts")
    return generated


def test_protos_check_passes_when_the_generated_code_is_committed(contracts: Path) -> None:
    # `true` for uv: the generator leaves the committed files as they are.
    result = _make(contracts.parents[2], "protos-check", "true")
    assert result.returncode == 0, result.stdout + result.stderr


def test_protos_check_fails_on_a_generated_file_nobody_added(contracts: Path) -> None:
    """git diff --exit-code sees no untracked file: a new proto's code left out of the commit
    passed."""
    (contracts / "docs_pb2.py").write_text("# generated, not added\n")
    result = _make(contracts.parents[2], "protos-check", "true")
    assert result.returncode != 0
    assert "libs/contracts/tawasul/docs_pb2.py" in result.stdout


@pytest.mark.parametrize(("code", "fails"), [(0, False), (3, False), (1, True)])
def test_make_status_fails_only_when_the_cli_does(tmp_path: Path, code: int, fails: bool) -> None:
    """tawasul-stack status exits 3 when a process is stopped: an answer, not make's Error 3."""
    uv = tmp_path / "uv"
    uv.write_text(f"#!/bin/sh\nexit {code}\n")
    uv.chmod(0o755)
    result = _make(tmp_path, "status", str(uv))
    assert (result.returncode != 0) == fails, result.stderr
    assert ("Error" in result.stderr) == fails


def test_the_cli_s_help_gives_status_s_exit_code() -> None:
    help_text = cli._parser().format_help()
    assert "exits 3 when any is stopped" in " ".join(help_text.split())
