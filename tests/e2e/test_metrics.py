"""Every process's Prometheus metrics, scraped around one journey (the catalog through the
gateway, a submission and a refused one, the request in review): the calls intake answered by
method and code, the events routing and review applied and their lag, review's queue gauges,
notify's results, the gateway's answers, and every metric the Grafana dashboard reads."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tawasul_devstack.journey import Clients, eventually
from tawasul_devstack.pki import GATEWAY
from tawasul_devstack.stack import SERVICES, Stack
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS
from tawasul_platform.topics import REQUEST_ROUTED, REQUEST_SUBMITTED

from tests.dashboard import load, problems, unknown_metrics
from tests.e2e.direct import scalar
from tests.e2e.metered import metered_journey
from tests.e2e.topics import gone_quiet

INTAKE = "tawasul.intake.v1.IntakeService"
PROCESSES = (*SERVICES, GATEWAY)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(stack: Stack, process: str) -> Samples:
    async with httpx.AsyncClient(timeout=DEFAULT_DEADLINE_SECONDS) as http:
        answer = await http.get(stack.config.metrics_url(process))
    answer.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def matching(samples: Samples, name: str, **labels: str) -> list[float]:
    """The values of every `name` sample with at least these labels."""
    wanted = set(labels.items())
    return [v for (n, have), v in samples.items() if n == name and wanted <= have]


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


def sms_told(samples: Samples) -> float:
    """SMS deliveries of the last hour that went out (sent) or came back delivered."""
    return sum(
        matching(samples, "tawasul_notify_deliveries_last_hour", channel="sms", status=status)[0]
        for status in ("sent", "delivered")
    )


@dataclass(frozen=True)
class Journey:
    before: dict[str, Samples]
    # The reports department's open items just before the journey's own, as review stores
    # them: its gauge is read on a timer, so a scrape could still miss an earlier test's item.
    open_in_reports: int


@pytest.fixture(scope="module")
async def journey(stack: Stack, clients: Clients) -> Journey:
    await gone_quiet(stack, set())
    open_in_reports = await scalar(
        stack,
        "review",
        "SELECT count(*) FROM work_items"
        " WHERE department = 'reports' AND state IN ('queued', 'claimed')",
    )
    before = {process: await scrape(stack, process) for process in PROCESSES}
    await metered_journey(stack, clients)
    return Journey(before, open_in_reports)


async def test_a_journey_shows_in_every_services_metrics(stack: Stack, journey: Journey) -> None:
    before = journey.before
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

    # Review's queue gauges (read every second in the stack) count the open item, once.
    async def queued_in_reports() -> float | None:
        samples = await scrape(stack, "review")
        found = sum(
            matching(samples, "tawasul_review_queue_items", department="reports", state="open")
        )
        return found if found == journey.open_in_reports + 1 else None

    await eventually(queued_in_reports, what="the journey's item in the reports queue's gauge")

    # Every service serves its metrics, its outbox's gauges among them (their values are
    # the service tier's to check: here the relay publishes within milliseconds).
    for service in SERVICES:
        samples = await scrape(stack, service)
        assert ("tawasul_outbox_backlog", frozenset({("service", service)})) in samples


@pytest.mark.parametrize(
    ("service", "group", "topic"),
    [("routing", "routing", REQUEST_SUBMITTED), ("review", "review", REQUEST_ROUTED)],
)
async def test_the_consumers_lag_is_back_to_zero_once_they_drained(
    stack: Stack, journey: Journey, service: str, group: str, topic: str
) -> None:
    async def drained() -> list[float] | None:
        lags = matching(
            await scrape(stack, service), "tawasul_consumer_lag", group=group, topic=topic
        )
        return lags if lags and not any(lags) else None

    # Every partition the group holds is reported once fetched: one fetch answers for all.
    lags = await eventually(drained, what=f"{group}'s lag on {topic} back to 0")
    assert len(lags) == 6


async def test_the_submissions_sms_is_among_notifys_results(stack: Stack, journey: Journey) -> None:
    told_before = sms_told(journey.before["notify"])

    async def told() -> float | None:
        now = sms_told(await scrape(stack, "notify"))
        return now if now > told_before else None

    await eventually(told, what="the SMS in notify's results")


async def test_the_gateways_answers_are_counted_by_route(stack: Stack, journey: Journey) -> None:
    labels = {"route": "/api/v1/catalog", "method": "GET", "status": "200"}
    name = "tawasul_http_server_handled_seconds_count"
    gateway = await scrape(stack, GATEWAY)
    assert value(gateway, name, **labels) - value(journey.before[GATEWAY], name, **labels) == 1


async def test_every_metric_the_dashboard_reads_is_exported(stack: Stack, journey: Journey) -> None:
    dashboard = load()
    assert problems(dashboard) == []
    exported = {name for process in PROCESSES for name, _ in await scrape(stack, process)}
    assert unknown_metrics(dashboard, exported) == []
