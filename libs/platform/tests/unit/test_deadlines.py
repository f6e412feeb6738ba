"""A downstream call's timeout: the default, or less when the served call ends sooner."""

from __future__ import annotations

import asyncio

from tawasul_platform import deadlines
from tawasul_platform.deadlines import DEFAULT_DEADLINE_SECONDS, call_timeout


def test_outside_a_served_call_the_default_applies() -> None:
    assert call_timeout() == DEFAULT_DEADLINE_SECONDS
    assert call_timeout(2.0) == 2.0


def test_a_served_call_without_deadline_keeps_the_default() -> None:
    token = deadlines.enter(None)
    try:
        assert call_timeout(3.0) == 3.0
    finally:
        deadlines.leave(token)


def test_the_callers_remaining_time_bounds_the_call() -> None:
    token = deadlines.enter(0.5)
    try:
        assert 0.0 < call_timeout() <= 0.5
        assert call_timeout(0.1) == 0.1
    finally:
        deadlines.leave(token)
    assert call_timeout() == DEFAULT_DEADLINE_SECONDS


def test_a_passed_deadline_gives_zero_not_a_negative_timeout() -> None:
    token = deadlines.enter(-1.0)
    try:
        assert call_timeout() == 0.0
    finally:
        deadlines.leave(token)


async def test_tasks_started_for_the_call_see_its_deadline() -> None:
    async def inside() -> float:
        return call_timeout()

    token = deadlines.enter(0.5)
    try:
        # asyncio.gather and create_task copy the context, as the adapters' fan-outs do.
        (in_gather,) = await asyncio.gather(inside())
        in_task = await asyncio.create_task(inside())
    finally:
        deadlines.leave(token)
    assert 0.0 < in_gather <= 0.5
    assert 0.0 < in_task <= 0.5
