"""The relationship registry from a data file: the development stand-in for the national one.

In production this port is answered by the government registry (Absher / Muqeem); the file
holds sample people, their dependents, hosted visitors and sponsored workers, and may declare
a prefix under which every valid national ID is a synthetic citizen with no relations, and one
under which every valid iqama number is a synthetic resident (who files about their own iqama),
so that load tests and end-to-end tests have as many distinct people as they need.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tawasul_intake.domain.identity import luhn_valid
from tawasul_intake.domain.people import Person, PersonKind, Relation

DEV_REGISTRY = Path(__file__).with_name("registry.dev.json")


@dataclass(frozen=True)
class FileRegistry:
    people: dict[str, Person]
    relations: dict[tuple[str, str], Relation]
    synthetic_prefix: str = ""
    synthetic_resident_prefix: str = ""
    synthetic_resident_nationality: str = ""

    @classmethod
    def from_file(cls, path: Path) -> FileRegistry:
        raw: dict[str, Any] = json.loads(path.read_text("utf-8"))
        people = {
            p["id"]: Person(
                id_number=p["id"],
                kind=PersonKind(p["kind"]),
                nationality=p["nationality"],
                name_ar=p["name_ar"],
                name_en=p["name_en"],
            )
            for p in raw["people"]
        }
        relations = {(r["holder"], r["person"]): Relation(r["kind"]) for r in raw["relations"]}
        unknown = {person for _, person in relations} - people.keys()
        if unknown:
            raise ValueError(f"{path}: relations name unknown people {sorted(unknown)}")
        prefix = str(raw.get("synthetic_citizens", {}).get("prefix", ""))
        if prefix and not (prefix.isdigit() and prefix.startswith("1") and len(prefix) >= 2):
            raise ValueError(f"{path}: synthetic_citizens.prefix must be digits starting with 1")
        residents = raw.get("synthetic_residents", {})
        resident_prefix = str(residents.get("prefix", ""))
        nationality = str(residents.get("nationality", ""))
        if resident_prefix and not (
            resident_prefix.isdigit()
            and resident_prefix.startswith("2")
            and len(resident_prefix) >= 2
        ):
            raise ValueError(f"{path}: synthetic_residents.prefix must be digits starting with 2")
        if resident_prefix and not re.fullmatch(r"[A-Z]{3}", nationality):
            raise ValueError(f"{path}: synthetic_residents.nationality must be an alpha-3 code")
        return cls(
            people=people,
            relations=relations,
            synthetic_prefix=prefix,
            synthetic_resident_prefix=resident_prefix,
            synthetic_resident_nationality=nationality,
        )

    async def person(self, id_number: str) -> Person | None:
        if id_number in self.people:
            return self.people[id_number]
        if _synthetic(id_number, self.synthetic_prefix):
            return Person(id_number, PersonKind.CITIZEN, "SAU", "مواطن تجريبي", "Test citizen")
        if _synthetic(id_number, self.synthetic_resident_prefix):
            nationality = self.synthetic_resident_nationality
            return Person(
                id_number, PersonKind.RESIDENT, nationality, "مقيم تجريبي", "Test resident"
            )
        return None

    async def relation(self, holder: str, id_number: str) -> Relation | None:
        if holder == id_number and await self.person(id_number) is not None:
            return Relation.SELF
        return self.relations.get((holder, id_number))


def _synthetic(id_number: str, prefix: str) -> bool:
    return (
        bool(prefix)
        and id_number.startswith(prefix)
        and len(id_number) == 10
        and id_number.isascii()
        and id_number.isdigit()
        and luhn_valid(id_number)
    )
