"""A real Prometheus server (`tawasul-stack install --prometheus` builds it; the fixture does on
demand) scraping every process of the test stack each second around one journey: every query
of the Grafana dashboard, with Grafana's variables filled in, is one Prometheus accepts, the
panels the journey fills show it, and production's alert rules all evaluate. Every label the
queries and rules match on or group by is one their metrics really carry: a misspelt label
evaluates without error, to nothing, and an alert on it never fires."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from tawasul_devstack import install
from tawasul_devstack.components.prometheus import SCRAPED, rule_groups
from tawasul_devstack.journey import Clients, eventually
from tawasul_devstack.stack import PROMETHEUS, SERVICES, Stack
from tawasul_platform.topics import REQUEST_ROUTED, REQUEST_SUBMITTED

from tests.dashboard import (
    label_names,
    label_values,
    load,
    metric_names,
    panels,
    substituted,
    targets,
    variable_queries,
)
from tests.e2e.metered import CATALOG, DEPARTMENT, metered_journey

Series = dict[str, Any]
INTAKE = "tawasul.intake.v1.IntakeService"
# What Grafana puts in for its own variables on a dashboard of the last hours; $department is
# the journey's department, then Grafana's "All" (the variable's allValue).
GRAFANA = {"__interval": "15s", "__rate_interval": "1m", "__range": "1h"}
DEPARTMENTS = (DEPARTMENT, ".*")
# Prometheus's zero time: a rule not evaluated yet.
NEVER = "0001-01-01T00:00:00Z"


def labelled(*wanted: dict[str, str]) -> Callable[[list[Series]], bool]:
    """Every one of `wanted` is a subset of some series' labels."""
    return lambda found: all(any(w.items() <= s["metric"].items() for s in found) for w in wanted)


def some(found: list[Series]) -> bool:
    """A series at all: a total over the queues, whatever its value."""
    return bool(found)


def at_least_one(found: list[Series]) -> bool:
    return any(float(s["value"][1]) >= 1 for s in found)


QUEUE = {"department": DEPARTMENT}
# What each panel shows once the journey went through (with $department the journey's or All).
FILLED: dict[str, Callable[[list[Series]], bool]] = {
    "Open": at_least_one,
    "Breached": some,
    "Due soon": some,
    "Waiting on the beneficiary": some,
    "Oldest open item": some,
    "Queue size by department": lambda found: at_least_one(
        [s for s in found if s["metric"] == QUEUE]
    ),
    "Due soon and breached by department": labelled(
        {**QUEUE, "state": "due_soon"}, {**QUEUE, "state": "breached"}
    ),
    "Oldest open item by queue": labelled(QUEUE),
    "Waiting on the beneficiary by department": labelled(QUEUE),
    "Outbox backlog": labelled(*({"service": s} for s in SERVICES)),
    "Oldest unsent outbox row": labelled(*({"service": s} for s in SERVICES)),
    "Consumer lag": labelled(
        {"group": "routing", "topic": REQUEST_SUBMITTED},
        {"group": "review", "topic": REQUEST_ROUTED},
    ),
    "Events applied": labelled(
        {"group": "routing", "topic": REQUEST_SUBMITTED},
        {"group": "review", "topic": REQUEST_ROUTED},
    ),
    "gRPC p99 by method": labelled({"grpc_service": INTAKE, "grpc_method": "SubmitRequest"}),
    "gRPC refusals and errors by code": labelled(
        {"grpc_method": "SubmitRequest", "grpc_code": "INVALID_ARGUMENT"}
    ),
    "Gateway p99 by route": labelled({"method": "GET", "route": CATALOG}),
    "Gateway answers by status": labelled({"route": CATALOG, "status": "200"}),
    "Notification results (last hour)": labelled({"channel": "sms"}),
}
# Accepted, but a journey need not fill them: nothing was dead-lettered, and a poll shows
# only while it applies (milliseconds, none at the instant asked, once the journey is done).
MAY_BE_EMPTY = {"Dead letters", "Poll under way for"}


@pytest.fixture(scope="module")
async def prometheus(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    install.ensure_prometheus(stack.config.cache_dir)
    stack.start_service(PROMETHEUS)
    try:
        async with httpx.AsyncClient(base_url=stack.config.prometheus_url, timeout=10.0) as http:
            yield http
    finally:
        stack.stop_service(PROMETHEUS)


@pytest.fixture(scope="module")
async def journey(stack: Stack, clients: Clients, prometheus: httpx.AsyncClient) -> None:
    async def every_process_scraped() -> set[str] | None:
        found = await instant(prometheus, "up == 1")
        jobs = {s["metric"]["job"] for s in found}
        return jobs if jobs == set(SCRAPED) else None

    await eventually(every_process_scraped, what="every process's metrics scraped")
    await metered_journey(stack, clients)


async def api(http: httpx.AsyncClient, path: str, **params: str) -> Any:
    """The data of a Prometheus API answer; AssertionError with its error if it has one."""
    answer = (await http.get(f"/api/v1/{path}", params=params)).json()
    assert answer["status"] == "success", f"{path} {params}: {answer}"
    return answer["data"]


async def instant(http: httpx.AsyncClient, query: str) -> list[Series]:
    data = await api(http, "query", query=query)
    assert data["resultType"] == "vector", f"{query}: a {data['resultType']}"
    found: list[Series] = data["result"]
    return found


def queries(department: str) -> list[tuple[str, str]]:
    """(panel title, PromQL as Grafana sends it) of every panel's query."""
    values = {**GRAFANA, "department": department}
    return [(title, substituted(expr, values)) for title, _, expr in targets(load())]


def test_every_panel_is_either_filled_by_the_journey_or_may_be_empty() -> None:
    titles = {p["title"] for p in panels(load()) if p["type"] != "row"}
    assert set(FILLED) | MAY_BE_EMPTY == titles
    assert not set(FILLED) & MAY_BE_EMPTY


@pytest.mark.parametrize("department", DEPARTMENTS)
async def test_every_dashboard_query_shows_the_journey(
    prometheus: httpx.AsyncClient, journey: None, department: str
) -> None:
    async def shown() -> dict[str, list[Series]] | None:
        results = {title: await instant(prometheus, query) for title, query in queries(department)}
        return results if all(FILLED[t](results[t]) for t in FILLED) else None

    try:
        await eventually(shown, within=60.0, what="every panel showing the journey")
    except TimeoutError:
        # Say which panels stay empty or miss the journey, with what they show.
        results = {title: await instant(prometheus, query) for title, query in queries(department)}
        unfilled = {t: results[t] for t in FILLED if not FILLED[t](results[t])}
        raise AssertionError(f"panels not showing the journey: {unfilled}") from None


async def test_the_department_variable_lists_the_journeys_department(
    prometheus: httpx.AsyncClient, journey: None
) -> None:
    ((name, query),) = variable_queries(load())
    match, label = label_values(query)

    async def listed() -> list[str] | None:
        values: list[str] = await api(prometheus, f"label/{label}/values", **{"match[]": match})
        return values if DEPARTMENT in values else None

    assert name == "department"
    assert DEPARTMENT in await eventually(listed, what=f"{DEPARTMENT} among the departments")


async def test_every_alert_rule_evaluates(
    stack: Stack, prometheus: httpx.AsyncClient, journey: None
) -> None:
    groups = rule_groups(stack.config.alert_rules_file)

    async def evaluated() -> list[Series] | None:
        found = await api(prometheus, "rules")
        rules: list[Series] = [r for g in found["groups"] for r in g["rules"]]
        return rules if rules and all(r["lastEvaluation"] != NEVER for r in rules) else None

    rules = await eventually(evaluated, what="every alert rule evaluated once")
    assert sorted(r["name"] for r in rules) == sorted(
        rule["alert"] for group in groups for rule in group["rules"]
    )
    assert {r["name"]: (r["health"], r.get("lastError", "")) for r in rules} == {
        r["name"]: ("ok", "") for r in rules
    }


async def test_every_label_queried_is_one_the_metrics_carry(
    stack: Stack, prometheus: httpx.AsyncClient, journey: None
) -> None:
    exprs = {f"panel {title!r}": expr for title, _, expr in targets(load())}
    exprs |= {
        f"alert {rule['alert']}": rule["expr"]
        for group in rule_groups(stack.config.alert_rules_file)
        for rule in group["rules"]
    }

    async def unknown() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for where, expr in exprs.items():
            names = "|".join(sorted(metric_names(expr)))
            series = await api(prometheus, "series", **{"match[]": f'{{__name__=~"{names}"}}'})
            carried = {label for s in series for label in s}
            if missing := label_names(expr) - carried:
                found[where] = missing
        return found

    async def all_known() -> bool | None:
        return True if not await unknown() else None

    try:
        await eventually(all_known, what="every label queried on the metrics")
    except TimeoutError:
        raise AssertionError(f"labels no series carries: {await unknown()}") from None
