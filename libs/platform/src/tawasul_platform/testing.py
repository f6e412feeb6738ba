"""Stand-ins for tests: in-memory parts for unit tests of use cases (no database, no broker),
a gate for servers that serve only test handlers, a session that keeps the statements a
repository would run, to read their plans, and what a state machine (hypothesis, run in a
thread of its own) needs to drive a service on its test's loop."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError
from sqlalchemy import MetaData, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from tawasul.events.v1 import events_pb2

from tawasul_platform import tracing
from tawasul_platform.authz import Gate
from tawasul_platform.db import make_engine
from tawasul_platform.identity import StaffRecord, TokenVerifier
from tawasul_platform.settings import problems
from tawasul_platform.sql import Rows, Session
from tawasul_platform.staff import recorded

if TYPE_CHECKING:
    import pytest

T = TypeVar("T")


# What every service's settings need from the environment, for tests that read them there
# (a service's own required settings come on top).
SERVICE_ENVIRONMENT: Mapping[str, str] = {
    "TAWASUL_DATABASE_URL": "postgresql+asyncpg://u:hunter2@db/d",
    "TAWASUL_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
    "TAWASUL_GRPC_ADDRESS": "127.0.0.1:0",
    "TAWASUL_IDENTITY_ISSUERS": "[]",
    "TAWASUL_IDENTITY_AUDIENCE": "tawasul-test",
}


def assert_file_setting_refused(
    env: pytest.MonkeyPatch,
    settings: Callable[[], object],
    variable: str,
    path: Path,
    text: str | None,
    said: str,
) -> None:
    """Reading `settings` with `variable` naming `path` (holding `text`; None: no such file)
    is refused with one line, which names the variable and says `said`."""
    if text is not None:
        path.write_text(text, "utf-8")
    env.setenv(variable, str(path))
    try:
        settings()
    except ValidationError as refused:
        (line,) = problems(refused)
    else:
        raise AssertionError(f"{variable} naming {path} was taken")
    assert line.startswith(f"{variable}: "), line
    assert said in line, line


class FakeInbox:
    """The inbox half of a unit of work, in memory."""

    def __init__(self) -> None:
        self.inbox: set[tuple[str, str]] = set()

    async def seen_event(self, consumer: str, event_id: str) -> bool:
        return (consumer, event_id) in self.inbox

    async def claim_event(self, consumer: str, event_id: str) -> bool:
        if (consumer, event_id) in self.inbox:
            return False
        self.inbox.add((consumer, event_id))
        return True

    async def claim_events(self, consumer: str, event_ids: list[str]) -> set[str]:
        return {e for e in event_ids if await self.claim_event(consumer, e)}


class FakeStaffRecords:
    """Review's records of reviewers as a service keeps them, in memory."""

    def __init__(self) -> None:
        self.records: dict[str, StaffRecord] = {}

    async def get(self, reviewer_id: str) -> StaffRecord | None:
        return self.records.get(reviewer_id)

    async def keep(self, records: Sequence[StaffRecord]) -> None:
        for record in records:
            kept = self.records.get(record.reviewer_id)
            if kept is None or kept.version < record.version:
                self.records[record.reviewer_id] = record


def reviewer_recorded(
    reviewer_id: str, departments: set[str], scope: set[str] | None, version: int
) -> events_pb2.Envelope:
    """Review's record of a reviewer, as review publishes it (tawasul_platform.staff)."""
    scoped = None if scope is None else frozenset(scope)
    record = StaffRecord(reviewer_id, frozenset(departments), scoped, version)
    event = recorded(record, producer="review", at=datetime.now(UTC))
    return events_pb2.Envelope.FromString(event.payload)


class FakeTransaction:
    """A unit of work's context, for fakes whose writes land at once (nothing to roll back)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def unguarded() -> Gate:
    """A gate guarding no service, for servers in tests that serve only health or ad-hoc
    test handlers: what is tested there is the server, not who may call it."""
    return Gate(TokenVerifier([], audience="tawasul-test", max_lifetime_seconds=60), {})


@contextmanager
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    """The spans made meanwhile, each kept in memory as it ends; none are kept after."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.reset()


class RecordedStatements:
    """Stands in for a unit of work's session: keeps each statement a repository runs, its
    values bound, and answers each with no rows; or, given a session to run them `through`,
    with what they return there (the statements a call really runs, when what one returns
    decides the next)."""

    def __init__(self, through: Session | None = None) -> None:
        self.seen: list[ClauseElement] = []
        self._through = through

    async def execute(
        self, statement: ClauseElement, params: Mapping[str, Any] | None = None
    ) -> Rows | NoRows:
        self.seen.append(statement.params(dict(params)) if params else statement)
        if self._through is None:
            return NoRows()
        return await self._through.execute(statement, params)

    async def scalar(
        self, statement: ClauseElement, params: Mapping[str, Any] | None = None
    ) -> Any:
        row = (await self.execute(statement, params)).first()
        return None if row is None else row[0]

    def sql(self) -> list[str]:
        """Each statement as PostgreSQL's SQL with its values inline, as EXPLAIN takes it."""
        dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
        return [
            str(s.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            for s in self.seen
        ]


class NoRows(list[Any]):
    """What a statement run by RecordedStatements returned."""

    def first(self) -> None:
        return None

    def all(self) -> list[Any]:
        return self


def on_loop(loop: asyncio.AbstractEventLoop, work: Awaitable[T], timeout: float = 60.0) -> T:
    """Awaits `work` on `loop` (the test's, where its servers run) from another thread, such
    as a hypothesis state machine's, and returns its result."""

    async def awaited() -> T:
        return await work

    return asyncio.run_coroutine_threadsafe(awaited(), loop).result(timeout=timeout)


def async_engine(url: str, *, pool_size: int = 10, pool_timeout: float = 2.0) -> AsyncEngine:
    """The services' engine (`db.make_engine`) behind SQLAlchemy's async API, for a test to read
    and write tables through; `sql.Database` takes its `sync_engine`."""
    return AsyncEngine(make_engine(url, pool_size=pool_size, pool_timeout=pool_timeout))


async def emptied(engine: AsyncEngine, metadata: MetaData) -> None:
    """Every table of a service's schema emptied in one statement: a generated run starts
    from nothing, whatever the runs before it left."""
    names = ", ".join(t.name for t in metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names}"))


def self_signed(
    directory: Path, name: str, *, ca: bool = False, ip: str | None = None
) -> tuple[Path, Path]:
    """A certificate for `name` signed by its own key (an EC P-256 key), valid for a day, and
    the key, written as PEM into `directory`: a server's, or a CA's (`ca`), for a test's TLS."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    certificate = builder.sign(key, hashes.SHA256())
    cert_file, key_file = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def serving_file(body: bytes, content_type: str) -> Iterator[str]:
    """Object storage for a tier without it: an HTTP server on loopback answering every GET
    (a presigned link of any path) with `body`. Yields its base URL."""

    class File(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), File)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
