from __future__ import annotations

import asyncio
import logging

import pytest
from asyncpg.exceptions import DeadlockDetectedError, SerializationError
from tawasul_platform.errors import Unavailable
from tawasul_platform.periodic import every


async def test_runs_again_at_once_while_there_is_more_and_waits_out_outages() -> None:
    calls: list[str] = []
    script = ["more", "outage", "done", "stop"]

    async def job() -> bool:
        step = script[len(calls)]
        calls.append(step)
        if step == "outage":
            raise Unavailable("database down")
        if step == "stop":
            raise asyncio.CancelledError
        return step == "more"

    with pytest.raises(asyncio.CancelledError):
        await every(0.001, job, name="test")
    assert calls == script


async def test_a_bug_ends_the_loop() -> None:
    async def job() -> bool:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await every(0.001, job, name="test")


async def test_a_deadlock_is_logged_and_the_job_tried_again_at_the_next_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # PostgreSQL undid the job's transaction for a concurrent one's sake: not a bug, the next
    # run goes through. It used to end the loop, and with it the process.
    calls: list[str] = []
    script = ["deadlock", "serialization", "done", "stop"]

    async def job() -> bool:
        step = script[len(calls)]
        calls.append(step)
        if step == "deadlock":
            raise DeadlockDetectedError("deadlock detected")
        if step == "serialization":
            raise SerializationError("could not serialize access")
        if step == "stop":
            raise asyncio.CancelledError
        return False

    with (
        caplog.at_level(logging.WARNING, logger="tawasul_platform.periodic"),
        pytest.raises(asyncio.CancelledError),
    ):
        await every(0.001, job, name="test")
    assert calls == script
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    assert all("test" in r.getMessage() for r in caplog.records)
