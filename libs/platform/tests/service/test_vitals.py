"""The kubelet's probes on the metrics port: /livez hears the event loop, /readyz the service."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from tawasul_platform import metrics
from tawasul_platform.vitals import Vitals


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


@pytest.fixture
def served() -> Iterator[tuple[Vitals, int]]:
    vitals = Vitals(stall=0.5)
    server = metrics.serve("127.0.0.1:0", vitals)
    yield vitals, server.server_address[1]
    server.shutdown()
    server.server_close()


async def test_ready_only_once_serving_and_metrics_beside(served: tuple[Vitals, int]) -> None:
    vitals, port = served
    beating = asyncio.create_task(vitals.keep_beating(0.05))
    assert await asyncio.to_thread(get, port, "/readyz") == (503, "not serving\n")
    assert await asyncio.to_thread(get, port, "/livez") == (200, "alive\n")
    vitals.serving = True
    assert await asyncio.to_thread(get, port, "/readyz") == (200, "serving\n")
    status, body = await asyncio.to_thread(get, port, "/metrics")
    assert status == 200
    assert "tawasul_grpc_server_handled_seconds" in body
    beating.cancel()


def stalled_answers(port: int, seen: threading.Event) -> list[tuple[int, str]]:
    """What /livez and /readyz answer once both refuse (within 10 s), asked from a thread."""
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            answers = [get(port, "/livez"), get(port, "/readyz")]
            if all(status == 503 for status, _ in answers):
                return answers
            time.sleep(0.05)
        return answers
    finally:
        seen.set()


def block_the_loop_until(seen: threading.Event) -> None:
    """A blocking call on the event loop, as a stuck service makes: no beat while it lasts."""
    seen.wait(timeout=15)


async def test_a_loop_that_stops_turning_is_neither_alive_nor_ready(
    served: tuple[Vitals, int],
) -> None:
    vitals, port = served
    vitals.serving = True
    beating = asyncio.create_task(vitals.keep_beating(0.05))
    assert await asyncio.to_thread(get, port, "/livez") == (200, "alive\n")
    seen = threading.Event()
    answers = asyncio.get_running_loop().run_in_executor(None, stalled_answers, port, seen)
    block_the_loop_until(seen)
    (live, live_why), (ready, ready_why) = await answers
    assert (live, ready) == (503, 503)
    assert live_why.startswith("event loop stalled for")
    assert ready_why == live_why
    # The loop turns again: so does the answer.
    for _ in range(100):
        if await asyncio.to_thread(get, port, "/livez") == (200, "alive\n"):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("not alive again within 5 s")
    beating.cancel()
