"""The Grafana dashboard (deploy/grafana/tawasul.json), checked without a Grafana server: its
schema's essentials (problems), and the metric names its PromQL expressions read (metric_names),
which the tests hold against what the services declare and, in the e2e tier, really export.

The names come from a small PromQL tokenizer rather than a regular expression over the text:
label names (in braces and in by/without/on/ignoring lists), functions, aggregations,
keywords, strings, durations and Grafana's $variables all look like identifiers too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import tawasul_docs.adapters.storage
import tawasul_gateway.entrypoints.metrics
import tawasul_notify.adapters.metrics
import tawasul_platform.metrics
import tawasul_review.adapters.metrics
from prometheus_client import REGISTRY

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "tawasul.json"
DATASOURCE = "${datasource}"
GRID_WIDTH = 24
# Importing them declares them.
DECLARING = (
    tawasul_platform.metrics,
    tawasul_review.adapters.metrics,
    tawasul_notify.adapters.metrics,
    tawasul_gateway.entrypoints.metrics,
    tawasul_docs.adapters.storage,
)
SAMPLES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
# Grafana's template variables: $name, ${name} and ${name:format}.
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
# Grafana's query of a variable's values, which is not PromQL.
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<match>.+?)\s*,\s*(?P<label>\w+)\s*\)\s*$")

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    |(?P<variable>\$\{[^}]*\}|\$\w+)
    |(?P<range>\[[^\]]*\])
    |(?P<number>\d[\w.]*)
    |(?P<name>[a-zA-Z_:][\w:]*)
    |(?P<symbol>[(){}]|=~|!~|!=|==|=)
    |(?P<other>\S)
    """,
    re.VERBOSE,
)
# Followed by a list of label names in parentheses.
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", *_LABEL_LISTS}
# Aggregations may take their `by (...)` before their parentheses: `sum by (x) (m)`.
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip


def _tokens(expr: str) -> list[tuple[str, str]]:
    return [
        (kind, match[kind])
        for match in _TOKEN.finditer(expr)
        for kind in (match.lastgroup,)
        if kind is not None
    ]


def _names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) a PromQL expression reads."""
    tokens = _tokens(expr)
    names: set[str] = set()
    labels: set[str] = set()
    braces = 0
    in_list = False  # inside a by/without/on/... label list
    for i, (kind, text) in enumerate(tokens):
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if text == "{":
            braces += 1
        elif text == "}":
            braces -= 1
        elif text == ")" and in_list:
            in_list = False
        elif kind != "name":
            continue
        elif in_list:
            labels.add(text)
        elif braces:
            # A label matcher; only {__name__="m"} names a metric.
            if text == "__name__" and following == "=" and i + 2 < len(tokens):
                names.add(tokens[i + 2][1][1:-1])
            elif text != "__name__":
                labels.add(text)
        elif text in _LABEL_LISTS and following == "(":
            in_list = True
        elif following == "(" or text in _KEYWORDS or text in _AGGREGATIONS:
            continue
        else:
            names.add(text)
    return names, labels


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    return _names(expr)[0]


def label_names(expr: str) -> set[str]:
    """The label names a PromQL expression matches on or groups by."""
    return _names(expr)[1]


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def declared() -> set[str]:
    """The sample names of every metric the services declare, whether or not it has a value
    yet."""
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in SAMPLES.get(family.type, ("",))
    }


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(panel title, refId, PromQL) of every panel's query."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield str(panel.get("title")), str(target.get("refId")), target.get("expr", "")


def variable_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(name, query) of every query variable: Grafana's label_values(match, label)."""
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query)
            yield str(variable.get("name")), text


def label_values(query: str) -> tuple[str, str]:
    """(series selector, label) of a label_values(match, label) query; ValueError if it is
    not one."""
    found = _LABEL_VALUES.match(query)
    if found is None:
        raise ValueError(f"not label_values(match, label): {query}")
    return found["match"], found["label"]


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every query: the panels' targets and the query variables'."""
    for title, ref, expr in targets(dashboard):
        yield f"panel {title!r} {ref}", expr
    for name, query in variable_queries(dashboard):
        # label_values(metric, label): the metric is what it reads.
        yield f"variable {name!r}", re.sub(r",\s*\w+\)\s*$", ")", query)


def substituted(expr: str, values: Mapping[str, str]) -> str:
    """The query Grafana sends to Prometheus: each $variable replaced by its value; KeyError
    for a variable without one."""
    return _VARIABLE.sub(lambda m: values[m[1] or m[2]], expr)


def problems(dashboard: dict[str, Any]) -> list[str]:
    """What Grafana would load wrong or show empty: no uid or title, panels without a unique
    id, a place on the grid or a query, queries not on the $datasource variable, overlaps."""
    found = [f"no {key}" for key in ("uid", "title", "schemaVersion") if not dashboard.get(key)]
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    source = variables.get("datasource", {})
    if (source.get("type"), source.get("query")) != ("datasource", "prometheus"):
        found.append("no datasource variable of Prometheus data sources")
    seen: set[int] = set()
    placed: list[tuple[str, dict[str, int]]] = []
    for panel in panels(dashboard):
        title = str(panel.get("title"))
        if not isinstance(panel.get("id"), int) or panel["id"] in seen:
            found.append(f"panel {title!r}: its id {panel.get('id')!r} is missing or taken")
        else:
            seen.add(panel["id"])
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "xywh") or grid["w"] < 1 or grid["h"] < 1:
            found.append(f"panel {title!r}: no place on the grid")
            continue
        if grid["x"] < 0 or grid["x"] + grid["w"] > GRID_WIDTH:
            found.append(f"panel {title!r}: wider than the grid")
        found += [
            f"panels {title!r} and {other!r} overlap"
            for other, at in placed
            if grid["x"] < at["x"] + at["w"]
            and at["x"] < grid["x"] + grid["w"]
            and grid["y"] < at["y"] + at["h"]
            and at["y"] < grid["y"] + grid["h"]
        ]
        placed.append((title, grid))
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets", [])
        if not targets or not all(t.get("expr", "").strip() for t in targets):
            found.append(f"panel {title!r}: no query")
        if len({t.get("refId") for t in targets}) != len(targets):
            found.append(f"panel {title!r}: two queries share a refId")
        for owner in (panel, *targets):
            if owner.get("datasource", {}).get("uid") != DATASOURCE:
                found.append(f"panel {title!r}: a query not on {DATASOURCE}")
                break
    return found


def unknown_metrics(dashboard: dict[str, Any], exported: set[str]) -> list[str]:
    """Each query's metric names that are not in `exported` (sample names: a histogram's
    _bucket, _count and _sum, a counter's _total), and queries that read no metric at all."""
    found = []
    for where, expr in expressions(dashboard):
        names = metric_names(expr)
        if not names:
            found.append(f"{where}: reads no metric: {expr}")
        found += [f"{where}: {name} is exported by no service" for name in names - exported]
    return found
