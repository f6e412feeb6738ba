"""What review keeps a while only, forgotten on its pruning schedule (handlers.forget_leftovers),
on a real PostgreSQL: the cancellations and follow-ups that came before their request, and
ClaimNext's keys."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tawasul_calendar import Sla
from tawasul_platform.identity import Principal, Role
from tawasul_platform.migrations import upgrade
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine
from tawasul_review import bootstrap
from tawasul_review.adapters.repository import ReviewUnitOfWork
from tawasul_review.app import handlers
from tawasul_review.domain.model import Contact, WorkItem
from tawasul_review.settings import ReviewSettings

from .served import IDENTITY, MIGRATIONS, START

ALI = Principal("E100", Role.REVIEWER, frozenset({"passports"}))


async def kept(engine: AsyncEngine, table: str) -> set[str]:
    column = "key" if table == "claim_keys" else "request_id"
    async with engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT {column} FROM {table}"))
    return {str(row[0]) for row in rows}


async def test_early_cancellations_follow_ups_and_claim_keys_are_forgotten_once_old(
    database_url: str,
) -> None:
    """A request routing dead-lettered never arrives: what came for it before it stayed for
    good. Kept EARLY_KEEP (a replay may yet bring it), then forgotten; a young one stays."""
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    engine = async_engine(database_url, pool_size=2)
    database = Database(engine.sync_engine)
    settings = ReviewSettings(
        database_url=database_url,
        kafka_bootstrap="127.0.0.1:1",
        grpc_address="127.0.0.1:0",
        identity_issuers=IDENTITY.issuers(),
        docs_address="127.0.0.1:1",
    )
    rules = bootstrap.policy(settings)

    def uow() -> ReviewUnitOfWork:
        return ReviewUnitOfWork(database)

    async def early(request_id: uuid.UUID, at: datetime) -> None:
        await handlers.follow_up(
            uow=uow(), event_id=str(uuid.uuid4()), request_id=request_id, message="any news?", at=at
        )
        await handlers.withdraw(
            uow=uow(),
            event_id=str(uuid.uuid4()),
            request_id=request_id,
            reason="no longer needed",
            at=at,
            policy=rules,
            now=at,
        )

    try:
        orphan, young = uuid.uuid4(), uuid.uuid4()
        await early(orphan, START)
        now = START + handlers.EARLY_KEEP + timedelta(minutes=1)
        await early(young, now - handlers.EARLY_KEEP + timedelta(minutes=2))
        for table in ("early_follow_ups", "withdrawals"):
            assert await kept(engine, table) == {str(orphan), str(young)}
        # A claim under a key, a day old by then, and one made just now.
        await handlers.enqueue(
            uow=uow(),
            routed=[(str(uuid.uuid4()), queued_item()), (str(uuid.uuid4()), queued_item())],
            policy=rules,
            now=now,
        )
        for key, at in (("old", now - handlers.CLAIM_KEY_KEEP), ("new", now)):
            item = await handlers.claim_next(
                uow=uow(), reviewer=ALI, department="", policy=rules, now=at, key=key
            )
            assert item is not None
        assert await kept(engine, "claim_keys") == {"old", "new"}

        assert await handlers.forget_leftovers(uow=uow(), now=now + timedelta(seconds=1)) is False
        for table in ("early_follow_ups", "withdrawals"):
            assert await kept(engine, table) == {str(young)}
        assert await kept(engine, "claim_keys") == {"new"}
        # In batches: True while a batch was full.
        later = now + handlers.EARLY_KEEP
        assert await handlers.forget_leftovers(uow=uow(), now=later, batch=1) is True
        assert await handlers.forget_leftovers(uow=uow(), now=later, batch=1) is False
        for table in ("early_follow_ups", "withdrawals", "claim_keys"):
            assert await kept(engine, table) == set()
    finally:
        await engine.dispose()


def queued_item() -> WorkItem:
    return WorkItem.enqueue(
        request_id=uuid.uuid4(),
        request_number=f"TW{uuid.uuid4().int % 10**9:09d}",
        department="passports",
        queue="passports.default",
        sub_service_code="passports.general",
        description="The photo does not appear when renewing passport",
        applicant_id="1000000008",
        document_ids=(),
        contact=Contact("+966551234567", "", "ar"),
        now=START,
        sla=Sla.days(5),
    )
