"""What review's service tests share: its real gRPC server, built by its composition root,
in-process on a real PostgreSQL; the identity provider its tokens come from; the test's clock.

Kafka is left out (the server's listener at an address nobody answers); docs stands outside
this tier, a stand-in each test module chooses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import tawasul_review
from sqlalchemy.ext.asyncio import AsyncEngine
from tawasul_calendar import RIYADH
from tawasul_devstack.identity import throwaway
from tawasul_platform.identity import Principal, Role
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine
from tawasul_platform.tls import open_channel
from tawasul_review import bootstrap
from tawasul_review.adapters.repository import ReviewUnitOfWork
from tawasul_review.app import handlers
from tawasul_review.app.ports import Attachment, Documents
from tawasul_review.settings import ReviewSettings

MIGRATIONS = Path(tawasul_review.__file__).resolve().parent / "migrations"
IDENTITY = throwaway()
START = datetime(2026, 1, 4, 10, tzinfo=RIYADH)  # a Sunday
LEASE = timedelta(minutes=30)


def token(subject: str, *departments: str) -> str:
    """A reviewer's token for their departments."""
    return IDENTITY.token_for(Principal(subject, Role.REVIEWER, frozenset(departments)))


class Clock:
    """The server's clock: the test moves `now`."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class NoDocs:
    """Docs giving no link: the tests that read no attachment."""

    async def download_links(self, document_ids: tuple[str, ...], token: str) -> list[Attachment]:
        return []


@dataclass(frozen=True)
class Served:
    channel: grpc.aio.Channel
    engine: AsyncEngine
    database: Database
    rules: handlers.Policy
    clock: Clock


@asynccontextmanager
async def served(
    database_url: str,
    *,
    documents: Documents | None = None,
    pool_size: int = 10,
    admins: str = "",
) -> AsyncIterator[Served]:
    """Review's server on a database migrated already, with a claim lease of `LEASE` and
    `admins` (review_admins, as its setting is spelled) its administrators."""
    engine = async_engine(database_url, pool_size=pool_size)
    database = Database(engine.sync_engine)
    settings = ReviewSettings(
        database_url=database_url,
        kafka_bootstrap="127.0.0.1:1",
        grpc_address="127.0.0.1:0",
        identity_issuers=IDENTITY.issuers(),
        docs_address="127.0.0.1:1",
        claim_lease_seconds=LEASE.total_seconds(),
        review_admins=admins,
    )
    rules, clock = bootstrap.policy(settings), Clock()
    server = bootstrap.grpc_server(
        settings,
        uow=lambda: ReviewUnitOfWork(database),
        documents=documents or NoDocs(),
        rules=rules,
        now=clock,
    )
    await server.start()
    await server.serving(True)
    channel = open_channel(f"127.0.0.1:{server.port}", None)
    try:
        yield Served(channel, engine, database, rules, clock)
    finally:
        await channel.close()
        await server.stop(1)
        await engine.dispose()
