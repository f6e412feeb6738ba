"""Quality review: a share of decisions gets a second look from another reviewer."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from tawasul_platform.errors import FailedPrecondition, InvalidArgument, NotFound
from tawasul_platform.hygiene import visible_length
from tawasul_platform.i18n import CHARACTERS, Bilingual, at_most
from tawasul_platform.identity import Principal

from tawasul_review.domain.model import Decision, WorkItem

MAX_NOTE = 2000
NO_SUCH_CHECK = Bilingual(
    "no such quality check in your departments",
    "لا يوجد تدقيق الجودة هذا في الأقسام التي تعمل فيها",
)


class Verdict(StrEnum):
    AGREE = "agree"
    DISAGREE = "disagree"


def sampled(request_id: uuid.UUID, percent: int, *, key: bytes, appeal_of: str = "") -> bool:
    """Whether a decision is sampled: drawn by the request id under `key`, a secret of the
    process, so that a reviewer who sees the id cannot tell beforehand whether their decision
    will be checked (by the id alone they could). A decision is drawn once, when it is made.
    A decision on an appeal (of `appeal_of`'s rejection) is drawn apart from the first one,
    else it would be sampled exactly when the decision it replaces was."""
    digest = hmac.digest(key, request_id.bytes + appeal_of.encode(), hashlib.sha256)
    return int.from_bytes(digest[:4], "big") % 100 < percent


@dataclass(frozen=True)
class QualityPosition:
    """Where a page of quality checks ends: by the time each was sampled, then by request."""

    sampled_at: datetime
    request_id: uuid.UUID


@dataclass(frozen=True)
class QualityCheck:
    request_id: uuid.UUID
    request_number: str
    department: str
    decision: Decision
    decided_by: str
    sampled_at: datetime
    checked_by: str = ""
    verdict: Verdict | None = None
    note: str = ""
    # A decision made on an appeal: the decision it replaced (a rejection), and whose.
    replaced_decision: Decision | None = None
    replaced_by: str = ""

    @property
    def position(self) -> QualityPosition:
        return QualityPosition(self.sampled_at, self.request_id)

    @classmethod
    def of(cls, item: WorkItem, now: datetime) -> QualityCheck:
        if item.decision is None:
            raise ValueError("only a decided item is sampled")
        return cls(
            request_id=item.request_id,
            request_number=item.request_number,
            department=item.department,
            decision=item.decision,
            decided_by=item.assignee,
            sampled_at=now,
            replaced_decision=Decision.REJECT if item.appeal_of else None,
            replaced_by=item.appeal_of,
        )

    def replaced_on_appeal(self, item: WorkItem, now: datetime) -> QualityCheck:
        """The check of a decision an appeal replaced shows the decision that stands, to be
        checked anew: a verdict given on the replaced one is not a verdict on it."""
        standing = QualityCheck.of(item, now)
        return replace(standing, replaced_decision=self.decision, replaced_by=self.decided_by)

    def complete(self, reviewer: Principal, verdict: str, note: str) -> QualityCheck:
        if self.department not in reviewer.departments:
            raise NotFound(NO_SUCH_CHECK)
        if reviewer.subject == self.decided_by:
            raise FailedPrecondition(
                Bilingual(
                    "a decision is checked by another reviewer than its own",
                    "يدقّق القرارَ مراجعٌ غير الذي اتخذه",
                )
            )
        if reviewer.subject == self.replaced_by:
            # The appeal was against their rejection: the dispute is not theirs to settle.
            raise FailedPrecondition(
                Bilingual(
                    "a decision on an appeal is checked by another reviewer than the one whose"
                    " rejection was appealed",
                    "يدقّق القرارَ الصادر في التظلم مراجعٌ غير الذي تُظُلِّم من رفضه",
                )
            )
        if self.checked_by:
            raise FailedPrecondition(
                Bilingual(f"already checked by {self.checked_by}", f"سبق أن دقّقه {self.checked_by}")
            )
        problems: dict[str, Bilingual] = {}
        if verdict not in set(Verdict):
            problems["verdict"] = Bilingual("'agree' or 'disagree'", "'agree' أو 'disagree'")
        if len(note) > MAX_NOTE:
            problems["note"] = at_most(CHARACTERS, MAX_NOTE)
        elif verdict == Verdict.DISAGREE and not visible_length(note):
            problems["note"] = Bilingual("say why you disagree", "اذكر سبب عدم موافقتك")
        if problems:
            raise InvalidArgument(problems)
        return replace(
            self, checked_by=reviewer.subject, verdict=Verdict(verdict), note=note.strip()
        )
