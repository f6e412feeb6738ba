"""Who a request may be about: the account holder, or someone the holder answers for."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PersonKind(StrEnum):
    CITIZEN = "citizen"
    RESIDENT = "resident"
    # A visitor known only by a border number (رقم الحدود).
    VISITOR = "visitor"


class Relation(StrEnum):
    SELF = "self"
    # A family member on the holder's record (التابعين).
    DEPENDENT = "dependent"
    # A worker the holder (an establishment, or a household employer) sponsors.
    SPONSORED_WORKER = "sponsored_worker"
    # A family visitor the holder hosts on a visit visa.
    HOSTED_VISITOR = "hosted_visitor"


@dataclass(frozen=True)
class Person:
    id_number: str
    kind: PersonKind
    # ISO 3166-1 alpha-3.
    nationality: str
    name_ar: str
    name_en: str
