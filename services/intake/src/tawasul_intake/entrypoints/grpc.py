"""IntakeService over gRPC: translates wire messages to use-case calls and back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from tawasul.common.v1 import common_pb2
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul_platform.catalog import Catalog
from tawasul_platform.events import timestamp
from tawasul_platform.grpc import bearer_token, caller

from tawasul_intake.adapters.events import STATUS_TO_WIRE
from tawasul_intake.app import handlers
from tawasul_intake.app.ports import Documents, UnitOfWork
from tawasul_intake.domain.model import Request, validate_submission

Context = grpc.aio.ServicerContext[Any, Any]


def to_wire(request: Request) -> intake_pb2.Request:
    return intake_pb2.Request(
        request_id=str(request.id),
        request_number=request.number,
        sub_service_code=request.sub_service_code,
        status=STATUS_TO_WIRE[request.status],
        description=request.description,
        document_ids=[str(d) for d in request.document_ids],
        applicant_id=request.applicant_id,
        submitted_at=timestamp(request.submitted_at),
        updated_at=timestamp(request.updated_at),
        decision_message=request.decision_message,
    )


class IntakeServicer(intake_pb2_grpc.IntakeServiceServicer):
    def __init__(
        self,
        *,
        uow: Callable[[], UnitOfWork],
        documents: Documents,
        catalog: Catalog,
        secret: str,
    ) -> None:
        self._uow = uow
        self._documents = documents
        self._catalog = catalog
        self._secret = secret

    async def SubmitRequest(
        self, request: intake_pb2.SubmitRequestRequest, context: Context
    ) -> intake_pb2.SubmitRequestResponse:
        contact = request.contact if request.HasField("contact") else common_pb2.Contact()
        submission = validate_submission(
            caller=caller(context, self._secret),
            catalog=self._catalog,
            idempotency_key=request.idempotency_key,
            sub_service_code=request.sub_service_code,
            description=request.description,
            document_ids=list(request.document_ids),
            mobile=contact.mobile,
            email=contact.email,
            locale=contact.locale,
        )
        stored = await handlers.submit_request(
            uow=self._uow(),
            documents=self._documents,
            token=bearer_token(context),
            submission=submission,
            now=datetime.now(UTC),
        )
        return intake_pb2.SubmitRequestResponse(request=to_wire(stored))

    async def GetRequest(
        self, request: intake_pb2.GetRequestRequest, context: Context
    ) -> intake_pb2.GetRequestResponse:
        found = await handlers.get_request(
            uow=self._uow(), caller=caller(context, self._secret), number=request.request_number
        )
        return intake_pb2.GetRequestResponse(request=to_wire(found))
