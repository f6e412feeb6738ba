"""The hourly pruning of tracking rows against a real PostgreSQL, racing the writes it prunes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tawasul_intake
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from tawasul_intake.adapters import tables
from tawasul_intake.adapters.repository import IntakeUnitOfWork
from tawasul_intake.app import handlers
from tawasul_platform.migrations import upgrade
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine

MIGRATIONS = Path(tawasul_intake.__file__).resolve().parent / "migrations"
POLICY = handlers.TrackingPolicy(secret=b"tracking-secret")
NOW = datetime.now(UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    engine = async_engine(database_url, pool_size=4)
    yield engine
    await engine.dispose()


async def _blocked(engine: AsyncEngine) -> None:
    """Returns once a DELETE waits for a row lock another transaction holds."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE%'"
    )
    async with asyncio.timeout(10), engine.connect() as conn:
        while not await conn.scalar(waiting):
            await conn.rollback()  # the statistics are read once per transaction
            await asyncio.sleep(0.02)


async def _pruned_while(engine: AsyncEngine, uow: IntakeUnitOfWork) -> None:
    """Prunes while `uow`, which wrote rows the pruning reads as spent, is still open; then
    commits it."""
    pruning = asyncio.create_task(
        handlers.forget_tracking(
            uow=IntakeUnitOfWork(Database(engine.sync_engine)), policy=POLICY, now=NOW
        )
    )
    await _blocked(engine)
    await uow.commit()
    await uow.__aexit__(None, None, None)
    await pruning


async def test_a_code_issued_anew_while_pruning_runs_is_kept(engine: AsyncEngine) -> None:
    database = Database(engine.sync_engine)
    request_id = uuid.uuid4()
    async with IntakeUnitOfWork(database) as uow:
        await uow.codes.put(request_id, "old", NOW - timedelta(hours=1))
        await uow.commit()
    # start_tracking sends a new code for the same request as the pruning starts.
    issuing = await IntakeUnitOfWork(database).__aenter__()
    await issuing.codes.put(request_id, "new", NOW + timedelta(minutes=5))
    await _pruned_while(engine, issuing)
    async with engine.connect() as conn:
        stored = (await conn.execute(select(tables.tracking_codes))).all()
    assert [(r.request_id, r.code_hash) for r in stored] == [(request_id, "new")]


async def test_a_window_restarted_while_pruning_runs_is_kept(engine: AsyncEngine) -> None:
    database = Database(engine.sync_engine)
    async with IntakeUnitOfWork(database) as uow:
        await uow.limits.hit("caller:10.0.0.1", window=POLICY.window, now=NOW - POLICY.window)
        await uow.commit()
    # The caller tries again: its window, passed, starts afresh as the pruning starts.
    hitting = await IntakeUnitOfWork(database).__aenter__()
    assert await hitting.limits.hit("caller:10.0.0.1", window=POLICY.window, now=NOW) == 1
    await _pruned_while(engine, hitting)
    async with engine.connect() as conn:
        stored = (await conn.execute(select(tables.rate_limits))).all()
    assert [(r.bucket, r.window_start, r.hits) for r in stored] == [("caller:10.0.0.1", NOW, 1)]
