"""Every service's Prometheus metrics, scraped during a journey: the calls intake answered by
method and code, the events routing and review applied, and review's queue gauges."""

from __future__ import annotations

import uuid

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tawasul.review.v1 import review_pb2
from tawasul_devstack.journey import Clients, eventually, new_citizen
from tawasul_devstack.stack import SERVICES, Stack
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role
from tawasul_platform.topics import REQUEST_ROUTED, REQUEST_SUBMITTED

INTAKE = "tawasul.intake.v1.IntakeService"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(stack: Stack, service: str) -> Samples:
    async with httpx.AsyncClient(timeout=DEFAULT_DEADLINE_SECONDS) as http:
        answer = await http.get(stack.config.metrics_url(service))
    answer.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def calls(samples: Samples, method: str, code: str) -> float:
    return value(
        samples,
        "tawasul_grpc_server_handled_seconds_count",
        grpc_service=INTAKE,
        grpc_method=method,
        grpc_code=code,
    )


def applied(samples: Samples, topic: str, group: str) -> float:
    return value(
        samples, "tawasul_consumer_events_total", topic=topic, group=group, outcome="applied"
    )


async def test_a_journey_shows_in_every_services_metrics(stack: Stack, clients: Clients) -> None:
    before = {service: await scrape(stack, service) for service in SERVICES}
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    request = await clients.submit(
        citizen,
        key=str(uuid.uuid4()),
        sub_service="reports.general-inquiry",
        description="The e-service stops at the payment step with error 4410 each time",
        documents=[],
        mobile="0551234567",
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await clients.submit(
            citizen,
            key=str(uuid.uuid4()),
            sub_service="reports.general-inquiry",
            description="short",
            documents=[],
            mobile="0551234567",
        )
    reviewer = clients.token("E9301", Role.REVIEWER, frozenset({"reports"}))

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

    intake = await scrape(stack, "intake")
    assert (
        calls(intake, "SubmitRequest", "OK") - calls(before["intake"], "SubmitRequest", "OK") == 1
    )
    assert (
        calls(intake, "SubmitRequest", "INVALID_ARGUMENT")
        - calls(before["intake"], "SubmitRequest", "INVALID_ARGUMENT")
        == 1
    )
    # The histogram's buckets hold the calls too: the slowest bucket counts every one.
    assert value(
        intake,
        "tawasul_grpc_server_handled_seconds_bucket",
        grpc_service=INTAKE,
        grpc_method="SubmitRequest",
        grpc_code="OK",
        le="+Inf",
    ) == calls(intake, "SubmitRequest", "OK")

    routing = await scrape(stack, "routing")
    assert applied(routing, REQUEST_SUBMITTED, "routing") > applied(
        before["routing"], REQUEST_SUBMITTED, "routing"
    )
    review = await scrape(stack, "review")
    assert applied(review, REQUEST_ROUTED, "review") > applied(
        before["review"], REQUEST_ROUTED, "review"
    )

    # Review's queue gauges (read every second in the stack) count the open item.
    async def queued_in_reports() -> float | None:
        samples = await scrape(stack, "review")
        found = sum(
            v
            for (name, labels), v in samples.items()
            if name == "tawasul_review_queue_items"
            and ("department", "reports") in labels
            and ("state", "open") in labels
        )
        return found or None

    assert await eventually(queued_in_reports, what="the reports queue's gauge") >= 1

    # Every service serves its metrics, its outbox's gauges among them (their values are
    # the service tier's to check: here the relay publishes within milliseconds).
    for service in SERVICES:
        samples = await scrape(stack, service)
        assert ("tawasul_outbox_backlog", frozenset()) in samples, service
