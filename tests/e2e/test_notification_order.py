"""What the beneficiary's phone says last is where review left the request, even when notify
reads a request's status changes in one poll (a reviewer who claims and decides at once, or
notify catching up after a restart)."""

from __future__ import annotations

import asyncio
import functools
import uuid

from tawasul.notify.v1 import notify_pb2
from tawasul.review.v1 import review_pb2
from tawasul_devstack.journey import Clients, eventually, new_citizen
from tawasul_devstack.stack import Stack
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role

DEPARTMENT = "reports"
REQUESTS = 3


async def test_a_backlog_of_status_changes_reaches_each_phone_in_review_s_order(
    stack: Stack, clients: Clients
) -> None:
    reviewer = clients.token("E7301", Role.REVIEWER, frozenset({DEPARTMENT}))
    filed: list[tuple[str, str, str, str]] = []  # citizen id, mobile, number, request id
    for _ in range(REQUESTS):
        citizen_id, mobile = new_citizen(), f"+96655{uuid.uuid4().int % 10**7:07d}"
        request = await clients.submit(
            clients.token(citizen_id, Role.CITIZEN),
            key=str(uuid.uuid4()),
            sub_service="reports.general-inquiry",
            description="My iqama renewal has been stalled with error 4411 for two weeks",
            documents=[],
            mobile=mobile,
            fields={"related_service": "Iqama renewal"},
        )
        filed.append((citizen_id, mobile, request.request_number, request.request_id))
    for _, mobile, number, request_id in filed:
        await eventually(
            functools.partial(clients.sms_to, mobile, number, 1), what="the receipt's SMS"
        )

        async def queued(request_id: str = request_id) -> bool | None:
            items = await clients.queue(reviewer, DEPARTMENT)
            return True if any(i.request_id == request_id for i in items) else None

        await eventually(queued, what="the request in the reports queue")

    # Notify is down while review claims, accepts and processes each request: it reads the
    # three status changes of each in one poll when it is back.
    await asyncio.to_thread(stack.stop_service, "notify")
    try:
        for *_, request_id in filed:
            metadata = bearer(reviewer)
            await clients.review.ClaimRequest(
                review_pb2.ClaimRequestRequest(request_id=request_id),
                timeout=DEFAULT_DEADLINE_SECONDS,
                metadata=metadata,
            )
            await clients.review.DecideRequest(
                review_pb2.DecideRequestRequest(
                    request_id=request_id,
                    decision=review_pb2.DECISION_ACCEPT,
                    message="The stalled renewal is released",
                ),
                timeout=DEFAULT_DEADLINE_SECONDS,
                metadata=metadata,
            )
            await clients.review.MarkProcessed(
                review_pb2.MarkProcessedRequest(request_id=request_id, message="Renewed"),
                timeout=DEFAULT_DEADLINE_SECONDS,
                metadata=metadata,
            )
    finally:
        await asyncio.to_thread(stack.start_service, "notify")

    for citizen_id, mobile, number, _ in filed:
        texts = [
            m["text"]
            for m in await eventually(
                functools.partial(clients.sms_to, mobile, number, 4), what="four SMS"
            )
        ]
        # The gateway keeps them in the order they came: the receipt, then review's order.
        said = [("قيد المراجعة" in t, "مقبول" in t, "تمت المعالجة" in t) for t in texts[1:]]
        assert said == [(True, False, False), (False, True, False), (False, False, True)], texts
        inbox = await clients.notify.ListInbox(
            notify_pb2.ListInboxRequest(),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(clients.token(citizen_id, Role.CITIZEN)),
        )
        # Newest first: the last word on top.
        assert [m.kind for m in inbox.messages] == [
            "processed",
            "accepted",
            "under_review",
            "submitted",
        ]
