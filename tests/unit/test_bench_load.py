"""The open loop (P2's and P7's load) counts each call from when its schedule meant to send it:
a server that stalls holds back every call due meanwhile, not only those in flight."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from bench import load
from bench.load import LoadSpec, open_loop, percentiles_ms

RATE, SECONDS = 100.0, 2.0
STALL = (0.5, 1.0)  # seconds after the start: the server answers nothing meanwhile


def test_a_stall_counts_for_every_call_due_during_it(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, float]] = []
    monkeypatch.setattr(load, "emit", lambda line: sent.append(json.loads(line)))
    spec = LoadSpec(
        kind="submit",
        state_dir="",
        port_base=0,
        count=int(RATE * SECONDS),
        warmup=0,
        concurrency=4,
        seconds=SECONDS,
        rate=RATE,
        emit_sent=True,
    )
    wall, start = time.time(), time.perf_counter()

    async def call(n: int) -> str:
        now = time.perf_counter() - start
        if STALL[0] <= now < STALL[1]:
            await asyncio.sleep(STALL[1] - now)
        await asyncio.sleep(0.002)
        return str(n)

    outcome = asyncio.run(open_loop(call, spec))

    # 50 of the 200 calls were due during the stall and each waited up to 0.5 s for it; with
    # only the 4 in flight counting it, p95 was a few ms.
    assert outcome.count == 200
    p = percentiles_ms(outcome.histogram)
    assert p["p95_ms"] >= 200, p
    assert p["max_ms"] >= 400, p
    # What each call took from when it went is kept apart: only the 4 in flight stalled.
    assert outcome.service is not None
    service = percentiles_ms(outcome.service)
    assert service["p95_ms"] < 100, service
    assert outcome.service.get_total_count() == 200
    # A `sent` line's time is when the call was due, which P2 and P7 count from.
    at = {int(line["sent"]): line["at"] for line in sent}
    assert len(at) == 200
    for n in (0, 60, 80, 99, 150):
        assert at[n] - (wall + n / RATE) == pytest.approx(0, abs=0.05), n
    # The done line carries both histograms.
    done = json.loads(outcome.done_line())
    assert percentiles_ms(load.decode_histogram(done["service"])) == service
    assert percentiles_ms(load.decode_histogram(done["histogram"])) == p
