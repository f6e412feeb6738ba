"""Intake on the real stack: who may file for whom, duplicates, tracking without login with a
one-time code through notify and the SMS gateway, follow-ups and cancellations seen in review."""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from datetime import date, timedelta
from string import ascii_lowercase

import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul.notify.v1 import notify_pb2
from tawasul.review.v1 import review_pb2
from tawasul.routing.v1 import routing_pb2
from tawasul_devstack.journey import (
    PASSPORT_PHOTO_FIELDS,
    Clients,
    eventually,
    new_citizen,
    sample_pdf,
)
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.grpc import (
    DEFAULT_DEADLINE_SECONDS,
    bearer,
    existing_resource,
    status_details,
)
from tawasul_platform.identity import Role

from tests.e2e.direct import sql
from tests.e2e.topics import gone_quiet, records

# The development registry's sample family and establishment (registry.dev.json).
HOLDER, SON, WIFE = "1000000008", "1023456781", "1012345672"
ESTABLISHMENT, WORKER = "7000000005", "2023456789"
TIMEOUT = DEFAULT_DEADLINE_SECONDS
# A citizen's or a resident's cap on open requests (intake's MAX_OPEN_PER_ACCOUNT), refused
# with these words (the English in the status message, the Arabic its LocalizedMessage).
OPEN_CAP = 10
OPEN_CAP_EN = "at most 10 open requests per account; follow up on or cancel one first"
OPEN_CAP_AR = "10 طلبات مفتوحة على الأكثر لكل حساب؛ تابع أحدها أو ألغه أولًا"


def new_mobile() -> str:
    return f"055{secrets.randbelow(10**7):07d}"


async def inquiry(
    clients: Clients, token: str, mobile: str = "", **more: object
) -> intake_pb2.Request:
    return await clients.submit(
        token,
        key=str(uuid.uuid4()),
        sub_service="reports.general-inquiry",
        description="My visa transaction has been stalled at the payment step for two weeks",
        documents=[],
        mobile=mobile or new_mobile(),
        **more,  # type: ignore[arg-type]
    )


def localized(error: grpc.aio.AioRpcError) -> tuple[str, str]:
    """The status's LocalizedMessage: its locale and text (Arabic for a call naming none)."""
    status = status_details(error)
    for detail in status.details if status else ():
        message = error_details_pb2.LocalizedMessage()
        if detail.Unpack(message):
            return message.locale, message.message
    return "", ""


async def submitted_events(bootstrap: str) -> list[events_pb2.RequestSubmitted]:
    """Every submission on the topic, up to its ends as they are now, whatever its key."""
    # No group: every partition is assigned, read from its start, and nothing is committed.
    consumer = AIOKafkaConsumer(
        topics.REQUEST_SUBMITTED,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:

        async def assigned() -> set[TopicPartition] | None:
            return consumer.assignment() or None

        partitions = await eventually(assigned, what="the submissions topic's partitions")
        found: list[events_pb2.RequestSubmitted] = []
        for partition, end in (await consumer.end_offsets(list(partitions))).items():
            while await consumer.position(partition) < end:
                for batch in (await consumer.getmany(partition, timeout_ms=300)).values():
                    for record in batch:
                        try:
                            envelope = events_pb2.Envelope.FromString(record.value or b"")
                        except DecodeError:
                            continue  # the dead-letter tests' poison: no submission in it
                        found.append(envelope.request_submitted)
        return found
    finally:
        await consumer.stop()


async def cancel(clients: Clients, token: str, number: str) -> intake_pb2.Request:
    answer = await clients.intake.CancelRequest(
        intake_pb2.CancelRequestRequest(request_number=number, reason="Test done"),
        timeout=TIMEOUT,
        metadata=bearer(token),
    )
    return answer.request


async def test_filing_for_oneself_a_dependent_and_a_sponsored_worker(clients: Clients) -> None:
    own = await inquiry(clients, clients.token(new_citizen(), Role.CITIZEN))
    assert own.subject_id == own.applicant_id

    holder = clients.token(HOLDER, Role.CITIZEN)
    for_son = await clients.submit(
        holder,
        key=str(uuid.uuid4()),
        sub_service="passports.issue-renewal-problem",
        description="The photo does not appear when renewing my son's passport after paying",
        documents=[],
        mobile=new_mobile(),
        subject_id=SON,
        fields={"national_id": SON, **PASSPORT_PHOTO_FIELDS},
    )
    establishment = clients.token(ESTABLISHMENT, Role.ESTABLISHMENT)
    for_worker = await clients.submit(
        establishment,
        key=str(uuid.uuid4()),
        sub_service="reports.absence-report",
        description="Our worker has not come to work since the first of the month, no contact",
        documents=[],
        mobile=new_mobile(),
        subject_id=WORKER,
        fields={
            "iqama_number": WORKER,
            "absence_date": "2026-11-01",
            "worker_type": "establishment_worker",
        },
    )
    try:
        assert (for_son.applicant_id, for_son.subject_id) == (HOLDER, SON)
        assert (for_worker.applicant_id, for_worker.subject_id) == (ESTABLISHMENT, WORKER)
        assert for_worker.department_code == "reports"
    finally:
        await cancel(clients, holder, for_son.request_number)
        await cancel(clients, establishment, for_worker.request_number)

    stranger_id = new_citizen()
    stranger = clients.token(stranger_id, Role.CITIZEN)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inquiry(clients, stranger, subject_id=WIFE)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    mine = await clients.intake.ListMyRequests(
        intake_pb2.ListMyRequestsRequest(), timeout=TIMEOUT, metadata=bearer(stranger)
    )
    assert list(mine.requests) == []


async def test_a_duplicate_names_the_open_request_and_a_retry_returns_it(
    clients: Clients,
) -> None:
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    first = await inquiry(clients, citizen)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inquiry(clients, citizen)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert existing_resource(caught.value) == first.request_number

    key = str(uuid.uuid4())
    other = clients.token(new_citizen(), Role.CITIZEN)
    made = [
        await clients.submit(
            other,
            key=key,
            sub_service="reports.general-inquiry",
            description="Retried by the mobile app after a timeout: one request, not two",
            documents=[],
            mobile="0551234567",
        )
        for _ in range(2)
    ]
    assert made[0].request_number == made[1].request_number


async def test_an_account_keeps_at_most_ten_open_requests(stack: Stack, clients: Clients) -> None:
    applicant = new_citizen()
    citizen = clients.token(applicant, Role.CITIZEN)

    # Each a dependent with no number yet: each name is another person, so none of the
    # requests is a duplicate of another (intake's OpenKey.person).
    names = [
        "Child " + "".join(secrets.choice(ascii_lowercase) for _ in range(8))
        for _ in range(OPEN_CAP + 2)
    ]
    # Uploaded first, four at a time (docs' cap on one account's uploads at once).
    at_once = asyncio.Semaphore(4)

    async def proof(name: str) -> str:
        async with at_once:
            uploaded = await clients.upload(
                citizen,
                "kinship.pdf",
                sample_pdf(f"Family record extract: {name}"),
                sub_service="residents.dependents-services",
                kind="kinship_proof",
            )
        return uploaded.document_id

    proofs = dict(zip(names, await asyncio.gather(*map(proof, names)), strict=True))

    async def for_dependent(name: str) -> intake_pb2.Request:
        return await clients.submit(
            citizen,
            key=str(uuid.uuid4()),
            sub_service="residents.dependents-services",
            description=f"Adding my newborn {name} to the family record",
            documents=[proofs[name]],
            mobile=new_mobile(),
            fields={
                "request_type": "add_dependent",
                "dependent_name": name,
                "dependent_date_of_birth": (date.today() - timedelta(days=30)).isoformat(),
                "relationship": "son",
            },
        )

    filed = await asyncio.gather(*(for_dependent(n) for n in names[:OPEN_CAP]))
    assert len({r.request_number for r in filed}) == OPEN_CAP

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await for_dependent(names[OPEN_CAP])
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.details() == OPEN_CAP_EN
    assert localized(caught.value) == ("ar", OPEN_CAP_AR)
    mine = await clients.intake.ListMyRequests(
        intake_pb2.ListMyRequestsRequest(), timeout=TIMEOUT, metadata=bearer(citizen)
    )
    assert {r.request_number for r in mine.requests} == {r.request_number for r in filed}

    # A cancelled one frees its place: the next is taken.
    await cancel(clients, citizen, filed[0].request_number)
    after = await for_dependent(names[OPEN_CAP + 1])
    assert after.status == common_pb2.REQUEST_STATUS_SUBMITTED

    # Only the accepted were published, once each, counted once the stack has gone quiet;
    # and the refused one made no event at all, under any key: none names its dependent.
    ids = {r.request_id for r in filed} | {after.request_id}
    accepted = await records(
        stack.config.kafka_bootstrap,
        topics.REQUEST_SUBMITTED,
        ids,
        at_least=len(ids),
        quiet=stack,
    )
    assert sorted(r.key.decode() for r in accepted if r.key) == sorted(ids)
    theirs = [
        e.fields["dependent_name"]
        for e in await submitted_events(stack.config.kafka_bootstrap)
        if e.applicant_id == applicant
    ]
    assert sorted(theirs) == sorted([*names[:OPEN_CAP], names[OPEN_CAP + 1]])
    for request in [*filed[1:], after]:
        await cancel(clients, citizen, request.request_number)


async def test_tracking_without_login_by_one_time_code(stack: Stack, clients: Clients) -> None:
    holder_id, mobile = new_citizen(), new_mobile()
    request = await inquiry(clients, clients.token(holder_id, Role.CITIZEN), mobile)
    e164 = "+966" + mobile[1:]
    number = request.request_number
    start = intake_pb2.StartTrackingRequest(
        request_number=number, id_number=holder_id, mobile=mobile
    )
    await clients.intake.StartTracking(start, timeout=TIMEOUT)

    async def code_sms() -> str | None:
        texts = [m["text"] for m in await clients.sms_received() if m["to"] == e164]
        codes = [found.group(0) for t in texts if (found := re.search(r"\b\d{6}\b", t))]
        return codes[-1] if codes else None

    code = await eventually(code_sms, what="the one-time code by SMS")
    right = {"request_number": number, "id_number": holder_id, "mobile": mobile, "code": code}
    wrong_values = {
        "request_number": "TW482913578",
        "id_number": new_citizen(),
        "mobile": new_mobile(),
        "code": f"{(int(code) + 1) % 10**6:06d}",
    }
    answers = set()
    for field, value in wrong_values.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await clients.intake.TrackRequest(
                intake_pb2.TrackRequestRequest(**{**right, field: value}), timeout=TIMEOUT
            )
        answers.add((caught.value.code(), caught.value.details()))
    assert answers == {(grpc.StatusCode.NOT_FOUND, "no request matches these details and code")}
    tracked = await clients.intake.TrackRequest(
        intake_pb2.TrackRequestRequest(**right), timeout=TIMEOUT
    )
    assert (tracked.request.request_number, tracked.request.status) == (
        number,
        common_pb2.REQUEST_STATUS_SUBMITTED,
    )

    # Notify recorded the delivery with the code masked: it rests nowhere in clear.
    reviewer = clients.token("E5001", Role.REVIEWER, frozenset({"reports"}))

    async def code_sent() -> list[notify_pb2.Delivery] | None:
        try:
            deliveries = await clients.notify.ListDeliveries(
                notify_pb2.ListDeliveriesRequest(request_id=request.request_id),
                timeout=TIMEOUT,
                metadata=bearer(reviewer),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:  # notify has not read it yet
                return None
            raise
        found = deliveries.deliveries
        return [d for d in found if d.cause_event_type.endswith("one-time-code")] or None

    await eventually(code_sent, what="the code's delivery in notify")
    # Counted once nothing more can come, so that a second delivery of the code would show.
    await gone_quiet(stack, {request.request_id})
    codes = await code_sent() or []
    assert len(codes) == 1
    assert code not in codes[0].text
    assert "••••••" in codes[0].text

    # Five code requests an hour per request: the sixth is refused, whoever asks.
    refused = []
    for _ in range(5):
        try:
            await clients.intake.StartTracking(start, timeout=TIMEOUT)
        except grpc.aio.AioRpcError as error:
            refused.append(error.code())
    assert refused == [grpc.StatusCode.RESOURCE_EXHAUSTED]


async def test_five_wrong_codes_void_the_code_the_right_one_too(clients: Clients) -> None:
    # Filed by the holder for his son: both IDs track it, and each with the mobile is another
    # set of details with its own per-request counter (5 checks an hour), so that five wrong
    # codes and the right one (six checks) are not refused by the counter, but by the code's.
    holder, mobile = clients.token(HOLDER, Role.CITIZEN), new_mobile()
    request = await inquiry(clients, holder, mobile, subject_id=SON)
    number, e164 = request.request_number, "+966" + mobile[1:]
    try:

        async def codes(count: int) -> list[str] | None:
            texts = [m["text"] for m in await clients.sms_received() if m["to"] == e164]
            found = [c.group(0) for t in texts if (c := re.search(r"\b\d{6}\b", t))]
            return found if len(found) >= count else None

        async def check(id_number: str, code: str) -> intake_pb2.TrackRequestResponse:
            return await clients.intake.TrackRequest(
                intake_pb2.TrackRequestRequest(
                    request_number=number, id_number=id_number, mobile=mobile, code=code
                ),
                timeout=TIMEOUT,
            )

        async def refused(id_number: str, code: str) -> tuple[grpc.StatusCode, str]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await check(id_number, code)
            return caught.value.code(), caught.value.details() or ""

        start = intake_pb2.StartTrackingRequest(
            request_number=number, id_number=HOLDER, mobile=mobile
        )
        await clients.intake.StartTracking(start, timeout=TIMEOUT)
        (code,) = await eventually(lambda: codes(1), what="the one-time code by SMS")
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        nothing = (grpc.StatusCode.NOT_FOUND, "no request matches these details and code")
        for id_number in [HOLDER, HOLDER, HOLDER, SON, SON]:
            assert await refused(id_number, wrong) == nothing
        # The sixth try is the right code: void, under either set of details.
        assert await refused(HOLDER, code) == nothing
        assert await refused(SON, code) == nothing

        # A new code works: it was the code that was spent, not the details' counters.
        await clients.intake.StartTracking(start, timeout=TIMEOUT)
        *_, fresh = await eventually(lambda: codes(2), what="a second code by SMS")
        tracked = await check(SON, fresh)
        assert tracked.request.request_number == number
    finally:
        await cancel(clients, holder, number)


async def test_follow_ups_wait_three_working_days_and_the_second_raises_the_item(
    stack: Stack, clients: Clients
) -> None:
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    reviewer = clients.token("E5002", Role.REVIEWER, frozenset({"reports"}))
    request = await inquiry(clients, citizen)

    async def item() -> review_pb2.WorkItem | None:
        items = await clients.queue(reviewer, "reports")
        return next((i for i in items if i.request_id == request.request_id), None)

    await eventually(item, what="the request in the reports queue")
    follow = intake_pb2.FollowUpRequest(request_number=request.request_number, message="Any news?")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.intake.FollowUp(follow, timeout=TIMEOUT, metadata=bearer(citizen))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert request.follow_up_from.text_en in (caught.value.details() or "")

    # Ten days pass (in intake's database: the service itself reads the real clock).
    await sql(
        stack,
        "intake",
        "UPDATE requests SET submitted_at = submitted_at - interval '10 days'"
        " WHERE number = :number",
        number=request.request_number,
    )
    answer = await clients.intake.FollowUp(follow, timeout=TIMEOUT, metadata=bearer(citizen))
    assert answer.request.follow_up_count == 1

    async def history() -> list[tuple[str, str, str]] | None:
        case = await clients.review.GetCase(
            review_pb2.GetCaseRequest(request_id=request.request_id),
            timeout=TIMEOUT,
            metadata=bearer(reviewer),
        )
        entries = [(h.actor, h.action, h.text) for h in case.history]
        return entries if ("applicant", "followed_up", "Any news?") in entries else None

    await eventually(history, what="the follow-up on the case's record")
    # One follow-up raises nothing: routing's rule wants two.
    once = await item()
    assert once is not None
    assert once.priority == 0

    # And a day later (at most one a working day), the second.
    await sql(
        stack,
        "intake",
        "UPDATE requests SET last_follow_up_at = last_follow_up_at - interval '10 days'"
        " WHERE number = :number",
        number=request.request_number,
    )
    again = intake_pb2.FollowUpRequest(
        request_number=request.request_number, message="Still waiting"
    )
    answer = await clients.intake.FollowUp(again, timeout=TIMEOUT, metadata=bearer(citizen))
    assert answer.request.follow_up_count == 2

    async def raised() -> int | None:
        found = await item()
        return found.priority if found and found.priority > 0 else None

    assert await eventually(raised, what="the item raised in its queue") == 15
    decision = await clients.routing.GetDecision(
        routing_pb2.GetDecisionRequest(request_id=request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    assert (decision.decision.queue, decision.decision.rule) == (
        "reports.default",
        "follow-up+rules.v1:repeated-follow-ups",
    )
    assert ("routing", "prioritised", "priority 15") in (await history() or [])


async def test_a_cancelled_request_leaves_the_review_queue(clients: Clients) -> None:
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    reviewer = clients.token("E5003", Role.REVIEWER, frozenset({"reports"}))
    request = await inquiry(clients, citizen)

    async def in_queue() -> bool | None:
        items = await clients.queue(reviewer, "reports")
        return True if any(i.request_id == request.request_id for i in items) else None

    await eventually(in_queue, what="the request in the reports queue")
    cancelled = await cancel(clients, citizen, request.request_number)
    assert cancelled.status == common_pb2.REQUEST_STATUS_CANCELLED
    assert (cancelled.status_label.ar, cancelled.status_label.en) == ("ملغى", "Cancelled")

    async def withdrawn() -> bool | None:
        answer = await clients.review.GetWorkItem(
            review_pb2.GetWorkItemRequest(request_id=request.request_id),
            timeout=TIMEOUT,
            metadata=bearer(reviewer),
        )
        return True if answer.item.state == review_pb2.WORK_ITEM_STATE_WITHDRAWN else None

    await eventually(withdrawn, what="the cancelled request withdrawn in review")
    items = await clients.queue(reviewer, "reports")
    assert request.request_id not in {i.request_id for i in items}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cancel(clients, citizen, request.request_number)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
