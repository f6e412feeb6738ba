"""Alembic, driven from code: each service keeps its migrations inside its package."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import ColumnElement, MetaData, TextClause
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tawasul_platform.db import inbox_table, outbox_table, staff_records_table

# How long a migration's statement waits for its lock before it fails (the Job is retried).
# An ALTER queued behind a long transaction would hold every later query on its table.
LOCK_TIMEOUT_SECONDS = 5


def upgrade(script_location: Path, database_url: str, revision: str = "head") -> None:
    """Migrates the database to `revision` (a test of a data migration stops before it)."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", database_url)
    command.upgrade(config, revision)


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py (online, async engine)."""
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("sqlalchemy.url is not set")

    def migrate(connection: Connection) -> None:
        # A revision commits alone: its locks (an ADD COLUMN's ACCESS EXCLUSIVE) end with it,
        # not with the last pending revision, and a failed Job keeps the revisions it made.
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(
            url,
            poolclass=NullPool,
            connect_args={"server_settings": {"lock_timeout": f"{LOCK_TIMEOUT_SECONDS}s"}},
        )
        async with engine.connect() as connection:
            await connection.run_sync(migrate)
        await engine.dispose()

    asyncio.run(run())


def create_index_concurrently(
    name: str, table: str, columns: Sequence[str | TextClause | ColumnElement[Any]], **kw: Any
) -> None:
    """Builds an index without blocking writers, in a revision's autocommit block.

    Any index of that name goes first: a Job killed after the build, before its revision was
    stamped, left it built, and one killed during the build left it INVALID; either way the
    retried Job's CREATE INDEX would fail for good on "already exists".
    """
    op.drop_index(name, table, postgresql_concurrently=True, if_exists=True)
    op.create_index(name, table, columns, postgresql_concurrently=True, **kw)


def create_messaging_tables() -> None:
    """Creates the outbox and inbox tables (with their indexes) in a service's first migration."""
    scratch = MetaData()
    for table in (outbox_table(scratch), inbox_table(scratch)):
        table.create(bind=op.get_bind())


def create_staff_records_table() -> None:
    """Creates the table of review's records of reviewers (tawasul_platform.staff)."""
    staff_records_table(MetaData()).create(bind=op.get_bind())
