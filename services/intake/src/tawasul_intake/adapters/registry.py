"""The relationship registry from a data file: the development stand-in for the national one.

In production this port is answered by the government registry (Absher / Muqeem); the file
holds sample people, their dependents, hosted visitors and sponsored workers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tawasul_intake.domain.people import Person, PersonKind, Relation

DEV_REGISTRY = Path(__file__).with_name("registry.dev.json")


@dataclass(frozen=True)
class FileRegistry:
    people: dict[str, Person]
    relations: dict[tuple[str, str], Relation]

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
        return cls(people=people, relations=relations)

    async def person(self, id_number: str) -> Person | None:
        return self.people.get(id_number)

    async def relation(self, holder: str, id_number: str) -> Relation | None:
        if holder == id_number and id_number in self.people:
            return Relation.SELF
        return self.relations.get((holder, id_number))
