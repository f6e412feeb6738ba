"""Stand-ins for tests: in-memory parts for unit tests of use cases (no database, no broker),
and a gate for servers that serve only test handlers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Self

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tawasul_platform import tracing
from tawasul_platform.authz import Gate
from tawasul_platform.identity import TokenVerifier


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
