"""What a docs process holds before its first upload: pypdf and Pillow come with the first file of
their kind (issue 12's P6, memory idle), never with the service's modules."""

from __future__ import annotations

import subprocess
import sys

START = (
    "tawasul_docs.entrypoints.main",
    "tawasul_docs.bootstrap",
    "tawasul_docs.entrypoints.grpc",
    "tawasul_docs.entrypoints.events",
)


def test_the_service_imports_neither_pypdf_nor_pillow() -> None:
    code = (
        f"import sys, {', '.join(START)}; "
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules} & {'pypdf', 'PIL'})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == ""
