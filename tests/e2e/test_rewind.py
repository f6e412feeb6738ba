"""`tawasul-rewind`, as an operator runs it after putting a service's database back to a
backup: the service's groups move back to the backup's time, and once started the service
applies again what the restore took from it, without anyone downstream applying it twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from tawasul_devstack.journey import Clients, eventually, new_citizen
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
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
