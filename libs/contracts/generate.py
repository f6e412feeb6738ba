"""Compiles protos/ into this package with type stubs: `uv run python libs/contracts/generate.py`.

The output is committed, so services and CI need no generator at install time; CI regenerates
and fails on any difference.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
OUT = Path(__file__).resolve().parent / "src"


def main() -> int:
    package = OUT / "tawasul"
    for child in package.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{include}",
            f"--python_out={OUT}",
            f"--mypy_out={OUT}",
            f"--grpc_python_out={OUT}",
            f"--mypy_grpc_out={OUT}",
            *sources,
        ]
    )
    if code != 0:
        return int(code)
    for folder in {p.parent for p in package.rglob("*_pb2.py")}:
        while folder != package:
            (folder / "__init__.py").touch()
            folder = folder.parent
    return 0


if __name__ == "__main__":
    sys.exit(main())
