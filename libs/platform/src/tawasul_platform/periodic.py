"""A job that runs on a timer: deadlines (leases, SLA marks) come due with time, not commits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tawasul_platform.faults import is_conflict, is_transient

log = logging.getLogger(__name__)


async def every(seconds: float, job: Callable[[], Awaitable[bool]], *, name: str) -> None:
    """Runs `job` again at once while it says there is more, else after `seconds`.

    An outage of a dependency is waited out, and a run PostgreSQL undid for a concurrent
    transaction's sake (a deadlock, a serialization failure) is tried again after `seconds`;
    any other error ends the loop (and the process, which the platform then restarts) rather
    than being swallowed.
    """
    while True:
        try:
            more = await job()
        except Exception as exc:
            if is_transient(exc):
                log.warning("%s: dependency unavailable, retrying: %s", name, exc)
            elif is_conflict(exc):
                log.warning("%s: undone in a conflict with a concurrent transaction: %r", name, exc)
            else:
                raise
            more = False
        if not more:
            await asyncio.sleep(seconds)
