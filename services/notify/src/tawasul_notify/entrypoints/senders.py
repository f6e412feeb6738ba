"""A sender per channel: sends the channel's pending messages from the deliveries table.

It wakes when messages for it are committed (in this process), when a message that met the
channel unavailable is due again, and at least every `sweep_seconds`, for messages another
replica recorded and could not send. While the channel works for nobody, it waits longer
between passes (up to RETRY_WAIT_MOST), so an outage costs the provider a pass now and then,
not a try of every message each time one comes in.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from tawasul_platform.faults import is_conflict, is_transient

from tawasul_notify.app import handlers
from tawasul_notify.app.ports import Sender, UnitOfWork
from tawasul_notify.domain.model import RETRY_WAIT_MOST

log = logging.getLogger(__name__)


class ChannelSender:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        sender: Sender,
        *,
        batch: int,
        retry_for: timedelta,
        first_wait: timedelta,
        concurrency: int,
        sweep_seconds: float,
    ) -> None:
        self._uow = uow
        self._sender = sender
        self._batch = batch
        self._retry_for = retry_for
        self._first_wait = first_wait
        self._concurrency = concurrency
        self._sweep = sweep_seconds
        self._wake = asyncio.Event()
        # When messages this sender left pending are due again, soonest first.
        self._retries: list[datetime] = []

    @property
    def name(self) -> str:
        return f"{self._sender.channel} sender"

    def wake(self) -> None:
        self._wake.set()

    async def send_due(self) -> handlers.Sent:
        """One pass: the due messages, up to a batch."""
        sent = await handlers.send_due(
            uow=self._uow(),
            sender=self._sender,
            now=datetime.now(UTC),
            limit=self._batch,
            retry_for=self._retry_for,
            first_wait=self._first_wait,
            concurrency=self._concurrency,
        )
        for at in sent.retries:
            heapq.heappush(self._retries, at)
        return sent

    async def run(self) -> None:
        """Sends until cancelled; an outage of the channel or the database is waited out."""
        outage = self._first_wait.total_seconds()
        while True:
            self._wake.clear()
            try:
                sent = await self._finished(self.send_due())
            except Exception as exc:
                if is_transient(exc):
                    log.warning("%s: the database is unavailable: %r", self.name, exc)
                elif is_conflict(exc):
                    # Undone for a concurrent transaction's sake: the next pass goes through.
                    log.warning(
                        "%s: undone in a conflict with a concurrent transaction: %r", self.name, exc
                    )
                else:
                    log.exception("%s failed; trying again in %.1f s", self.name, outage)
                sent = None
            if sent is not None and sent.tried and not sent.outage:
                # More may be due: a full batch left some, and a message sent lets its
                # request's next one through (held while an earlier one waited).
                continue
            if sent is None or sent.outage:
                await asyncio.sleep(outage)
                outage = min(outage * 2, RETRY_WAIT_MOST.total_seconds())
                continue
            outage = self._first_wait.total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._until_next())

    @staticmethod
    async def _finished(work: Coroutine[Any, Any, handlers.Sent]) -> handlers.Sent:
        """The pass, finished even when the sender is stopped meanwhile: cut short, it would
        leave messages the channel took pending, to go again after the restart."""
        task = asyncio.ensure_future(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await task
            raise

    def _until_next(self) -> float:
        now = datetime.now(UTC)
        while self._retries and self._retries[0] <= now:
            heapq.heappop(self._retries)
        if not self._retries:
            return self._sweep
        # A little past the time, so that the message is due when the pass reads the clock.
        return min(self._sweep, (self._retries[0] - now).total_seconds() + 0.01)
