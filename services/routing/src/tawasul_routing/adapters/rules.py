"""The packaged routing rules file, read once per process."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from tawasul_platform.catalog import load_catalog

import tawasul_routing
from tawasul_routing.domain.rules import RoutingRules, parse_rules

RULES_FILE = "rules.v1.json"


@cache
def load_rules() -> RoutingRules:
    """The packaged rules over the packaged catalog; a bad file fails the caller's start-up."""
    text = resources.files(tawasul_routing).joinpath(RULES_FILE).read_text("utf-8")
    try:
        return parse_rules(json.loads(text), load_catalog())
    except ValueError as error:  # json.JSONDecodeError is a ValueError too
        raise ValueError(f"{RULES_FILE}: {error}") from error
