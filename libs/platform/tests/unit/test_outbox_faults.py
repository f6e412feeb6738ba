"""The outbox relay's loop: what it waits out, and how it says so."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest
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
