"""ReviewService over gRPC: translates wire messages to use-case calls and back."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from tawasul.review.v1 import review_pb2, review_pb2_grpc
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.events import timestamp
from tawasul_platform.grpc import bearer_token, caller

from tawasul_review.app import handlers
from tawasul_review.app.ports import Documents, UnitOfWork
from tawasul_review.domain.model import Decision, QueuePosition, State, WorkItem

Context = grpc.aio.ServicerContext[Any, Any]

_STATE = {
    State.QUEUED: review_pb2.WORK_ITEM_STATE_QUEUED,
    State.CLAIMED: review_pb2.WORK_ITEM_STATE_CLAIMED,
    State.DECIDED: review_pb2.WORK_ITEM_STATE_DECIDED,
    State.WITHDRAWN: review_pb2.WORK_ITEM_STATE_WITHDRAWN,
}
_DECISION_TO_WIRE = {
    Decision.ACCEPT: review_pb2.DECISION_ACCEPT,
    Decision.REJECT: review_pb2.DECISION_REJECT,
}
_DECISION_FROM_WIRE = {wire: d for d, wire in _DECISION_TO_WIRE.items()}


def _request_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise InvalidArgument({"request_id": "not a request id"}) from exc


def _page_token(position: QueuePosition) -> str:
    raw = json.dumps([position.rank, position.queued_at.isoformat(), position.request_number])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _position(token: str) -> QueuePosition:
    try:
        rank, queued_at, number = json.loads(base64.urlsafe_b64decode(token.encode()))
        return QueuePosition(int(rank), datetime.fromisoformat(queued_at), str(number))
    except (ValueError, TypeError) as exc:
        raise InvalidArgument({"page_token": "not a token this service issued"}) from exc


def to_wire(item: WorkItem) -> review_pb2.WorkItem:
    return review_pb2.WorkItem(
        request_id=str(item.request_id),
        request_number=item.request_number,
        department_code=item.department,
        sub_service_code=item.sub_service_code,
        description=item.description,
        state=_STATE[item.state],
        assignee_id=item.assignee,
        decision=(
            _DECISION_TO_WIRE[item.decision] if item.decision else review_pb2.DECISION_UNSPECIFIED
        ),
        queued_at=timestamp(item.queued_at),
        document_ids=list(item.document_ids),
        priority=item.priority,
    )


class ReviewServicer(review_pb2_grpc.ReviewServiceServicer):
    def __init__(self, *, uow: Callable[[], UnitOfWork], documents: Documents, secret: str) -> None:
        self._uow = uow
        self._documents = documents
        self._secret = secret

    async def ListQueue(
        self, request: review_pb2.ListQueueRequest, context: Context
    ) -> review_pb2.ListQueueResponse:
        if request.page_size < 0:
            raise InvalidArgument({"page_size": "must not be negative"})
        items, following = await handlers.list_queue(
            uow=self._uow(),
            reviewer=caller(context, self._secret),
            department=request.department_code,
            limit=request.page_size,
            after=_position(request.page_token) if request.page_token else None,
        )
        return review_pb2.ListQueueResponse(
            items=[to_wire(i) for i in items],
            next_page_token=_page_token(following) if following else "",
        )

    async def ClaimRequest(
        self, request: review_pb2.ClaimRequestRequest, context: Context
    ) -> review_pb2.ClaimRequestResponse:
        item = await handlers.claim(
            uow=self._uow(),
            reviewer=caller(context, self._secret),
            request_id=_request_id(request.request_id),
            now=datetime.now(UTC),
        )
        return review_pb2.ClaimRequestResponse(item=to_wire(item))

    async def GetWorkItem(
        self, request: review_pb2.GetWorkItemRequest, context: Context
    ) -> review_pb2.GetWorkItemResponse:
        item, attachments = await handlers.open_item(
            uow=self._uow(),
            documents=self._documents,
            reviewer=caller(context, self._secret),
            token=bearer_token(context),
            request_id=_request_id(request.request_id),
        )
        return review_pb2.GetWorkItemResponse(
            item=to_wire(item),
            attachments=[
                review_pb2.Attachment(
                    document_id=a.document_id,
                    filename=a.filename,
                    content_type=a.content_type,
                    size_bytes=a.size_bytes,
                    download_url=a.download_url,
                    url_expires_at=timestamp(a.url_expires_at),
                )
                for a in attachments
            ],
        )

    async def DecideRequest(
        self, request: review_pb2.DecideRequestRequest, context: Context
    ) -> review_pb2.DecideRequestResponse:
        decision = _DECISION_FROM_WIRE.get(request.decision)
        if decision is None:
            raise InvalidArgument({"decision": "DECISION_ACCEPT or DECISION_REJECT"})
        item = await handlers.decide(
            uow=self._uow(),
            reviewer=caller(context, self._secret),
            request_id=_request_id(request.request_id),
            decision=decision,
            message=request.message,
            now=datetime.now(UTC),
        )
        return review_pb2.DecideRequestResponse(item=to_wire(item))
