"""A virtual environment per process of Tawasul's own, holding only what its package declares,
as its image does (deploy/images/Containerfile syncs one package). From the workspace's venv a
service would also import what other members bring: the gateway's uvicorn and the review
CLI's rich, which FastStream and structlog import whenever they are installed (6 MiB of RSS
that production never has, measured by P6), and an import its package forgot to declare would
work here and fail only in the image. Its dependencies are compiled to bytecode, as the image's
are (UV_COMPILE_BYTECODE): a process that compiles its imports' sources at every start, as
under PYTHONDONTWRITEBYTECODE, keeps the compiler's scraps in its heap, 5 to 9 MiB of RSS a
service that no container has."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from tawasul_devstack.procs import StackError

SYNC_TIMEOUT = 600.0


def venv_dir(root: Path, package: str) -> Path:
    return root / ".state" / "venvs" / package


def script(root: Path, package: str, name: str) -> str:
    """A console script of `package`'s own venv (made by `ensure`)."""
    path = venv_dir(root, package) / "bin" / name
    if not path.is_file():
        raise StackError(f"{path} not found: `tawasul-stack up` makes {package}'s venv")
    return str(path)


def ensure(root: Path, packages: Iterable[str]) -> None:
    """`uv sync` of each package into its venv, editable like the workspace (a code change
    is live at the next start) and from the same lock; a no-op in half a second when nothing
    changed. One stack at a time: parallel test stacks share the venvs."""
    base = root / ".state" / "venvs"
    base.mkdir(parents=True, exist_ok=True)
    with (base / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for package in packages:
            env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv_dir(root, package))}
            env.pop("VIRTUAL_ENV", None)
            done = subprocess.run(
                [
                    *_uv(),
                    "sync",
                    "--frozen",
                    "--no-dev",
                    "--quiet",
                    "--compile-bytecode",
                    "--package",
                    package,
                    # The workspace's interpreter, never one uv would download.
                    "--python",
                    sys._base_executable,  # type: ignore[attr-defined]
                ],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=SYNC_TIMEOUT,
                check=False,
            )
            if done.returncode:
                raise StackError(f"uv sync of {package} failed: {done.stderr.strip()[-2000:]}")


def _uv() -> list[str]:
    """`uv run` says where it is; else the one on PATH, else the Makefile's (pip's)."""
    found = os.environ.get("UV") or shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]
