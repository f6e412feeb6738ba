"""The journey the metrics tests watch: the catalog through the gateway, a submission and a
refused one, the request in review. Each step shows in some process's metrics."""

from __future__ import annotations

import uuid

import grpc
import httpx
import pytest
from tawasul.review.v1 import review_pb2
from tawasul_devstack.journey import Clients, eventually, new_citizen
from tawasul_devstack.stack import Stack
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role

SUB_SERVICE = "reports.general-inquiry"
# The department whose queue the request lands in.
DEPARTMENT = "reports"
CATALOG = "/api/v1/catalog"


async def metered_journey(stack: Stack, clients: Clients) -> None:
    async with httpx.AsyncClient(base_url=stack.config.gateway_url, timeout=30.0) as http:
        catalog = await http.get(CATALOG, params={"locale": "en"})
    assert catalog.status_code == 200
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    request = await clients.submit(
        citizen,
        key=str(uuid.uuid4()),
        sub_service=SUB_SERVICE,
        description="The e-service stops at the payment step with error 4410 each time",
        documents=[],
        mobile="0551234567",
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await clients.submit(
            citizen,
            key=str(uuid.uuid4()),
            sub_service=SUB_SERVICE,
            description="short",
            documents=[],
            mobile="0551234567",
        )
    reviewer = clients.token("E9301", Role.REVIEWER, frozenset({DEPARTMENT}))

    async def in_review() -> bool | None:
        try:
            await clients.review.GetWorkItem(
                review_pb2.GetWorkItemRequest(request_id=request.request_id),
                timeout=DEFAULT_DEADLINE_SECONDS,
                metadata=bearer(reviewer),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return True

    await eventually(in_review, what="the request in review")
