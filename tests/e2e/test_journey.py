"""One request's whole journey through every service, each hop real, checked where users see it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest
from tawasul.common.v1 import common_pb2
from tawasul.notify.v1 import notify_pb2
from tawasul.routing.v1 import routing_pb2
from tawasul_devstack import pki
from tawasul_devstack.journey import (
    PASSPORT_PHOTO_FIELDS,
    Clients,
    eventually,
    new_citizen,
    sample_pdf,
)
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer, field_violations
from tawasul_platform.identity import Role

from tests.e2e.direct import bucket_client
from tests.e2e.topics import envelopes

MOBILE = "+966551234567"
DEPARTMENT = "passports"


def review_cli(stack: Stack, token: str, *args: str) -> str:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("tawasul-review-cli")), *args],
        env={
            **os.environ,
            "TAWASUL_REVIEW_ADDRESS": stack.config.grpc_address("review"),
            "TAWASUL_REVIEWER_TOKEN": token,
            **stack.config.tls_env(pki.REVIEW_CLI),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def stored_object(stack: Stack, key: str) -> bytes:
    answer = bucket_client(stack).get_object(stack.config.s3_bucket, key)
    try:
        return answer.read()
    finally:
        answer.close()
        answer.release_conn()


async def test_a_request_travels_from_channel_to_decision(stack: Stack, clients: Clients) -> None:
    citizen_id = new_citizen()
    citizen = clients.token(citizen_id, Role.CITIZEN)
    fields = {"national_id": citizen_id, **PASSPORT_PHOTO_FIELDS}
    reviewer = clients.token("E2001", Role.REVIEWER, frozenset({DEPARTMENT}))
    pdf = sample_pdf(f"receipt {uuid.uuid4()}")

    # 1. docs: the upload is checked by its bytes and lands in the bucket.
    document = await clients.upload(
        citizen,
        "receipt.pdf",
        pdf,
        sub_service="passports.issue-renewal-problem",
        kind="supporting_document",
    )
    assert (document.content_type, document.size_bytes, document.owner_id) == (
        "application/pdf",
        len(pdf),
        citizen_id,
    )
    assert await asyncio.to_thread(stored_object, stack, f"documents/{document.document_id}") == pdf

    # 2. intake: a number comes back at once, and `submitted` reaches Kafka.
    key = str(uuid.uuid4())
    request = await clients.submit(
        citizen,
        key=key,
        sub_service="passports.issue-renewal-problem",
        description="The photo does not appear when renewing my passport; receipt attached",
        documents=[document.document_id],
        mobile="0551234567",
        fields=fields,
    )
    assert request.request_number.startswith("TW")
    assert request.status == common_pb2.REQUEST_STATUS_SUBMITTED
    assert request.department_code == DEPARTMENT
    assert request.expected_completion.text_ar.endswith(" م")
    assert "AH (" in request.expected_completion.text_en
    retried = await clients.submit(
        citizen,
        key=key,
        sub_service="passports.issue-renewal-problem",
        description="The photo does not appear when renewing my passport; receipt attached",
        documents=[document.document_id],
        mobile="0551234567",
        fields=fields,
    )
    assert retried.request_id == request.request_id
    ids = {request.request_id}
    (submitted,) = await envelopes(
        stack.config.kafka_bootstrap, topics.REQUEST_SUBMITTED, ids, at_least=1
    )
    assert submitted.event_type == "tawasul.requests.submitted"
    assert submitted.request_submitted.request_number == request.request_number
    assert list(submitted.request_submitted.document_ids) == [document.document_id]

    # 3. routing: decided from the catalog, recorded, and published.
    (routed,) = await envelopes(
        stack.config.kafka_bootstrap, topics.REQUEST_ROUTED, ids, at_least=1
    )
    assert (routed.request_routed.department_code, routed.request_routed.queue) == (
        DEPARTMENT,
        "passports.default",
    )
    decision = await clients.routing.GetDecision(
        routing_pb2.GetDecisionRequest(request_id=request.request_id),
        timeout=DEFAULT_DEADLINE_SECONDS,
        metadata=bearer(reviewer),
    )
    assert decision.decision.department_code == DEPARTMENT

    # 4. review: the reviewer works the queue with the CLI.
    async def queued() -> bool | None:
        items = await clients.queue(reviewer, DEPARTMENT)
        return True if any(i.request_id == request.request_id for i in items) else None

    await eventually(queued, what="the request in the passports queue")
    assert request.request_number in review_cli(stack, reviewer, "queue", DEPARTMENT)
    assert "claimed" in review_cli(stack, reviewer, "claim", request.request_id)
    shown = review_cli(stack, reviewer, "show", request.request_id)
    assert f"(supporting_document, application/pdf, {len(pdf)} bytes, link until " in shown
    url = next(line.strip() for line in shown.splitlines() if line.strip().startswith("http"))
    downloaded = await clients.http.get(url)
    assert (downloaded.status_code, downloaded.content) == (200, pdf)
    review_cli(stack, reviewer, "accept", request.request_id, "--message", "Photo fixed")
    changes = await envelopes(
        stack.config.kafka_bootstrap, topics.REQUEST_STATUS_CHANGED, ids, at_least=2
    )
    assert [
        (c.request_status_changed.status, c.request_status_changed.actor_id) for c in changes
    ] == [
        (common_pb2.REQUEST_STATUS_UNDER_REVIEW, "E2001"),
        (common_pb2.REQUEST_STATUS_ACCEPTED, "E2001"),
    ]

    # 5. intake: the beneficiary's tracking view shows the decision.
    async def accepted() -> common_pb2.RequestStatus.ValueType | None:
        tracked = await clients.track(citizen, request.request_number)
        return tracked.status if tracked.status == common_pb2.REQUEST_STATUS_ACCEPTED else None

    await eventually(accepted, what="accepted in the tracking view")
    assert (await clients.track(citizen, request.request_number)).decision_message == "Photo fixed"

    # 6. notify: submitted, under review and accepted, each told once by SMS and in-app. The
    # results (and the texts and inbox below) are counted once the stack has gone quiet, so a
    # late duplicate would show.
    results = await envelopes(
        stack.config.kafka_bootstrap, topics.NOTIFICATION_EVENTS, ids, at_least=9, quiet=stack
    )
    assert sorted((e.notification_sent.channel, e.notification_sent.status) for e in results) == [
        *[("inapp", "delivered")] * 3,
        *[("sms", "delivered")] * 3,
        *[("sms", "sent")] * 3,
    ]
    assert {e.notification_sent.kind for e in results} == {"submitted", "under_review", "accepted"}
    texts = [m["text"] for m in await clients.sms_received() if m["to"] == MOBILE]
    mine = [t for t in texts if request.request_number in t]
    assert len(mine) == 3, mine
    assert any("مقبول" in t for t in mine), mine
    inbox = await clients.notify.ListInbox(
        notify_pb2.ListInboxRequest(), timeout=DEFAULT_DEADLINE_SECONDS, metadata=bearer(citizen)
    )
    assert sorted(m.kind for m in inbox.messages) == ["accepted", "submitted", "under_review"]
    assert all(request.request_number in m.text for m in inbox.messages)
    deliveries = await clients.notify.ListDeliveries(
        notify_pb2.ListDeliveriesRequest(request_id=request.request_id),
        timeout=DEFAULT_DEADLINE_SECONDS,
        metadata=bearer(reviewer),
    )
    assert [d.status for d in deliveries.deliveries] == [notify_pb2.DELIVERY_STATUS_DELIVERED] * 6
    assert {d.recipient for d in deliveries.deliveries} == {"+9665•••••567", citizen_id}


async def test_bad_input_gets_a_clear_status_and_nothing_is_lost(clients: Clients) -> None:
    citizen_id = new_citizen()
    citizen = clients.token(citizen_id, Role.CITIZEN)
    other_id = new_citizen()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.submit(
            citizen,
            key=str(uuid.uuid4()),
            sub_service="passports.unknown",
            description="broken",
            documents=["nope"],
            mobile="12345",
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {
        "sub_service_code",
        "description",
        "document_ids[0]",
        "contact.mobile",
    }

    someone_elses = await clients.upload(citizen, "passport.pdf", sample_pdf("passport"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.submit(
            clients.token(other_id, Role.CITIZEN),
            key=str(uuid.uuid4()),
            sub_service="passports.issue-renewal-problem",
            description="Attaching a passport scan that another account uploaded",
            documents=[someone_elses.document_id],
            mobile="0551234567",
            fields={"national_id": other_id, **PASSPORT_PHOTO_FIELDS},
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"document_ids[0]"}

    # A name correction needs a passport copy: a supporting document does not stand for it.
    supporting = await clients.upload(
        citizen,
        "letter.pdf",
        sample_pdf("letter"),
        sub_service="corrections.name-or-birth-date",
        kind="supporting_document",
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.submit(
            citizen,
            key=str(uuid.uuid4()),
            sub_service="corrections.name-or-birth-date",
            description="My name is spelt wrongly in the passports records",
            documents=[supporting.document_id],
            mobile="0551234567",
            fields={
                "id_number": citizen_id,
                "correction": "name",
                "correct_name_ar": "محمد",
                "correct_name_en": "Mohammed",
            },
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == {
        "document_ids": "required documents missing: Passport copy"
    }

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.upload(citizen, "invoice.pdf", b"MZ\x90\x00 this is a Windows program")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.track("forged.token", "TW482913578")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.track(clients.token(other_id, Role.CITIZEN), "TW482913578")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    reviewer = clients.token("E2002", Role.REVIEWER, frozenset({"visas"}))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.queue(reviewer, DEPARTMENT)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
