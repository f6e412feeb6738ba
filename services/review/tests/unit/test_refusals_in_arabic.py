"""Every refusal a reviewer or supervisor can meet is i18n.Bilingual, with its Arabic (SPEC §2:
Arabic is the default): the gRPC frame answers a call naming no language with the Arabic, and
the review CLI prints it. A plain string has no Arabic, so staff read English.

The scan reads review's source for each error it constructs (and each problem it files under a
field) and refuses literal text; the rest exercise the commonest refusals and read their Arabic.
"""

from __future__ import annotations

import ast
import importlib
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from google.rpc import error_details_pb2, status_pb2
from tawasul_calendar import RIYADH, Sla, WorkingCalendar
from tawasul_platform.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from tawasul_platform.grpc import to_status
from tawasul_platform.i18n import Bilingual
from tawasul_platform.identity import Principal, Role
from tawasul_platform.workdays import shipped_config
from tawasul_review.app import handlers
from tawasul_review.domain.model import Contact, Decision, WorkItem, missing_items
from tawasul_review.domain.reviewers import Reviewer
from tawasul_review.domain.search import Kind
from tawasul_review.entrypoints import grpc as review_grpc

SOURCE = Path(handlers.__file__).resolve().parents[1]
# Errors that refuse a caller, by the names review constructs them under (Conflict is no
# refusal: the platform answers it ABORTED with a Bilingual message of its own).
REFUSALS = {
    cls.__name__
    for cls in (
        *DomainError.__subclasses__(),
        *(sub for cls in DomainError.__subclasses__() for sub in cls.__subclasses__()),
    )
}
# Consumers of Kafka events: what they refuse is dead-lettered for an operator, never shown to
# a reviewer.
NOT_STAFF_FACING = {"adapters/events.py", "entrypoints/events.py"}


def _modules() -> list[Path]:
    return [
        path
        for path in sorted(SOURCE.rglob("*.py"))
        if "migrations" not in path.parts
        and path.relative_to(SOURCE).as_posix() not in NOT_STAFF_FACING
    ]


def _literal(node: ast.expr) -> bool:
    """Text written in the source: a string, an f-string or a sum of them."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _literal(node.left) or _literal(node.right)
    if isinstance(node, ast.IfExp):
        return _literal(node.body) or _literal(node.orelse)
    return False


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _plain_messages(path: Path) -> tuple[int, list[str]]:
    """How many refusals `path` constructs, and those (and the fields' problems) in plain
    text; a message named by a module constant must be Bilingual with Arabic."""
    tree = ast.parse(path.read_text(), str(path))
    module = importlib.import_module(
        "tawasul_review." + ".".join(path.relative_to(SOURCE).with_suffix("").parts)
    )
    found, plain = 0, []

    def check(node: ast.expr, where: int) -> None:
        if _literal(node):
            plain.append(f"{path.name}:{where}")
        elif isinstance(node, ast.Name) and node.id.isupper():
            said = getattr(module, node.id)
            if not (isinstance(said, Bilingual) and said.ar.strip()):
                plain.append(f"{path.name}:{where} ({node.id})")

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in REFUSALS:
            found += 1
            for arg in node.args[:1]:
                if isinstance(arg, ast.Dict):
                    for value in arg.values:
                        check(value, node.lineno)
                else:
                    check(arg, node.lineno)
        # problems["field"] = "…": the dict an InvalidArgument is raised with.
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Subscript) for t in node.targets
        ):
            check(node.value, node.lineno)
    return found, plain


def test_every_refusal_review_constructs_has_its_arabic() -> None:
    counts: dict[str, int] = {}
    plain: list[str] = []
    for path in _modules():
        found, bad = _plain_messages(path)
        counts[path.relative_to(SOURCE).as_posix()] = found
        plain += bad
    assert plain == []
    # The scan sees the refusals where they are (a scan that finds none passes nothing).
    assert counts["app/handlers.py"] >= 25
    assert counts["domain/model.py"] >= 12
    assert counts["entrypoints/grpc.py"] >= 12
    assert counts["domain/quality.py"] >= 4
    assert counts["domain/reviewers.py"] >= 1
    assert sum(counts.values()) >= 60


def test_the_scan_flags_plain_text(tmp_path: Path) -> None:
    """What it must refuse, it refuses (a raise of a literal, a field's literal problem)."""
    tree = ast.parse(
        "raise NotFound('no such thing')\n"
        "raise FailedPrecondition(f'request {n} is closed')\n"
        "raise InvalidArgument({'query': 'at most ' + str(n)})\n"
        "problems['note'] = 'say why'\n"
    )
    literals = [
        value
        for node in ast.walk(tree)
        for value in (
            [node.args[0]] if isinstance(node, ast.Call) and _name(node.func) in REFUSALS else []
        )
    ]
    assert [_literal(v) for v in literals[:2]] == [True, True]
    assert isinstance(literals[2], ast.Dict)
    assert all(_literal(v) for v in literals[2].values if v is not None)
    assigned = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign))
    assert _literal(assigned.value)
    assert {"NotFound", "FailedPrecondition", "InvalidArgument", "PermissionDenied"} <= REFUSALS


# --- the commonest, as staff meet them -----------------------------------------------------

CALENDAR = WorkingCalendar(config=shipped_config())
LEASE = timedelta(minutes=30)
NOW = datetime(2026, 1, 4, 10, tzinfo=RIYADH)
ALI = Principal("E100", Role.REVIEWER, frozenset({"passports"}))
SARA = Principal("E200", Role.REVIEWER, frozenset({"passports"}))
VISAS_ONLY = Principal("E300", Role.REVIEWER, frozenset({"visas"}))


def _item() -> WorkItem:
    return WorkItem.enqueue(
        request_id=uuid.uuid4(),
        request_number="TW260000001",
        department="passports",
        queue="passports.default",
        sub_service_code="passports.issue-renewal-problem",
        description="The photo does not appear when renewing passport",
        applicant_id="1000000008",
        document_ids=("d1",),
        contact=Contact("+966551234567", "", "ar"),
        now=NOW,
        sla=Sla.days(2),
    )


def _arabic(error: DomainError) -> str:
    message = error.args[0]
    assert isinstance(message, Bilingual), message
    return message.ar


def test_a_request_held_by_another_is_refused_in_arabic() -> None:
    item = _item()
    item.claim(ALI, NOW, LEASE)
    with pytest.raises(FailedPrecondition) as claimed:
        item.claim(SARA, NOW, LEASE)
    assert str(claimed.value) == "request TW260000001 is claimed by E100"
    assert _arabic(claimed.value) == "الطلب TW260000001 مُسنَد إلى E100"
    with pytest.raises(FailedPrecondition) as held:
        item.release(SARA, NOW, LEASE)
    assert _arabic(held.value) == "الطلب TW260000001 مُسنَد إلى E100"


def test_acting_on_an_unclaimed_or_decided_request_is_refused_in_arabic() -> None:
    item = _item()
    with pytest.raises(FailedPrecondition) as queued:
        item.decide(ALI, Decision.ACCEPT, "", None, NOW, CALENDAR)
    assert str(queued.value) == "request TW260000001 is queued; claim it first"
    assert _arabic(queued.value) == "الطلب TW260000001 في قائمة الانتظار؛ استلمه أولًا"
    item.claim(ALI, NOW, LEASE)
    item.decide(ALI, Decision.ACCEPT, "", None, NOW, CALENDAR)
    with pytest.raises(FailedPrecondition) as decided:
        item.decide(ALI, Decision.ACCEPT, "", None, NOW, CALENDAR)
    assert str(decided.value) == "request TW260000001 is decided already"
    assert _arabic(decided.value) == "الطلب TW260000001 بُتَّ فيه بالفعل"


def test_a_request_of_another_department_is_not_found_in_arabic() -> None:
    with pytest.raises(NotFound) as hidden:
        _item().claim(VISAS_ONLY, NOW, LEASE)
    assert _arabic(hidden.value) == "لا يوجد هذا الطلب في الأقسام التي تعمل فيها"


def _field(error: InvalidArgument, name: str) -> str:
    said = error.violations[name]
    assert isinstance(said, Bilingual), said
    return said.ar


def test_a_short_rejection_is_refused_in_arabic() -> None:
    item = _item()
    item.claim(ALI, NOW, LEASE)
    with pytest.raises(InvalidArgument) as short:
        item.decide(ALI, Decision.REJECT, "no", None, NOW, CALENDAR)
    said = short.value.violations["message"]
    assert said == "a rejection tells the beneficiary why, at least 10 characters"
    assert _field(short.value, "message") == "يُبيَّن للمستفيد سبب الرفض في 10 أحرف على الأقل"


def test_the_grpc_frame_carries_the_arabic_of_each_field_problem() -> None:
    """What the CLI prints: each field's LocalizedMessage, Arabic for a call naming neither."""
    with pytest.raises(InvalidArgument) as wrong:
        missing_items([("photo", "", "")])
    status = to_status(wrong.value)
    rich = status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"])
    bad = error_details_pb2.BadRequest()
    assert rich.details[0].Unpack(bad)
    localized = {v.field: v.localized_message for v in bad.field_violations}
    assert {m.locale for m in localized.values()} == {"ar"}
    assert localized["missing[0].kind"].message == "'document' أو 'field' أو 'other'"
    assert localized["missing[0].name"].message == "مطلوب، 100 حرف على الأكثر بلا محارف تحكم"
    with pytest.raises(InvalidArgument) as code:
        review_grpc._code("department_code", "passports!", 50)
    assert _field(code.value, "department_code") == (
        "حروف لاتينية وأرقام و . _ : - فقط، 50 حرفًا على الأكثر"
    )


async def test_a_search_typed_wrong_and_a_department_not_theirs_are_refused_in_arabic() -> None:
    nowhere = cast(Any, None)  # refused before the unit of work is opened
    with pytest.raises(InvalidArgument) as mobile:
        await handlers.search(
            uow=nowhere,
            reviewer=ALI,
            query="12345",
            kind=Kind.MOBILE,
            filters=handlers.SearchFilters(),
            limit=0,
            after=None,
            policy=nowhere,
            now=NOW,
        )
    assert _field(mobile.value, "query") == "رقم جوال سعودي: 05XXXXXXXX أو +9665XXXXXXXX"
    with pytest.raises(PermissionDenied) as not_theirs:
        handlers._department(ALI, "visas")
    assert _arabic(not_theirs.value) == "لست من مراجعي القسم 'visas'"
    with pytest.raises(InvalidArgument) as capacity:
        Reviewer.create(
            reviewer_id="E100",
            departments=["passports"],
            languages=["ar"],
            capacity=501,
            available=True,
            supervises=[],
            known_departments=frozenset({"passports"}),
        )
    assert _field(capacity.value, "reviewer.capacity") == "من 0 إلى 500"
