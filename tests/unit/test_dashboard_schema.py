"""The dashboard loads into Grafana's own dashboard model: the foundation SDK's types, generated
from Grafana 11.6's schema with each panel plugin's options. Grafana itself cannot run in this
tier (it is AGPL, which the package policy keeps out), so this stands in for its loader:
nothing the schema does not know is in the file (it would be dropped on load, as a misspelt
key is), nothing changes its type, and every panel is a plugin Grafana ships. What the queries
return is tests/e2e/test_prometheus.py's, on a real Prometheus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "tawasul.json"


def lost(written: Any, loaded: Any, path: str = "") -> list[str]:
    """Where `loaded` (the model, encoded again) lacks or alters what `written` holds; the
    defaults the model adds are not losses."""
    if isinstance(written, dict) and isinstance(loaded, dict):
        return [
            found
            for key, value in written.items()
            for found in (
                lost(value, loaded[key], f"{path}/{key}") if key in loaded else [f"{path}/{key}"]
            )
        ]
    if isinstance(written, list) and isinstance(loaded, list) and len(written) == len(loaded):
        return [
            found
            for i, (w, r) in enumerate(zip(written, loaded, strict=True))
            for found in lost(w, r, f"{path}[{i}]")
        ]
    return [] if written == loaded else [f"{path}: {written!r} became {loaded!r}"]


def load() -> tuple[dict[str, Any], Dashboard]:
    plugins.register_default_plugins()
    written = json.loads(DASHBOARD.read_text())
    return written, Dashboard.from_json(written)


def test_grafanas_model_keeps_every_key_and_value_of_the_dashboard() -> None:
    written, dashboard = load()
    assert lost(written, json.loads(json.dumps(dashboard, cls=JSONEncoder))) == []


def test_a_misspelt_key_would_be_lost_on_load() -> None:
    written, _ = load()
    written["panels"][1]["gridpos"] = written["panels"][1].pop("gridPos")
    loaded = json.loads(json.dumps(Dashboard.from_json(written), cls=JSONEncoder))
    assert lost(written, loaded) == ["/panels[1]/gridpos"]


def test_every_panel_is_a_plugin_grafana_ships_with_its_options_understood() -> None:
    _, dashboard = load()
    panels = [p for p in dashboard.panels or [] if isinstance(p, Panel)]
    rows = [p for p in dashboard.panels or [] if isinstance(p, RowPanel)]
    assert rows, "the dashboard is in rows"
    # A plugin the SDK knows decodes its options into its own model, not a bare dict.
    undecoded = [p.title for p in panels if isinstance(p.options, dict) or not p.type_val]
    assert undecoded == []
    assert {p.type_val for p in panels} <= {"stat", "timeseries", "table", "bargauge", "gauge"}
