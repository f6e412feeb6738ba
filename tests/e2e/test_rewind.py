"""`tawasul-rewind`, as an operator runs it after putting a service's database back to a
backup: the service's groups move back to the backup's time, and once started the service
applies again what the restore took from it, without anyone downstream applying it twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import grpc
from tawasul.review.v1 import review_pb2
from tawasul_devstack.journey import Clients, eventually, new_citizen
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role

from tests.e2e.chaos import start
from tests.e2e.direct import scalar, sql
from tests.e2e.operator import run_tool
from tests.e2e.topics import records

DECIDED = "SELECT department FROM decisions WHERE request_id = :id"


async def _rewind(stack: Stack, *args: str) -> tuple[int, str]:
    ran = await run_tool(stack, "tawasul-rewind", *args)
    return ran.code, ran.out + ran.err


async def test_a_routing_database_put_back_to_a_backup_routes_again_what_it_missed(
    stack: Stack, clients: Clients
) -> None:
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    backup = datetime.now(UTC)
    request = await clients.submit(
        citizen,
        key=str(uuid.uuid4()),
        sub_service="reports.general-inquiry",
        description="My passport renewal has waited three weeks for the payment to clear",
        documents=[],
        mobile="0551234567",
    )
    department = await eventually(
        lambda: scalar(stack, "routing", DECIDED, id=request.request_id),
        what="routing's decision",
    )
    await asyncio.to_thread(stack.stop_service, "routing")
    try:
        # The backup's database: what routing applied since `backup` is not in it.
        await sql(stack, "routing", "DELETE FROM decisions WHERE decided_at >= :t", t=backup)
        await sql(stack, "routing", "DELETE FROM inbox WHERE applied_at >= :t", t=backup)
        code, out = await _rewind(stack, "routing", "--to", backup.isoformat())
        assert code == 0, out
        assert f"moved routing {topics.REQUEST_SUBMITTED}[" in out, out
    finally:
        await start(stack, "routing")

    again = await eventually(
        lambda: scalar(stack, "routing", DECIDED, id=request.request_id),
        what="the request routed again",
    )
    assert again == department
    # Published again under the same sequence: review keeps its one work item.
    routed = await records(
        stack.config.kafka_bootstrap, topics.REQUEST_ROUTED, {request.request_id}, at_least=2
    )
    assert len(routed) == 2
    owned = "SELECT count(*) FROM work_items WHERE request_id = :id"
    assert await scalar(stack, "review", owned, id=request.request_id) == 1


async def test_rewind_refuses_while_the_service_reads_and_moves_nothing(stack: Stack) -> None:
    code, out = await _rewind(stack, "review", "--to", datetime.now(UTC).isoformat())
    assert code != 0
    assert "stop review (every replica) first" in out, out
    code, out = await _rewind(stack, "review", "--to", "2026-12-06T09:00:00")
    assert code != 0
    assert "--to needs its zone" in out, out


async def _queued_in(clients: Clients, reviewer: str, request_id: str) -> review_pb2.WorkItem:
    """The request once it waits in the reviewer's department's queue."""

    async def probe() -> review_pb2.WorkItem | None:
        try:
            answer = await clients.review.GetWorkItem(
                review_pb2.GetWorkItemRequest(request_id=request_id),
                timeout=DEFAULT_DEADLINE_SECONDS,
                metadata=bearer(reviewer),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        queued = answer.item.state == review_pb2.WORK_ITEM_STATE_QUEUED
        return answer.item if queued else None

    return await eventually(probe, what="the request queued in the reviewer's department")


async def _transfer(clients: Clients, reviewer: str, request_id: str, to: str) -> None:
    await _queued_in(clients, reviewer, request_id)
    await clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=request_id),
        timeout=DEFAULT_DEADLINE_SECONDS,
        metadata=bearer(reviewer),
    )
    await clients.review.TransferRequest(
        review_pb2.TransferRequestRequest(
            request_id=request_id, department_code=to, reason=f"a matter for {to}"
        ),
        timeout=DEFAULT_DEADLINE_SECONDS,
        metadata=bearer(reviewer),
    )


async def test_a_transfer_after_routing_was_put_back_and_replayed_still_moves_the_request(
    stack: Stack, clients: Clients
) -> None:
    """Put back to a backup from before a request it routed and that was transferred twice,
    routing applies it all again and numbers its decisions again, fewer when a poll brings
    the submission and its transfers together; review moves the request on the next transfer
    all the same (it waited, transferred, for a decision numbered above those it had seen)."""
    reviewer = {
        department: clients.token(employee, Role.REVIEWER, frozenset({department}))
        for department, employee in (
            ("reports", "E7101"),
            ("residents", "E7102"),
            ("visas", "E7103"),
            ("passports", "E7104"),
        )
    }
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    backup = datetime.now(UTC)
    request = await clients.submit(
        citizen,
        key=str(uuid.uuid4()),
        sub_service="reports.general-inquiry",
        description="My passport renewal has waited three weeks for the payment to clear",
        documents=[],
        mobile="0551234567",
    )
    request_id = request.request_id
    await _transfer(clients, reviewer["reports"], request_id, "residents")
    await _transfer(clients, reviewer["residents"], request_id, "visas")
    await _queued_in(clients, reviewer["visas"], request_id)

    await asyncio.to_thread(stack.stop_service, "routing")
    try:
        await sql(stack, "routing", "DELETE FROM decisions WHERE decided_at >= :t", t=backup)
        await sql(stack, "routing", "DELETE FROM inbox WHERE applied_at >= :t", t=backup)
        code, out = await _rewind(stack, "routing", "--to", backup.isoformat())
        assert code == 0, out
    finally:
        await start(stack, "routing")
    latest = (
        "SELECT department FROM decisions WHERE request_id = :id ORDER BY sequence DESC LIMIT 1"
    )

    async def replayed() -> bool:
        return bool(await scalar(stack, "routing", latest, id=request_id) == "visas")

    await eventually(replayed, what="routing's decisions applied again")

    await _transfer(clients, reviewer["visas"], request_id, "passports")
    moved = await _queued_in(clients, reviewer["passports"], request_id)
    assert moved.department_code == "passports"
