"""The load generator: one process of its own, started by `python -m bench` for each benchmark.

    echo '{"kind": "submit", ...}' | python -m bench.load

It reads one `LoadSpec` (JSON) on stdin, makes every message and token before it starts the
clock, runs a warm-up it does not count, then the measured calls, bounded in count and in
time, and writes JSON lines on stdout: with `emit_sent`, one `{"sent": id, "at": wall}` per
measured submission as it is answered (for P2), then one `{"done": ...}` with the count, the
errors and the latency histogram (HdrHistogram, microseconds, base64).

Kinds: `submit` (intake's SubmitRequest, a new synthetic citizen's token each), `echo` (the
same messages and metadata to bench.echo's bare unary echo), `upload` (docs' UploadDocument,
the size declared), `upload_unsized` (the same without the size: stored in parts),
`put_object` (the same bytes straight to MinIO). `rate` > 0 sends at that pace (open loop,
at most `concurrency` in flight) instead of `concurrency` calls back to back. There a call's
latency, and the `at` of its `sent` line, count from when the schedule meant to send it, not
from when it went: a call held back by calls stalled in flight waited for the server too, and
leaving that out (coordinated omission) would hide a stall behind the burst that catches up
after it. Its service time alone (from when it went) is in the `done` line's `service`.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hdrh.histogram import HdrHistogram
from minio import Minio
from tawasul.common.v1 import common_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul_devstack.journey import Clients, new_citizen, sample_pdf
from tawasul_devstack.stack import StackConfig
from tawasul_platform.grpc import bearer
from tawasul_platform.identity import Role
from tawasul_platform.tls import open_channel

# Latencies are recorded in microseconds, from 1 µs to 10 minutes, to 3 significant digits.
LOWEST_US = 1
HIGHEST_US = 600_000_000
DIGITS = 3
ECHO_METHOD = "/bench.v1.Echo/Echo"
CALL_TIMEOUT = 30.0
UPLOAD_TIMEOUT = 120.0

Call = Callable[[int], Awaitable[str]]


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def decode_histogram(encoded: str) -> HdrHistogram:
    histogram = new_histogram()
    histogram.decode_and_add(encoded)
    return histogram


def encode_histogram(histogram: HdrHistogram) -> str:
    encoded = histogram.encode()
    return encoded.decode() if isinstance(encoded, bytes) else str(encoded)


def percentiles_ms(histogram: HdrHistogram) -> dict[str, float]:
    """p50, p95, p99 and max in milliseconds, read off the histogram (never a mean)."""

    def at(q: float) -> float:
        return round(int(histogram.get_value_at_percentile(q)) / 1000, 2)

    return {
        "p50_ms": at(50),
        "p95_ms": at(95),
        "p99_ms": at(99),
        "max_ms": round(int(histogram.get_max_value()) / 1000, 2),
    }


def record_seconds(histogram: HdrHistogram, seconds: float) -> None:
    histogram.record_value(min(HIGHEST_US, max(LOWEST_US, round(seconds * 1_000_000))))


@dataclass(frozen=True)
class LoadSpec:
    kind: str  # submit | echo | upload | upload_unsized | put_object
    state_dir: str
    port_base: int
    count: int
    warmup: int
    concurrency: int = 16
    # The measured phase ends at `count` calls or after this many seconds, whichever first.
    seconds: float = 60.0
    rate: float = 0.0
    size_bytes: int = 0
    echo_address: str = ""
    emit_sent: bool = False
    # What a `sent` line names a submission by: its request id, or its number (what texts show).
    sent_as: str = "id"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoadSpec:
        return cls(**json.loads(text))


@dataclass
class Outcome:
    count: int = 0
    errors: int = 0
    first_error: str = ""
    elapsed: float = 0.0
    histogram: HdrHistogram = field(default_factory=new_histogram)
    # An open loop's calls from when each went, beside `histogram`'s from when each was due.
    service: HdrHistogram | None = None

    def done_line(self) -> str:
        return json.dumps(
            {
                "done": True,
                "count": self.count,
                "errors": self.errors,
                "first_error": self.first_error,
                "elapsed": self.elapsed,
                "histogram": encode_histogram(self.histogram),
                **({} if self.service is None else {"service": encode_histogram(self.service)}),
            }
        )


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def padded_pdf(size: int) -> bytes:
    """A valid PDF of exactly `size` bytes: its comment line takes up the rest."""
    filler = 0
    while len(pdf := sample_pdf("bench", comment=b"x" * filler)) != size:
        filler += size - len(pdf)
    return pdf


def submissions(total: int) -> list[intake_pb2.SubmitRequestRequest]:
    """Every message, made before the clock starts: the client's own building and signing is
    no part of what is measured. Each has its own idempotency key and description."""
    return [
        intake_pb2.SubmitRequestRequest(
            idempotency_key=str(uuid.uuid4()),
            sub_service_code="reports.general-inquiry",
            description=f"Benchmark inquiry {n:06d}: transaction stalled at the payment step",
            contact=common_pb2.Contact(mobile="0551234567", locale="ar"),
        )
        for n in range(total)
    ]


async def run(spec: LoadSpec) -> Outcome:
    config = StackConfig.from_env(state_dir=Path(spec.state_dir), port_base=spec.port_base)
    total = spec.warmup + spec.count
    async with Clients(config) as clients:
        call: Call
        if spec.kind in ("submit", "echo"):
            messages = submissions(total)
            metadata = [bearer(clients.token(new_citizen(), Role.CITIZEN)) for _ in messages]
            if spec.kind == "submit":
                submit = clients.intake.SubmitRequest

                async def call(n: int) -> str:
                    answer = await submit(messages[n], timeout=CALL_TIMEOUT, metadata=metadata[n])
                    if spec.sent_as == "number":
                        return str(answer.request.request_number)
                    return str(answer.request.request_id)

                return await drive(spec, call)
            channel = open_channel(spec.echo_address, config.tls())
            try:
                echo = channel.unary_unary(
                    ECHO_METHOD,
                    request_serializer=intake_pb2.SubmitRequestRequest.SerializeToString,
                    response_deserializer=intake_pb2.SubmitRequestRequest.FromString,
                )

                async def call(n: int) -> str:
                    answer = await echo(messages[n], timeout=CALL_TIMEOUT, metadata=metadata[n])
                    return str(answer.idempotency_key)

                return await drive(spec, call)
            finally:
                await channel.close()
        data = padded_pdf(spec.size_bytes)
        if spec.kind in ("upload", "upload_unsized"):
            token = clients.token(new_citizen(), Role.CITIZEN)
            declared = spec.kind == "upload"

            async def call(n: int) -> str:
                document = await clients.upload(
                    token,
                    f"bench-{n}.pdf",
                    data,
                    deadline=UPLOAD_TIMEOUT,
                    declare_size=declared,
                )
                return str(document.document_id)

            return await drive(spec, call)
        if spec.kind == "put_object":
            minio = Minio(
                config.minio_endpoint,
                access_key=config.minio_access_key,
                secret_key=config.minio_secret_key,
                secure=False,
            )
            keys: list[str] = []

            def put(n: int) -> str:
                key = f"bench/{uuid.uuid4()}"
                minio.put_object(
                    config.s3_bucket, key, io.BytesIO(data), len(data), "application/pdf"
                )
                keys.append(key)
                return key

            async def call(n: int) -> str:
                return await asyncio.to_thread(put, n)

            try:
                return await drive(spec, call)
            finally:
                for key in keys:
                    await asyncio.to_thread(minio.remove_object, config.s3_bucket, key)
    raise ValueError(f"unknown load kind {spec.kind!r}")


async def drive(spec: LoadSpec, call: Call) -> Outcome:
    """The warm-up (not counted), then the measured calls: `concurrency` back to back, or at
    `rate` per second with at most `concurrency` in flight (the warm-up at the same pace,
    straight into the measured calls)."""
    if spec.rate > 0:
        return await open_loop(call, spec)
    await closed_loop(call, range(spec.warmup), spec.concurrency, None, None)
    outcome = Outcome()
    measured = range(spec.warmup, spec.warmup + spec.count)
    started = time.perf_counter()
    await closed_loop(
        call, measured, spec.concurrency, started + spec.seconds, outcome, spec.emit_sent
    )
    outcome.elapsed = time.perf_counter() - started
    return outcome


async def timed(
    call: Call, n: int, outcome: Outcome | None, emit_sent: bool = False, due: float | None = None
) -> None:
    """One call, its latency counted from `due` (an open loop's perf_counter() time for it) or
    else from when it goes; `sent` says when that was by the wall clock."""
    started = time.perf_counter()
    intended = started if due is None else due
    sent_at = time.time() - (started - intended)
    try:
        answer = await call(n)
    except Exception as exc:  # gRPC, S3 or network: counted and shown, never hidden
        if outcome is None:
            raise
        outcome.errors += 1
        outcome.first_error = outcome.first_error or f"{type(exc).__name__}: {exc}"[:500]
        return
    if outcome is None:
        return
    answered = time.perf_counter()
    record_seconds(outcome.histogram, answered - intended)
    if outcome.service is not None:
        record_seconds(outcome.service, answered - started)
    outcome.count += 1
    if emit_sent:
        emit(json.dumps({"sent": answer, "at": sent_at}))


async def closed_loop(
    call: Call,
    numbers: range,
    concurrency: int,
    deadline: float | None,
    outcome: Outcome | None,
    emit_sent: bool = False,
) -> None:
    pending = iter(numbers)

    async def worker() -> None:
        for n in pending:
            if deadline is not None and time.perf_counter() >= deadline:
                return
            await timed(call, n, outcome, emit_sent)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))


async def open_loop(call: Call, spec: LoadSpec) -> Outcome:
    """Sends call n at start + n/rate whatever the answers; waits only when `concurrency`
    calls are already in flight, and counts each call from start + n/rate all the same. The
    first `warmup` calls are not counted."""
    gate = asyncio.Semaphore(max(1, spec.concurrency))
    tasks: set[asyncio.Task[None]] = set()
    outcome = Outcome(service=new_histogram())
    start = time.perf_counter()
    measured_from = start + spec.warmup / spec.rate
    deadline = measured_from + spec.seconds

    async def one(n: int, due: float) -> None:
        try:
            counted = n >= spec.warmup
            await timed(call, n, outcome if counted else None, spec.emit_sent and counted, due)
        except Exception:  # a warm-up call that failed: not counted either way
            pass
        finally:
            gate.release()

    for n in range(spec.warmup + spec.count):
        due = start + n / spec.rate
        if due >= deadline:
            break
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await gate.acquire()
        task = asyncio.create_task(one(n, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    outcome.elapsed = time.perf_counter() - measured_from
    return outcome


def main() -> None:
    spec = LoadSpec.from_json(sys.stdin.read())
    outcome = asyncio.run(run(spec))
    emit(outcome.done_line())


if __name__ == "__main__":
    main()
