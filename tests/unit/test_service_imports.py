"""What a service process loads: SQLAlchemy Core on asyncpg, never its ORM.

sqlalchemy.ext.asyncio imports the ORM, 7.7 MiB of every service's idle memory (P6); the
platform's `sql.Database` runs statements on the engine's pool without either.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SERVICES = ("intake", "routing", "review", "notify", "docs")
NEVER = ("sqlalchemy.orm", "sqlalchemy.ext.asyncio")


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_process_never_loads_the_orm(service: str) -> None:
    probe = (
        f"import sys, tawasul_{service}.entrypoints.main\n"
        f"print(','.join(sorted(m for m in {NEVER!r} if m in sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert loaded == "", f"tawasul-{service} loads {loaded}"
