"""The outbox relay's loop: what it waits out, and how it says so."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest
from aiokafka.errors import KafkaConnectionError
from asyncpg.exceptions import DeadlockDetectedError, SerializationError
from sqlalchemy import MetaData
from tawasul_platform.db import outbox_table
from tawasul_platform.outbox import OutboxRelay


async def test_a_transaction_undone_in_a_conflict_is_a_warning_and_tried_again(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL undid the relay's statement for a concurrent transaction's sake: not a bug,
    # the next try goes through, so it is no error with a traceback.
    relay = OutboxRelay(
        database=cast(Any, None),
        table=outbox_table(MetaData()),
        producer=cast(Any, None),
        service="test",
    )
    script = [
        DeadlockDetectedError("deadlock detected"),
        SerializationError("could not serialize access"),
        asyncio.CancelledError(),
    ]
    tried: list[BaseException] = []

    async def listen_and_publish() -> None:
        tried.append(script[len(tried)])
        raise tried[-1]

    sleep = asyncio.sleep
    monkeypatch.setattr(relay, "_listen_and_publish", listen_and_publish)
    monkeypatch.setattr(asyncio, "sleep", lambda _: sleep(0))
    with (
        caplog.at_level(logging.WARNING, logger="tawasul_platform.outbox"),
        pytest.raises(asyncio.CancelledError),
    ):
        await relay.run()
    assert tried == script
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    assert all(r.exc_info is None for r in caplog.records)


async def test_an_outage_is_tried_again_ever_later_up_to_half_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    relay = OutboxRelay(
        database=cast(Any, None),
        table=outbox_table(MetaData()),
        producer=cast(Any, None),
        service="test",
    )
    tries = 0

    async def listen_and_publish() -> None:
        nonlocal tries
        tries += 1
        if tries > 8:
            raise asyncio.CancelledError
        raise KafkaConnectionError("no broker answers")

    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(relay, "_listen_and_publish", listen_and_publish)
    monkeypatch.setattr(asyncio, "sleep", sleep)
    with pytest.raises(asyncio.CancelledError):
        await relay.run()
    assert waited == [1, 2, 4, 8, 16, 30, 30, 30]
