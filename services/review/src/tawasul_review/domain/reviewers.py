"""Reviewers as data: where they work, which languages they read, how much they may hold."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from tawasul_platform.errors import InvalidArgument
from tawasul_platform.i18n import Bilingual
from tawasul_platform.identity import EMPLOYEE_ID, EMPLOYEE_ID_FORM, Principal, StaffRecord

# Without a record, a reviewer works the departments of their token with these defaults.
DEFAULT_CAPACITY = 20
DEFAULT_LANGUAGES = frozenset({"ar", "en"})
MAX_CAPACITY = 500
_LANGUAGE = re.compile(r"[a-z]{2,3}")
_EMPLOYEE_ID_FORM = Bilingual(
    EMPLOYEE_ID_FORM, "من 1 إلى 50 حرفًا لاتينيًا أو رقمًا أو '.' أو '_' أو '-'"
)


def reviewer_id(raw: str, field: str = "reviewer_id") -> str:
    """An employee id naming a reviewer; INVALID_ARGUMENT on `field` otherwise."""
    if not EMPLOYEE_ID.fullmatch(raw):
        raise InvalidArgument({field: _EMPLOYEE_ID_FORM})
    return raw


@dataclass(frozen=True)
class Reviewer:
    reviewer_id: str
    departments: frozenset[str]
    languages: frozenset[str]
    capacity: int
    available: bool
    supervises: frozenset[str]
    # The departments whose membership this record decides; None: every one (an
    # administrator's record). In the others the reviewer follows their token: a supervisor
    # decides only for the departments they supervise, a record of availability for none.
    scope: frozenset[str] | None = None

    def granted(self, token: Principal) -> Reviewer:
        """This record applied to what identity grants today: it narrows the token's
        departments within its scope, and never widens them."""
        return replace(
            self,
            departments=self.record().narrows(token.departments),
            supervises=self.supervises & token.departments,
        )

    def record(self, version: int = 0) -> StaffRecord:
        """What other services need of it to narrow the reviewer's token as review does."""
        return StaffRecord(self.reviewer_id, self.departments, self.scope, version)

    def decided(self) -> frozenset[str]:
        """The departments whose membership this record decides."""
        return self.departments if self.scope is None else self.departments & self.scope

    def keeps(self, department: str) -> bool:
        """Whether this record leaves the reviewer in `department`: a member of it, or it is
        outside the record's scope (their token decides)."""
        return department in self.departments or (
            self.scope is not None and department not in self.scope
        )

    @classmethod
    def of_token(cls, principal: Principal) -> Reviewer:
        return cls(
            reviewer_id=principal.subject,
            departments=principal.departments,
            languages=DEFAULT_LANGUAGES,
            capacity=DEFAULT_CAPACITY,
            available=True,
            supervises=frozenset(),
        )

    @classmethod
    def create(
        cls,
        *,
        reviewer_id: str,
        departments: list[str],
        languages: list[str],
        capacity: int,
        available: bool,
        supervises: list[str],
        known_departments: frozenset[str],
    ) -> Reviewer:
        """A record as given; one of no department is the put's to judge (put_reviewer): a
        supervisor's takes the reviewer out of the departments they supervise."""
        problems: dict[str, Bilingual] = {}
        if not EMPLOYEE_ID.fullmatch(reviewer_id):
            problems["reviewer.reviewer_id"] = _EMPLOYEE_ID_FORM
        unknown = [d for d in [*departments, *supervises] if d not in known_departments]
        if unknown:
            problems["reviewer.departments"] = Bilingual(
                "names a department the catalog does not have", "يذكر قسمًا ليس في الدليل"
            )
        if not set(supervises) <= set(departments):
            problems["reviewer.supervises"] = Bilingual(
                "only departments the reviewer belongs to", "الأقسام التي ينتمي إليها المراجع فقط"
            )
        if not languages or not all(_LANGUAGE.fullmatch(lang) for lang in languages):
            problems["reviewer.languages"] = Bilingual(
                "ISO 639 codes such as 'ar', 'en'", "رموز ISO 639 مثل 'ar' و'en'"
            )
        if not 0 <= capacity <= MAX_CAPACITY:
            problems["reviewer.capacity"] = Bilingual(
                f"from 0 to {MAX_CAPACITY}", f"من 0 إلى {MAX_CAPACITY}"
            )
        if problems:
            raise InvalidArgument(problems)
        return cls(
            reviewer_id=reviewer_id,
            departments=frozenset(departments),
            languages=frozenset(languages),
            capacity=capacity,
            available=available,
            supervises=frozenset(supervises),
        )
