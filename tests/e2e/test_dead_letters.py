"""Events a consumer cannot apply are parked on its group's dead-letter topic; the partition
goes on, and other groups are not affected. Once the cause is mended, an operator replays
them with `tawasul-dead-letters`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul.review.v1 import review_pb2
from tawasul_devstack.journey import Clients, eventually, new_citizen
from tawasul_devstack.stack import Stack
from tawasul_platform import deadletters, topics
from tawasul_platform.grpc import bearer
from tawasul_platform.identity import Role

from tests.e2e.chaos import start
from tests.e2e.direct import scalar, sql
from tests.e2e.operator import run_tool
from tests.e2e.topics import publish, records


async def test_poison_events_are_dead_lettered_and_the_queue_goes_on(
    stack: Stack, clients: Clients
) -> None:
    garbage_key, unroutable_key = f"poison-{uuid.uuid4()}", str(uuid.uuid4())
    unroutable = events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.submitted",
        schema_version=1,
        request_id=unroutable_key,
        producer="test",
        request_submitted=events_pb2.RequestSubmitted(
            request_id=unroutable_key, request_number="TW2699999999", sub_service_code="no.such"
        ),
    )
    for key, value in (
        (garbage_key, b"\xff not a protobuf envelope"),
        (unroutable_key, unroutable.SerializeToString()),
    ):
        await publish(
            stack.config.kafka_bootstrap, topics.REQUEST_SUBMITTED, value, key=key.encode()
        )

    request = await clients.submit(
        clients.token(new_citizen(), Role.CITIZEN),
        key=str(uuid.uuid4()),
        sub_service="reports.general-inquiry",
        description="My transaction has been stalled for two weeks at the payment step",
        documents=[],
        mobile="0551234567",
    )
    reviewer = clients.token("E4001", Role.REVIEWER, frozenset({"reports"}))

    async def queued() -> bool | None:
        items = await clients.queue(reviewer, "reports")
        return True if any(i.request_id == request.request_id for i in items) else None

    await eventually(queued, what="a good request routed after the poison ones")

    for group in ("routing", "notify-events"):
        parked = await records(
            stack.config.kafka_bootstrap,
            topics.dead_letter_topic(topics.REQUEST_SUBMITTED, group),
            {garbage_key, unroutable_key},
            at_least=2,
        )
        by_key = {r.key.decode(): dict(r.headers) for r in parked if r.key is not None}
        assert set(by_key) == {garbage_key, unroutable_key}, group
        assert b"DecodeError" in by_key[garbage_key]["dlt.error"]
        assert by_key[unroutable_key]["dlt.source"].startswith(topics.REQUEST_SUBMITTED.encode())


async def test_a_dead_letter_replayed_once_its_cause_is_mended_reaches_its_queue(
    stack: Stack, clients: Clients
) -> None:
    bootstrap = stack.config.kafka_bootstrap
    # What earlier tests left parked on review's routed dead letters is not this test's.
    await deadletters.discard(bootstrap, topics.REQUEST_ROUTED, "review", 10**6)
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    reviewer = clients.token("E4002", Role.REVIEWER, frozenset({"reports"}))
    # Review holds a stale work item under the number intake gives the next request (left by
    # a harness that published routing's events, as bench/ did once): the real request's
    # placement is refused, parked, and the request stays submitted.
    for name in ("routing", "review"):
        await asyncio.to_thread(stack.stop_service, name)
    try:
        request = await clients.submit(
            citizen,
            key=str(uuid.uuid4()),
            sub_service="reports.general-inquiry",
            description="My transaction has been stalled for two weeks at the payment step",
            documents=[],
            mobile="0551234567",
        )
        stale = str(uuid.uuid4())
        await _publish_routed(bootstrap, stale, request.request_number)
        await start(stack, "review")

        async def queued(request_id: str) -> bool | None:
            try:
                items = await clients.queue(reviewer, "reports")
            except grpc.aio.AioRpcError as error:
                # Review has just started: this client's channel may not have found it yet.
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                return None
            return True if any(i.request_id == request_id for i in items) else None

        await eventually(lambda: queued(stale), what="the stale work item in the queue")
    finally:
        for name in ("review", "routing"):  # review runs already, unless the above failed
            await start(stack, name)
    (parked,) = await records(
        bootstrap,
        topics.dead_letter_topic(topics.REQUEST_ROUTED, "review"),
        {request.request_id},
        at_least=1,
    )
    listed = await _tool(stack, "list")
    assert f"request={request.request_id}" in listed
    assert "request_number" in dict(parked.headers)["dlt.error"].decode()
    tracked = await clients.track(citizen, request.request_number)
    assert tracked.status == common_pb2.REQUEST_STATUS_SUBMITTED

    # Mended: the stale item goes. Replayed: the request reaches its queue and is worked.
    await sql(stack, "review", "DELETE FROM history WHERE request_id = :id", id=stale)
    await sql(stack, "review", "DELETE FROM work_items WHERE request_id = :id", id=stale)
    replayed = await _tool(stack, "replay", topics.REQUEST_ROUTED, "review")
    assert replayed.endswith("1 replayed\n"), replayed
    assert f"request={request.request_id}" in replayed
    await eventually(lambda: queued(request.request_id), what="the replayed request queued")
    claimed = await clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=request.request_id), metadata=bearer(reviewer)
    )
    assert claimed.item.request_number == request.request_number

    async def under_review() -> bool | None:
        seen = await clients.track(citizen, request.request_number)
        return True if seen.status == common_pb2.REQUEST_STATUS_UNDER_REVIEW else None

    await eventually(under_review, what="the beneficiary seeing the request under review")
    # Applied this time: parked once only, and nothing is left pending.
    again = await records(
        bootstrap,
        topics.dead_letter_topic(topics.REQUEST_ROUTED, "review"),
        {request.request_id},
        at_least=1,
    )
    assert [r.offset for r in again] == [parked.offset]
    assert "tawasul.requests.routed.v1.dlt.review" not in await _tool(stack, "list")
    owned = "SELECT count(*) FROM work_items WHERE request_number = :number"
    assert await scalar(stack, "review", owned, number=request.request_number) == 1


async def test_a_status_change_replayed_after_a_later_one_leaves_the_status_shown(
    stack: Stack, clients: Clients
) -> None:
    """Review's claim, parked on intake's dead letters and replayed after its information
    request was applied: the beneficiary is still asked for what is missing."""
    bootstrap = stack.config.kafka_bootstrap
    parked_on = topics.dead_letter_topic(topics.REQUEST_STATUS_CHANGED, "intake")
    await deadletters.discard(bootstrap, topics.REQUEST_STATUS_CHANGED, "intake", 10**6)
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    reviewer = clients.token("E4003", Role.REVIEWER, frozenset({"reports"}))
    request = await clients.submit(
        citizen,
        key=str(uuid.uuid4()),
        sub_service="reports.general-inquiry",
        description="My transaction has been stalled for two weeks at the payment step",
        documents=[],
        mobile="0551234567",
    )

    async def queued() -> bool | None:
        items = await clients.queue(reviewer, "reports")
        return True if any(i.request_id == request.request_id for i in items) else None

    await eventually(queued, what="the request queued")
    await clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=request.request_id), metadata=bearer(reviewer)
    )
    await clients.review.RequestInformation(
        review_pb2.RequestInformationRequest(
            request_id=request.request_id,
            missing=[
                common_pb2.MissingItem(
                    kind="document", name="supporting_document", description="Receipt"
                )
            ],
            message="Which payment is it?",
        ),
        metadata=bearer(reviewer),
    )

    async def status() -> common_pb2.RequestStatus.ValueType:
        return (await clients.track(citizen, request.request_number)).status

    async def asked() -> bool | None:
        return True if await status() == common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO else None

    await eventually(asked, what="the beneficiary asked for what is missing")
    changes = [
        events_pb2.Envelope.FromString(r.value or b"")
        for r in await records(
            bootstrap, topics.REQUEST_STATUS_CHANGED, {request.request_id}, at_least=2
        )
    ]
    assert [c.request_status_changed.sequence for c in changes] == [1, 2]
    # The claim as intake would have parked it, had it failed there: replayed, it comes last.
    claim = changes[0]
    claim.event_id = str(uuid.uuid4())
    await publish(bootstrap, parked_on, claim.SerializeToString(), key=request.request_id.encode())
    replayed = await _tool(stack, "replay", topics.REQUEST_STATUS_CHANGED, "intake")
    assert replayed.endswith("1 replayed\n"), replayed
    applied = "SELECT count(*) FROM inbox WHERE event_id = :id"
    await eventually(
        lambda: _one(scalar(stack, "intake", applied, id=claim.event_id)),
        what="intake taking the replayed claim",
    )
    assert await status() == common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO
    assert "dlt.intake" not in await _tool(stack, "list")


async def _one(count: Awaitable[object]) -> bool | None:
    return True if await count == 1 else None


async def _publish_routed(bootstrap: str, request_id: str, number: str) -> None:
    submitted_at = Timestamp()
    submitted_at.GetCurrentTime()
    routed = events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.routed",
        schema_version=1,
        request_id=request_id,
        producer="test",
        request_routed=events_pb2.RequestRouted(
            request_id=request_id,
            request_number=number,
            sub_service_code="reports.general-inquiry",
            department_code="reports",
            queue="reports",
            description="A placement a test harness published and never cleared",
            applicant_id=new_citizen(),
            contact=common_pb2.Contact(mobile="+966551234567", locale="ar"),
            submitted_at=submitted_at,
        ),
    )
    await publish(
        bootstrap, topics.REQUEST_ROUTED, routed.SerializeToString(), key=request_id.encode()
    )


async def _tool(stack: Stack, *args: str) -> str:
    """Runs the operators' command as they would, with the operator's certificate on the TLS
    listener (Kafka's ACLs let no service read the other groups' dead letters), and returns
    what it printed."""
    ran = await run_tool(stack, "tawasul-dead-letters", *args)
    assert ran.code == 0, ran.err
    return ran.out
