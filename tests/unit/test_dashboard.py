"""The Grafana dashboard, without Grafana: its schema's essentials, and every query reading
metrics that the services declare (tests/e2e/test_metrics.py holds them against what the
running stack exports). The checks are shown to object to broken dashboards, so that they
cannot rot into ones that pass whatever they read."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.dashboard import (
    declared,
    label_names,
    label_values,
    load,
    metric_names,
    panels,
    problems,
    substituted,
    unknown_metrics,
    variable_queries,
)


def query(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    (target, *_) = next(p for p in panels(dashboard) if p["title"] == title)["targets"]
    found: dict[str, Any] = target
    return found


def test_the_dashboard_has_its_essentials() -> None:
    assert problems(load()) == []


def test_every_query_reads_metrics_the_services_declare() -> None:
    assert unknown_metrics(load(), declared()) == []


def test_a_query_of_a_metric_no_service_exports_fails() -> None:
    dashboard = load()
    query(dashboard, "Consumer lag")["expr"] = "sum by (group) (tawasul_consumer_lags)"
    dashboard["templating"]["list"][1]["query"]["query"] = "label_values(tawasul_queue, queue)"

    assert unknown_metrics(dashboard, declared()) == [
        "panel 'Consumer lag' A: tawasul_consumer_lags is exported by no service",
        "variable 'department': tawasul_queue is exported by no service",
    ]


def test_a_query_that_reads_no_metric_fails() -> None:
    dashboard = load()
    query(dashboard, "Consumer lag")["expr"] = "sum by (group) (vector(0))"

    assert unknown_metrics(dashboard, declared()) == [
        "panel 'Consumer lag' A: reads no metric: sum by (group) (vector(0))"
    ]


@pytest.mark.parametrize(
    ("expr", "names", "labels"),
    [
        (
            'histogram_quantile(0.99, sum by (le, grpc_method) (rate(a_bucket{grpc_code!="OK",'
            ' x=~"$v|y"}[$__rate_interval])))',
            {"a_bucket"},
            {"le", "grpc_method", "grpc_code", "x"},
        ),
        (
            "sum without (instance) (b) / on (job) group_left (team) c offset 5m",
            {"b", "c"},
            {"instance", "job", "team"},
        ),
        (
            '{__name__="d", job="x"} and count_values("le", e) unless f @ start()',
            {"d", "e", "f"},
            {"job"},
        ),
        (
            "max(g{state=~'due_soon|breached'}) > bool 1e3 or h:recorded:rate5m",
            {"g", "h:recorded:rate5m"},
            {"state"},
        ),
        ('label_replace(i, "dst", "$1", "src", "(.*)") * ${factor}', {"i"}, set()),
        (
            "sum by (department) (max by (department, queue) (j)) > inf",
            {"j"},
            {"department", "queue"},
        ),
    ],
)
def test_metric_and_label_names_are_told_from_functions_and_keywords(
    expr: str, names: set[str], labels: set[str]
) -> None:
    assert metric_names(expr) == names
    assert label_names(expr) == labels


def test_the_essentials_catch_broken_dashboards() -> None:
    def broken(change: Any) -> list[str]:
        dashboard = copy.deepcopy(load())
        change(dashboard)
        return problems(dashboard)

    def twin_ids(d: dict[str, Any]) -> None:
        d["panels"][2]["id"] = d["panels"][1]["id"]

    def overlap(d: dict[str, Any]) -> None:
        d["panels"][2]["gridPos"] = dict(d["panels"][1]["gridPos"], x=2)

    def too_wide(d: dict[str, Any]) -> None:
        d["panels"][-1]["gridPos"]["w"] = 30

    def fixed_source(d: dict[str, Any]) -> None:
        query(d, "Open")["datasource"] = {"type": "prometheus", "uid": "prod-prometheus"}

    def no_query(d: dict[str, Any]) -> None:
        query(d, "Open")["expr"] = " "

    def no_variable(d: dict[str, Any]) -> None:
        del d["templating"]["list"][0]

    assert broken(twin_ids) == ["panel 'Due soon': its id 2 is missing or taken"]
    assert broken(overlap) == ["panels 'Due soon' and 'Breached' overlap"]
    assert broken(too_wide) == ["panel 'Notification results (last hour)': wider than the grid"]
    assert broken(fixed_source) == ["panel 'Open': a query not on ${datasource}"]
    assert broken(no_query) == ["panel 'Open': no query"]
    assert broken(no_variable) == ["no datasource variable of Prometheus data sources"]


def test_grafanas_variables_are_substituted_in_every_form() -> None:
    values = {"department": "reports", "__rate_interval": "1m"}
    expr = 'rate(a{d=~"$department", e="${department}", f="${department:regex}"}[$__rate_interval])'

    assert substituted(expr, values) == 'rate(a{d=~"reports", e="reports", f="reports"}[1m])'
    with pytest.raises(KeyError, match="__range"):
        substituted("increase(a[$__range])", values)


def test_the_department_variable_lists_a_label_of_a_metric() -> None:
    assert dict(variable_queries(load())) == {
        "department": "label_values(tawasul_review_queue_items, department)"
    }
    assert label_values('label_values(a{b="c"}, d)') == ('a{b="c"}', "d")
    with pytest.raises(ValueError, match="not label_values"):
        label_values("query_result(a)")
