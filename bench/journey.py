"""Hot paths of the running stack, measured and printed (never asserted).

    make up                                  # or any running stack (TAWASUL_PORT_BASE, ...)
    uv run python -m bench.journey [--requests 400] [--concurrency 16]

Prints: SubmitRequest latency percentiles and throughput; how long submitted requests take
to reach their review queue (intake → outbox → Kafka → routing → Kafka → review); upload
throughput through docs into MinIO; and the resident memory of every process afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from pathlib import Path

from tawasul_devstack.journey import Clients, eventually, new_citizen, sample_pdf
from tawasul_devstack.stack import Stack, StackConfig
from tawasul_platform.identity import Role

DEPARTMENT = "reports"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def bench(config: StackConfig, requests: int, concurrency: int) -> None:
    async with Clients(config) as clients:
        reviewer = clients.token("E9001", Role.REVIEWER, frozenset({DEPARTMENT}))
        gate = asyncio.Semaphore(concurrency)
        latencies: list[float] = []

        async def submit(n: int) -> str:
            async with gate:
                started = time.perf_counter()
                request = await clients.submit(
                    clients.token(new_citizen(), Role.CITIZEN),
                    key=str(uuid.uuid4()),
                    sub_service="reports.general-inquiry",
                    description=f"Benchmark inquiry {n:06d}: transaction stalled at payment",
                    documents=[],
                    mobile="0551234567",
                )
                latencies.append(time.perf_counter() - started)
                return request.request_id

        started = time.perf_counter()
        ids = set(await asyncio.gather(*(submit(n) for n in range(requests))))
        submitted_in = time.perf_counter() - started

        async def all_queued() -> bool | None:
            items = await clients.queue(reviewer, DEPARTMENT)
            left = ids - {i.request_id for i in items}
            return True if not left else None

        await eventually(all_queued, within=120, what="every request in its queue")
        queued_in = time.perf_counter() - started

        ms = [s * 1000 for s in latencies]
        print(f"SubmitRequest  n={requests} concurrency={concurrency}")
        print(
            f"  latency ms    p50={percentile(ms, 0.5):.1f} p95={percentile(ms, 0.95):.1f} "
            f"p99={percentile(ms, 0.99):.1f} mean={statistics.fmean(ms):.1f}"
        )
        print(f"  throughput    {requests / submitted_in:.0f} requests/s")
        print(f"  all in queue  {queued_in:.2f} s after the first submit")

        pdf = sample_pdf("bench") + b"\n" * (1024 * 1024)
        uploads = 20
        started = time.perf_counter()
        citizen = clients.token(new_citizen(), Role.CITIZEN)
        await asyncio.gather(*(clients.upload(citizen, "bench.pdf", pdf) for _ in range(uploads)))
        elapsed = time.perf_counter() - started
        print(f"UploadDocument {uploads} x {len(pdf) / 2**20:.1f} MiB")
        print(f"  throughput    {uploads * len(pdf) / 2**20 / elapsed:.1f} MiB/s")

    stack = Stack(config)
    print("Resident memory after the run (MiB)")
    for name in ("docs", "intake", "routing", "review", "notify", "kafka", "minio"):
        pid = stack.pid(name)
        print(f"  {name:<8} {rss_mib(pid):7.1f}" if pid else f"  {name:<8} not running")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(bench(StackConfig.from_env(), args.requests, args.concurrency))


if __name__ == "__main__":
    main()
