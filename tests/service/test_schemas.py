"""Each service's migrations build the schema its code declares: a table, column or index in
adapters/tables.py that no migration creates (or one a migration creates that the code no
longer declares) fails here, not in production on the first statement that needs it."""

from __future__ import annotations

import asyncio
import importlib
import warnings
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection
from tawasul_platform.migrations import upgrade
from tawasul_platform.testing import async_engine

SERVICES = ("intake", "routing", "review", "docs", "notify")


def differences(metadata: MetaData, connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection)
    with warnings.catch_warnings():
        # Expression and partial indexes are compared by name and columns only.
        warnings.simplefilter("ignore")
        return list(compare_metadata(context, metadata))


def migrations(service: str) -> Path:
    package = importlib.import_module(f"tawasul_{service}")
    return Path(package.__file__ or "").resolve().parent / "migrations"


@pytest.mark.parametrize("service", SERVICES)
async def test_the_migrations_at_head_build_the_declared_schema(
    service: str, database_url: str
) -> None:
    tables = importlib.import_module(f"tawasul_{service}.adapters.tables")
    await asyncio.to_thread(upgrade, migrations(service), database_url)
    engine = async_engine(database_url)
    try:
        async with engine.connect() as connection:
            found = await connection.run_sync(lambda c: differences(tables.metadata, c))
    finally:
        await engine.dispose()
    assert found == []


@pytest.mark.parametrize("service", SERVICES)
async def test_every_migration_goes_down_and_up_again(service: str, database_url: str) -> None:
    """A release rolled back runs the downgrades: each must undo its upgrade, so that the way
    back up builds the same schema."""
    tables = importlib.import_module(f"tawasul_{service}.adapters.tables")
    config = Config()
    config.set_main_option("script_location", str(migrations(service)))
    config.set_main_option("sqlalchemy.url", database_url)
    await asyncio.to_thread(upgrade, migrations(service), database_url)
    await asyncio.to_thread(command.downgrade, config, "base")
    engine = async_engine(database_url)
    try:
        async with engine.connect() as connection:
            left = await connection.run_sync(lambda c: sorted(inspect(c).get_table_names()))
        assert left == ["alembic_version"]
        await asyncio.to_thread(upgrade, migrations(service), database_url)
        async with engine.connect() as connection:
            found = await connection.run_sync(lambda c: differences(tables.metadata, c))
    finally:
        await engine.dispose()
    assert found == []
