"""The service catalog: departments and sub-services, a versioned data file, not code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from tawasul_platform.identity import Role


@dataclass(frozen=True)
class Department:
    code: str
    name_ar: str
    name_en: str


@dataclass(frozen=True)
class SubService:
    code: str
    department: str
    name_ar: str
    name_en: str
    filers: frozenset[Role]
    sla_working_days: int


@dataclass(frozen=True)
class Catalog:
    version: int
    departments: dict[str, Department]
    sub_services: dict[str, SubService]


@cache
def load_catalog() -> Catalog:
    raw = json.loads(resources.files(__package__).joinpath("catalog.v1.json").read_text("utf-8"))
    departments = {d["code"]: Department(**d) for d in raw["departments"]}
    sub_services = {
        s["code"]: SubService(
            code=s["code"],
            department=s["department"],
            name_ar=s["name_ar"],
            name_en=s["name_en"],
            filers=frozenset(Role(f) for f in s["filers"]),
            sla_working_days=int(s["sla_working_days"]),
        )
        for s in raw["sub_services"]
    }
    unknown = {s.department for s in sub_services.values()} - departments.keys()
    if unknown:
        raise ValueError(f"catalog names unknown departments: {sorted(unknown)}")
    return Catalog(version=int(raw["version"]), departments=departments, sub_services=sub_services)
