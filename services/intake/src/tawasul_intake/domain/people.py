"""Who a request may be about: the account holder, or someone the holder answers for."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tawasul_platform.catalog import SubjectRelation


class PersonKind(StrEnum):
    CITIZEN = "citizen"
    RESIDENT = "resident"
    # A visitor known only by a border number (رقم الحدود).
    VISITOR = "visitor"


# The catalog's own terms, so that a sub-service's subject_relations are checked against
# what the registry answers as they are.
Relation = SubjectRelation


@dataclass(frozen=True)
class Person:
    id_number: str
    kind: PersonKind
    # ISO 3166-1 alpha-3.
    nationality: str
    name_ar: str
    name_en: str
