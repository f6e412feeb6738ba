"""ClaimNext sent again under its idempotency key, on review's real gRPC server and PostgreSQL.

A claim committed whose answer never reached the reviewer (the service died, the connection
dropped) is asked for again by the client under the same key: it answers the item claimed, so
that the reviewer holds one, not a second while the first waits, unseen, for its lease to lapse.
Once that item is no longer theirs (its lease lapsed, released, given to another), the retry
says so instead of quietly claiming another in its place.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from sqlalchemy import text
from tawasul.review.v1 import review_pb2, review_pb2_grpc
from tawasul_calendar import Sla
from tawasul_devstack.journey import eventually
from tawasul_platform.grpc import bearer, field_violations, status_details
from tawasul_platform.i18n import ACCEPT_LANGUAGE
from tawasul_platform.identity import Principal, Role
from tawasul_platform.migrations import upgrade
from tawasul_review.adapters.repository import ReviewUnitOfWork
from tawasul_review.app import handlers
from tawasul_review.domain.model import Contact, WorkItem

from .served import LEASE, MIGRATIONS, Served, served, token

ADMIN_ID = "A001"
ADMIN = token(ADMIN_ID)
ALI = token("E100", "passports")
SARA = token("E200", "passports")


class Review:
    def __init__(self, server: Served) -> None:
        self.stub = review_pb2_grpc.ReviewServiceStub(server.channel)
        self.admin = review_pb2_grpc.ReviewAdminServiceStub(server.channel)
        self.engine = server.engine
        self.database = server.database
        self.rules = server.rules
        self.clock = server.clock
        self.numbers = 0

    async def enqueue(self) -> str:
        self.numbers += 1
        item = WorkItem.enqueue(
            request_id=uuid.uuid4(),
            request_number=f"TW{self.numbers:09d}",
            department="passports",
            queue="passports.default",
            sub_service_code="passports.general",
            description="The photo does not appear when renewing passport",
            applicant_id="1000000008",
            document_ids=(),
            contact=Contact("+966551234567", "", "ar"),
            now=self.clock.now,
            sla=Sla.days(5),
        )
        await handlers.enqueue(
            uow=ReviewUnitOfWork(self.database),
            routed=[(str(uuid.uuid4()), item)],
            policy=self.rules,
            now=self.clock.now,
        )
        return str(item.request_id)

    async def claim_next(self, who: str, key: str) -> str:
        answer = await self.stub.ClaimNext(
            review_pb2.ClaimNextRequest(idempotency_key=key), timeout=10, metadata=bearer(who)
        )
        return answer.item.request_id if answer.HasField("item") else ""

    async def held(self, who: str = "E100") -> list[str]:
        page = await self.stub.ListQueue(
            review_pb2.ListQueueRequest(
                department_code="passports",
                assignee_id=who,
                state=review_pb2.WORK_ITEM_STATE_CLAIMED,
            ),
            timeout=5,
            metadata=bearer(ALI),
        )
        return [i.request_id for i in page.items]


@pytest.fixture
async def review(database_url: str) -> AsyncIterator[Review]:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    async with served(database_url, pool_size=5, admins=ADMIN_ID) as server:
        yield Review(server)


async def test_a_claim_whose_answer_was_lost_is_answered_again_not_doubled(
    review: Review,
) -> None:
    first, second = await review.enqueue(), await review.enqueue()
    key = str(uuid.uuid4())
    # Committed, and its answer lost on the way: the client sends it again.
    claimed = await review.claim_next(ALI, key)
    assert claimed == first
    review.clock.now += timedelta(minutes=1)
    assert await review.claim_next(ALI, key) == first
    assert await review.held() == [first]
    # A new claim is a new key: the next item.
    assert await review.claim_next(ALI, str(uuid.uuid4())) == second
    assert sorted(await review.held()) == sorted([first, second])


async def test_the_retry_renews_the_lease_and_is_answered_at_capacity(review: Review) -> None:
    """The first claim filled the reviewer's room: the retry still answers it."""
    await review.admin.PutReviewer(
        review_pb2.PutReviewerRequest(
            reviewer=review_pb2.Reviewer(
                reviewer_id="E100",
                departments=["passports"],
                languages=["ar", "en"],
                capacity=1,
                available=True,
            )
        ),
        timeout=5,
        metadata=bearer(ADMIN),
    )
    first = await review.enqueue()
    await review.enqueue()
    key = "cli-retry-1"
    assert await review.claim_next(ALI, key) == first
    review.clock.now += timedelta(minutes=20)
    answer = await review.stub.ClaimNext(
        review_pb2.ClaimNextRequest(idempotency_key=key), timeout=10, metadata=bearer(ALI)
    )
    assert answer.item.request_id == first
    assert answer.item.claimed_until.seconds == int(
        (review.clock.now + timedelta(minutes=30)).timestamp()
    )
    with pytest.raises(grpc.aio.AioRpcError) as full:
        await review.claim_next(ALI, "cli-retry-2")
    assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def lapsed(review: Review, who: str, key: str) -> tuple[str, str]:
    """The retry's refusal, in English and in Arabic (google.rpc.LocalizedMessage, the call
    asking for Arabic): the item its key claimed is no longer the caller's."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await review.stub.ClaimNext(
            review_pb2.ClaimNextRequest(idempotency_key=key),
            timeout=10,
            metadata=(*bearer(who), (ACCEPT_LANGUAGE, "ar")),
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status, arabic = status_details(refused.value), error_details_pb2.LocalizedMessage()
    assert status is not None
    assert any(detail.Unpack(arabic) for detail in status.details)
    return refused.value.details() or "", arabic.message


async def test_a_retry_after_its_claim_lapsed_says_so_instead_of_claiming_another(
    review: Review,
) -> None:
    """The answer lost, the reviewer's client asks again only after the lease lapsed (and a
    colleague took the item): a new item in its answer would look like the one they had."""
    first = await review.enqueue()
    second = await review.enqueue()
    key = str(uuid.uuid4())
    assert await review.claim_next(ALI, key) == first
    review.clock.now += LEASE + timedelta(minutes=1)
    await handlers.sweep(
        uow=ReviewUnitOfWork(review.database), policy=review.rules, now=review.clock.now
    )
    assert await review.claim_next(SARA, str(uuid.uuid4())) == first
    said = await lapsed(review, ALI, key)
    assert said[0].startswith("request TW000000001, which you claimed under this idempotency key,")
    assert said[1].startswith("الطلب TW000000001 الذي حجزته بمفتاح عدم التكرار هذا لم يعد لك")
    assert await review.held() == []
    # Asked again under it, the same answer; a new key claims the next item.
    assert await lapsed(review, ALI, key) == said
    assert await review.claim_next(ALI, str(uuid.uuid4())) == second
    assert await review.held() == [second]


async def test_a_key_whose_item_is_no_longer_the_reviewers_claims_nothing_more(
    review: Review,
) -> None:
    first, second = await review.enqueue(), await review.enqueue()
    key = "k-1"
    assert await review.claim_next(ALI, key) == first
    # Another reviewer's key of the same spelling is theirs alone.
    assert await review.claim_next(SARA, key) == second
    await review.stub.ReleaseRequest(
        review_pb2.ReleaseRequestRequest(request_id=first), timeout=5, metadata=bearer(ALI)
    )
    await review.enqueue()
    review.clock.now += timedelta(minutes=1)
    # Released, the item is no longer theirs: the key says so, and claims nothing.
    await lapsed(review, ALI, key)
    assert await review.held() == []
    assert await review.claim_next(SARA, key) == second


async def blocked_by(review: Review, holder: ReviewUnitOfWork) -> int | None:
    """How many backends wait for a lock the `holder`'s transaction holds."""
    pid = await holder.session.scalar(text("SELECT pg_backend_pid()"))
    async with review.engine.connect() as conn:
        waits = await conn.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
            {"pid": pid},
        )
    return waits or None


async def test_a_retry_waits_for_its_item_held_by_another_transaction_not_claiming_a_second(
    review: Review,
) -> None:
    """A sweep checking the item's SLA, say, holds its row as the retry comes: passed over,
    the retry claimed the next item, and the reviewer held two for one call."""
    first = await review.enqueue()
    await review.enqueue()
    key = str(uuid.uuid4())
    assert await review.claim_next(ALI, key) == first
    review.clock.now += timedelta(minutes=1)
    async with ReviewUnitOfWork(review.database) as holder:
        assert await holder.items.get(uuid.UUID(first), for_update=True) is not None
        retry = asyncio.ensure_future(review.claim_next(ALI, key))

        async def waiting_or_answered() -> bool | None:
            return True if retry.done() or await blocked_by(review, holder) else None

        await eventually(waiting_or_answered, within=10, what="the retry to wait or answer")
        assert not retry.done(), f"answered {retry.result()} while {first} was held"
        await holder.commit()
    assert await retry == first
    assert await review.held() == [first]


async def test_a_retry_while_its_claim_is_still_under_way_answers_that_claim(
    review: Review,
) -> None:
    """The client asks again on its deadline while the first call, slow, has claimed and not
    yet committed: the retry waits for it and answers its item, not a second one."""
    first = await review.enqueue()
    await review.enqueue()
    key = str(uuid.uuid4())
    ali = Principal("E100", Role.REVIEWER, frozenset({"passports"}))
    async with ReviewUnitOfWork(review.database) as claiming:
        # The first call as claim_next makes it, stopped before its commit.
        await claiming.reviewers.lock("E100")
        item = await claiming.items.get(uuid.UUID(first), for_update=True)
        assert item is not None
        item.claim(ali, review.clock.now, LEASE)
        item.claim_key = key
        await claiming.items.flush()
        retry = asyncio.ensure_future(review.claim_next(ALI, key))

        async def waiting_or_answered() -> bool | None:
            return True if retry.done() or await blocked_by(review, claiming) else None

        await eventually(waiting_or_answered, within=10, what="the retry to wait or answer")
        assert not retry.done(), f"answered {retry.result()} while {first} was being claimed"
        await claiming.commit()
    assert await retry == first
    assert await review.held() == [first]


async def test_a_retry_whose_item_lapses_while_it_waits_says_it_lapsed(
    review: Review,
) -> None:
    first, second = await review.enqueue(), await review.enqueue()
    key = str(uuid.uuid4())
    assert await review.claim_next(ALI, key) == first
    review.clock.now += timedelta(minutes=31)
    async with ReviewUnitOfWork(review.database) as sweep:
        item = await sweep.items.get(uuid.UUID(first), for_update=True)
        assert item is not None
        retry = asyncio.ensure_future(review.claim_next(ALI, key))

        async def waiting_or_answered() -> bool | None:
            return True if retry.done() or await blocked_by(review, sweep) else None

        await eventually(waiting_or_answered, within=10, what="the retry to wait or answer")
        assert item.lapse(review.clock.now)
        await sweep.commit()
    # The claim it answered lapsed: the retry says so, and the reviewer holds nothing.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await retry
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await review.held() == []
    assert await review.claim_next(ALI, str(uuid.uuid4())) in (first, second)


@pytest.mark.parametrize("key", ["x" * 101, "a key", "مفتاح"])
async def test_a_malformed_key_is_refused_naming_the_field(review: Review, key: str) -> None:
    await review.enqueue()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await review.stub.ClaimNext(
            review_pb2.ClaimNextRequest(idempotency_key=key),
            timeout=5,
            metadata=(*bearer(ALI), (ACCEPT_LANGUAGE, "ar")),
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(refused.value)) == {"idempotency_key"}
    assert await review.held() == []
