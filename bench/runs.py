"""What every benchmark of the full run shares: its settings, the load process it runs and
waits for, and how a load's rate and latencies are shown."""

from __future__ import annotations

import asyncio
import json
import sys
from asyncio.subprocess import PIPE
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from tawasul_devstack.stack import StackConfig

from bench.load import LoadSpec, decode_histogram, percentiles_ms

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
# The work items of these requests that review has committed (primary-key lookups).
ARRIVED = "SELECT request_id::text AS id FROM work_items WHERE request_id = ANY($1::uuid[])"
# Where a load's CPU went, by process (bench.cpu.Footprint), in P1's, P2's and P7's detail.
CPU_DETAIL = "cpu_by_process"
# Past its own bound in time, a load process gets this long before it is killed.
LOAD_GRACE_SECONDS = 180.0


@dataclass(frozen=True)
class Settings:
    # Submissions at warmup_rate for warmup_seconds before P1, none counted: a stack just
    # started (Kafka's JIT compiler above all) warms as a running office's has.
    warmup_seconds: float = 60.0
    warmup_rate: float = 30.0
    concurrency: int = 16
    # A cap for the echo and SubmitRequest alike; each is also bounded by p1_seconds.
    p1_requests: int = 10000
    p1_warmup: int = 200
    p1_seconds: float = 20.0
    p2_seconds: float = 30.0
    p2_drain_seconds: float = 30.0
    # P2's measure at a rate of its own (bench.latency.p2_fixed), the same in every run.
    p2_fixed_rate: float = 50.0
    p2_fixed_seconds: float = 60.0
    p7_seconds: float = 30.0
    p7_drain_seconds: float = 60.0
    upload_bytes: int = 10 * MIB
    # A median of eight uploads moved by a tenth between runs with nothing changed on its path
    # (P3 without a size: 148 and 165 ms at p50); 32 of each kind add about half a minute.
    uploads: int = 32
    upload_warmup: int = 2
    settle_seconds: float = 3.0
    # P5: the stored requests it measures at, then grows to; calls of each kind at each size.
    p5_stored: tuple[int, int] = (10_000, 1_000_000)
    p5_calls: int = 2000
    # P8: the same sizes as P5; searches of each kind at each size.
    p8_stored: tuple[int, int] = (10_000, 1_000_000)
    p8_calls: int = 400
    p4_events: int = 100_000


SMOKE = Settings(
    warmup_seconds=1.0,
    warmup_rate=10.0,
    p1_requests=40,
    p1_warmup=8,
    p1_seconds=5.0,
    p2_seconds=2.0,
    p2_drain_seconds=30.0,
    p2_fixed_rate=10.0,
    p2_fixed_seconds=2.0,
    p7_seconds=2.0,
    p7_drain_seconds=30.0,
    upload_bytes=256 * 1024,
    uploads=2,
    upload_warmup=1,
    settle_seconds=0.5,
    p5_stored=(200, 2_000),
    p5_calls=20,
    p8_stored=(200, 2_000),
    p8_calls=10,
    p4_events=500,
)


class LoadFailed(RuntimeError):
    pass


@dataclass
class LoadResult:
    count: int
    errors: int
    first_error: str
    elapsed: float
    histogram: HdrHistogram
    # An open loop's service times (bench.load.Outcome.service); `histogram` counts from due.
    service: HdrHistogram | None = None

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": round(self.elapsed, 3),
            "per_second": round(self.rate, 2),
            **percentiles_ms(self.histogram),
        }


async def bench_process(
    module: str,
    *args: str,
    stdin: int | None = PIPE,
    stdout: int | None = PIPE,
    stderr: int | None = PIPE,
) -> asyncio.subprocess.Process:
    """`python -m <module> <args>` from the repository's root: a load or a baseline in a
    process of its own, so that it takes no CPU time from the one measuring."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, cwd=ROOT, stdin=stdin, stdout=stdout, stderr=stderr
    )


async def run_load(
    spec: LoadSpec, on_line: Callable[[dict[str, Any]], None] | None = None
) -> LoadResult:
    """Runs bench.load in a process of its own and waits for its summary."""
    process = await bench_process("bench.load")
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdin.write(spec.to_json().encode())
    await process.stdin.drain()
    process.stdin.close()
    errors = asyncio.create_task(process.stderr.read())
    done: dict[str, Any] | None = None

    async def read() -> None:
        nonlocal done
        assert process.stdout is not None
        async for raw in process.stdout:
            line = json.loads(raw)
            if line.get("done"):
                done = line
            elif on_line is not None:
                on_line(line)
        await process.wait()

    try:
        await asyncio.wait_for(read(), spec.seconds + LOAD_GRACE_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise LoadFailed(f"{spec.kind} load ran past its bound and was killed") from None
    stderr = (await errors).decode(errors="replace")
    if process.returncode != 0 or done is None:
        raise LoadFailed(f"{spec.kind} load exited {process.returncode}:\n{stderr[-3000:]}")
    return LoadResult(
        count=int(done["count"]),
        errors=int(done["errors"]),
        first_error=str(done["first_error"]),
        elapsed=float(done["elapsed"]),
        histogram=decode_histogram(done["histogram"]),
        service=decode_histogram(done["service"]) if "service" in done else None,
    )


def why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, LoadFailed) else f"{type(exc).__name__}: {exc}"


def load_spec(config: StackConfig, kind: str, **more: Any) -> LoadSpec:
    return LoadSpec(kind=kind, state_dir=str(config.state_dir), port_base=config.port_base, **more)


def rate_shown(result: LoadResult, throughput: str = "") -> str:
    """ "1,234 requests/s (n=…; p50 / p95 / p99 ms)", or `throughput` in place of the rate."""
    p = percentiles_ms(result.histogram)
    errors = f", {result.errors} errors" if result.errors else ""
    return (
        f"{throughput or f'{result.rate:,.0f} requests/s'} (n={result.count}{errors}; "
        f"p50 {p['p50_ms']:.1f} / p95 {p['p95_ms']:.1f} / p99 {p['p99_ms']:.1f} ms)"
    )
