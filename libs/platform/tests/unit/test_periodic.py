from __future__ import annotations

import asyncio

import pytest
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
