"""Intake's use cases."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from tawasul_calendar import RIYADH, WorkingCalendar
from tawasul_platform.catalog import Catalog, DocumentSpec, FieldType, SubService
from tawasul_platform.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from tawasul_platform.i18n import Bilingual, at_most
from tawasul_platform.identity import Principal, Role
from tawasul_platform.request_numbers import parse_request_number

from tawasul_intake.app.ports import (
    CodeSender,
    ConcurrentSubmission,
    DocumentInfo,
    Documents,
    DuplicateOpenRequest,
    NumberTaken,
    Registry,
    Related,
    UnitOfWork,
)
from tawasul_intake.domain.fields import (
    FOREIGN_DIGITS,
    foreign_digits,
    mobile_problem,
    normalize_mobile,
)
from tawasul_intake.domain.identity import CHECK_DIGIT, TEN_DIGITS, luhn_valid
from tawasul_intake.domain.model import (
    DOCUMENTS,
    NOT_A_REQUEST_NUMBER,
    OPEN_REQUESTS,
    Missing,
    Reason,
    Request,
    Status,
    Submission,
    about_only,
    nationals_may_file,
    nationals_only,
    relation_fits,
    validate_answer,
)
from tawasul_intake.domain.people import Person, Relation

log = logging.getLogger(__name__)

CONSUMER = "intake"
# osTicket's cap on open tickets per user, here per account: enough for a family's real needs,
# too few to flood a department's queue. An establishment files for its whole workforce (a CSV
# of up to a hundred rows at once), so its cap is a workforce's.
MAX_OPEN_PER_ACCOUNT = {Role.CITIZEN: 10, Role.RESIDENT: 10, Role.ESTABLISHMENT: 500}
# Random numbers rarely collide; a few fresh draws settle it.
NUMBER_DRAWS = 5
# An establishment acts for its own sponsored workers only (SPEC §2).
_ALLOWED = {
    Role.CITIZEN: frozenset(Relation),
    Role.RESIDENT: frozenset(Relation),
    Role.ESTABLISHMENT: frozenset({Relation.SPONSORED_WORKER}),
}


def _same(request: Request, submission: Submission) -> bool:
    """Whether a retried key carries the request it made; any difference would otherwise be
    dropped without a word (a corrected mobile the request number is never sent to)."""
    if request.submitted_digest:
        return request.submitted_digest == submission.digest()
    # Stored before submissions kept their digest: compared with the request as it is now.
    return (
        request.sub_service_code == submission.sub_service_code
        and request.subject_id == submission.subject_id
        and request.description == submission.description
        and request.document_ids == submission.document_ids
        and request.fields == dict(submission.fields)
        and (request.contact.mobile, request.contact.email)
        == (submission.contact.mobile, submission.contact.email)
        and request.cites_number == submission.cites_number
    )


def _keyed(related: Related, submission: Submission) -> Request | None:
    """The request the submission's idempotency key already made, if it is the same one."""
    existing = next(
        (
            r
            for r in related.requests
            if (r.applicant_id, r.idempotency_key)
            == (submission.applicant_id, submission.idempotency_key)
        ),
        None,
    )
    if existing is not None and not _same(existing, submission):
        raise AlreadyExists(_KEY_TAKEN, existing=existing.number)
    return existing


def _open_for_person(related: Related, submission: Submission) -> Request | None:
    """The open request for the submission's person and sub-service, if any."""
    return next(
        (r for r in related.requests if r.is_open and r.open_key == submission.open_key), None
    )


def _check_account(related: Related, submission: Submission) -> None:
    """No open request for the same person and sub-service, none of the documents in another
    open request of the account, and room for one more open request."""
    _refuse_duplicate(submission, _open_for_person(related, submission))
    open_here = [
        r for r in related.requests if r.is_open and r.applicant_id == submission.applicant_id
    ]
    in_use = {d: r.number for r in open_here for d in r.document_ids}
    clashes = {
        f"document_ids[{i}]": _attached(in_use[d])
        for i, d in enumerate(submission.document_ids)
        if d in in_use
    }
    if clashes:
        raise InvalidArgument(clashes)
    most = MAX_OPEN_PER_ACCOUNT[submission.applicant_role]
    if related.open_count >= most:
        limit = at_most(OPEN_REQUESTS, most)
        raise ResourceExhausted(
            Bilingual(
                f"{limit} per account; follow up on or cancel one first",
                f"{limit.ar} لكل حساب؛ تابع أحدها أو ألغه أولًا",
            )
        )


async def _by_key(uow: UnitOfWork, submission: Submission) -> Request | None:
    existing = await uow.requests.get_by_idempotency_key(
        submission.applicant_id, submission.idempotency_key
    )
    if existing is not None and not _same(existing, submission):
        raise AlreadyExists(_KEY_TAKEN, existing=existing.number)
    return existing


async def _check_subject(
    registry: Registry, submission: Submission, sub_service: SubService
) -> Person | None:
    """Refuses a person the account may not file for, or the sub-service is not about (an
    absence report about the filer's wife); answers who they are, when known."""
    relation = await _acting_for(
        registry, submission.applicant_id, submission.applicant_role, submission.subject_id
    )
    if relation is None:
        raise PermissionDenied(
            Bilingual(
                "a request may be filed only for the account holder, their dependents and hosted"
                " visitors, or (for an establishment) its own sponsored workers",
                "لا يُقدَّم الطلب إلا لصاحب الحساب أو تابعيه أو زواره المستضافين،"
                " أو (للمنشأة) لعمالها المكفولين لديها",
            )
        )
    if not relation_fits(sub_service, relation):
        raise InvalidArgument({"subject_id": about_only(sub_service)})
    person = await registry.person(submission.subject_id)
    nationality = person.nationality if person else ""
    if not nationals_may_file(sub_service, nationality):
        raise InvalidArgument({"subject_id": nationals_only(sub_service)})
    if typed := _nationalities_off_record(sub_service, submission.fields, person):
        raise InvalidArgument(typed)
    return person


async def _acting_for(
    registry: Registry, applicant_id: str, role: Role, subject_id: str
) -> Relation | None:
    """How the registry has the person on the account's record, if in a relation its role may
    act for (themselves included, when the registry knows them)."""
    relation = await registry.relation(applicant_id, subject_id)
    return relation if relation in _ALLOWED[role] else None


async def _on_record(registry: Registry, request: Request) -> bool:
    """Whether the request's account still answers for its person (always, for themselves)."""
    return request.subject_id == request.applicant_id or (
        await _acting_for(
            registry, request.applicant_id, request.applicant_role, request.subject_id
        )
        is not None
    )


async def _still_on_record(registry: Registry, request: Request) -> None:
    """Refuses to act on a request about someone the account no longer answers for: a worker
    transferred to another sponsor, a dependent off the family record. Viewing and cancelling
    stay open to the account; the account that answers for the person now filing the same
    sub-service cancels it too (submit_request)."""
    if not await _on_record(registry, request):
        raise PermissionDenied(
            Bilingual(
                "the person this request is about is no longer on this account's record"
                " (a dependent, hosted visitor or sponsored worker); the request can now only"
                " be viewed or cancelled",
                "لم يعد الشخص الذي يخصه هذا الطلب مسجلًا على هذا الحساب (تابعًا أو زائرًا"
                " مستضافًا أو عاملًا مكفولًا)؛ لا يمكن الآن إلا عرض الطلب أو إلغاؤه",
            )
        )


async def _acting_on(
    uow: UnitOfWork, registry: Registry, caller: Principal, number: str
) -> Request:
    """The caller's request (NOT_FOUND first, telling nothing of another account's), if the
    account still answers for its person. Read without its row lock: the registry (Absher /
    Muqeem) is not called while one is held."""
    async with uow:
        request = await _own(uow, caller, number)
    await _still_on_record(registry, request)
    return request


def _nationalities_off_record(
    sub_service: SubService, fields: Mapping[str, str], person: Person | None
) -> dict[str, Bilingual]:
    """Where the sub-service is for some nationals only, a nationality typed into the form is
    the person's own, as the registry has it (elsewhere, a passport data update say, it may be
    the new one): field → problem for each that is not."""
    if not sub_service.subject_nationalities or person is None:
        return {}
    return {
        f"fields.{spec.name}": Bilingual(
            "not the nationality on record for this person",
            "لا تطابق الجنسية المسجلة لهذا الشخص",
        )
        for spec in sub_service.fields
        if spec.type is FieldType.NATIONALITY
        and fields.get(spec.name, person.nationality) != person.nationality
    }


async def _held(
    documents: Documents, token: str, document_ids: tuple[uuid.UUID, ...]
) -> dict[uuid.UUID, DocumentInfo]:
    """The documents as docs describes them when it holds them until the request's event
    attaches them (one may have expired since the first check). Asked only once nothing else
    refuses the submission or answer, just before its commit: a refused one renewed their
    unattached lifetime, so one refused again and again kept an upload for good
    (docs/retention.md). It runs under the account's lock: only that account's calls wait."""
    return await documents.describe(document_ids, token, hold=True) if document_ids else {}


def _check_documents(
    submission: Submission, found: dict[uuid.UUID, DocumentInfo], sub_service: SubService
) -> None:
    """Every document is the account's own and fits the sub-service's document schema: its
    kind's types, size and count, and every required kind there in its number."""
    ids = submission.document_ids
    problems = _document_problems(ids, found, sub_service)
    most = _most_documents(sub_service)
    if len(ids) > most:
        limit = at_most(DOCUMENTS, most)
        problems["document_ids"] = Bilingual(
            f"{limit} for this sub-service", f"{limit.ar} لهذه الخدمة الفرعية"
        )
        raise InvalidArgument(problems)
    kinds = [info.kind if (info := found.get(d)) else None for d in ids]
    missing: list[DocumentSpec] = []
    for spec in sub_service.documents:
        positions = [i for i, kind in enumerate(kinds) if kind == spec.kind]
        for index in positions[spec.max_count :]:
            problems.setdefault(
                f"document_ids[{index}]",
                Bilingual(
                    f"{spec.label.en}: at most {spec.max_count} for this sub-service",
                    f"{spec.label.ar}: {spec.max_count} على الأكثر لهذه الخدمة الفرعية",
                ),
            )
        if spec.required and len(positions) < spec.min_count:
            missing.append(spec)
    if missing:
        problems["document_ids"] = _missing_kinds(missing, unlabelled="" in kinds)
    if problems:
        raise InvalidArgument(problems)


def _missing_kinds(missing: list[DocumentSpec], *, unlabelled: bool) -> Bilingual:
    def named(spec: DocumentSpec, label: str, at_least: str) -> str:
        return label if spec.min_count == 1 else f"{label} ({spec.min_count} {at_least})"

    en = ", ".join(named(spec, spec.label.en, "at least") for spec in missing)
    ar = "، ".join(named(spec, spec.label.ar, "على الأقل") for spec in missing)
    message = Bilingual(f"required documents missing: {en}", f"مستندات مطلوبة لم تُرفق: {ar}")
    if not unlabelled:
        return message
    # A file uploaded without naming its kind cannot stand for a required one.
    return Bilingual(
        f"{message}; a document uploaded without its kind counts as none of them",
        f"{message.ar}؛ والمستند المرفوع دون ذكر نوعه لا يُحتسب من بينها",
    )


def _document_problems(
    document_ids: tuple[uuid.UUID, ...],
    found: dict[uuid.UUID, DocumentInfo],
    sub_service: SubService,
) -> dict[str, Bilingual]:
    """Field → problem for each document that is not the account's, not clean, or not of a
    kind, type or size the sub-service takes. A document uploaded without its kind fits any of
    the sub-service's types and sizes, and stands for none of its required kinds."""
    problems: dict[str, Bilingual] = {}
    specs = {spec.kind: spec for spec in sub_service.documents}
    for index, document_id in enumerate(document_ids):
        info = found.get(document_id)
        problem = (
            _unfit(info, specs)
            if info
            else Bilingual(
                "no such document uploaded by this account",
                "لا يوجد مستند بهذا المعرّف رفعه هذا الحساب",
            )
        )
        if problem:
            problems[f"document_ids[{index}]"] = problem
    return problems


# The accepted types as SPEC §2 and the seeds name them («PDF أو JPG»), in that order.
_TYPE_NAMES = {"application/pdf": "PDF", "image/jpeg": "JPG"}


def _unfit(info: DocumentInfo, specs: Mapping[str, DocumentSpec]) -> Bilingual | None:
    if info.infected:
        return Bilingual("refused by the malware scan", "رُفض في فحص البرمجيات الضارة")
    if not info.clean:
        return Bilingual(
            "still being scanned; try again shortly", "ما زال قيد الفحص؛ أعد المحاولة بعد قليل"
        )
    spec = specs.get(info.kind)
    if info.kind and spec is None:
        return Bilingual(
            "uploaded as a kind of document this sub-service does not take: "
            + ", ".join(s.label.en for s in specs.values()),
            "رُفع بنوع مستند لا تأخذه هذه الخدمة الفرعية، وأنواعها: "
            + "، ".join(s.label.ar for s in specs.values()),
        )
    fits = (spec,) if spec else tuple(specs.values())
    accepted = frozenset[str]().union(*(s.media_types for s in fits))
    if info.content_type not in accepted:
        # The catalog allows no other media type (tawasul_platform.catalog.MEDIA_TYPES).
        names = [name for t, name in _TYPE_NAMES.items() if t in accepted]
        en, ar = " or ".join(names), " أو ".join(names)
        if spec:
            return Bilingual(
                f"a type {spec.label.en} does not take (it takes {en})",
                f"نوع ملف لا يُقبل في «{spec.label.ar}» (يُقبل: {ar})",
            )
        return Bilingual(
            f"a type this sub-service does not accept (it takes {en})",
            f"نوع ملف لا تقبله هذه الخدمة الفرعية (تقبل: {ar})",
        )
    largest = max((s.max_bytes for s in fits), default=0)
    if info.size_bytes > largest:
        size = f"{largest / 2**20:g}"
        if spec:
            return Bilingual(
                f"larger than this sub-service's {size} MB for {spec.label.en}",
                f"أكبر من الحد الذي تقبله هذه الخدمة الفرعية لـ{spec.label.ar} ({size} ميجابايت)",
            )
        return Bilingual(
            f"larger than this sub-service's {size} MB",
            f"أكبر من الحد الذي تقبله هذه الخدمة الفرعية ({size} ميجابايت)",
        )
    return None


_KEY_TAKEN = Bilingual(
    "this idempotency key was used for a different request",
    "مفتاح منع التكرار هذا استُخدم لطلب آخر",
)


def _attached(number: str) -> Bilingual:
    return Bilingual(
        f"already attached to open request {number}", f"مرفق من قبل بالطلب المفتوح {number}"
    )


def _most_documents(sub_service: SubService) -> int:
    return sum(spec.max_count for spec in sub_service.documents)


async def _cited(uow: UnitOfWork, submission: Submission) -> Request | None:
    if submission.cites_number is None:
        return None
    cited = await uow.requests.get_by_number(submission.cites_number, for_update=True)
    if (
        cited is None
        or cited.applicant_id != submission.applicant_id
        or cited.status is not Status.REJECTED
    ):
        raise InvalidArgument(
            {
                "cites_request_number": Bilingual(
                    "not a rejected request of this account", "ليس طلبًا مرفوضًا لهذا الحساب"
                )
            }
        )
    return cited


@dataclass(frozen=True)
class Filed:
    """A submission's answer: its request, and whether an earlier call under its key filed it
    (this one filing nothing)."""

    request: Request
    replayed: bool


async def submit_request(
    *,
    uow: UnitOfWork,
    documents: Documents,
    registry: Registry,
    catalog: Catalog,
    calendar: WorkingCalendar,
    token: str,
    submission: Submission,
    now: datetime,
    new_number: Callable[[], str],
) -> Filed:
    """Stores a new request and its `submitted` event; a retried key returns the first one.

    The person must be one the account may file for, the documents the account's own and of
    the sub-service's schema, and no other request for the person and sub-service open: but for
    another account's that the registry says no longer answers for the person (a worker
    transferred to a new sponsor, a dependent moved to another family record), which could
    then only be viewed or cancelled. That one the office cancels in the same transaction.
    """
    sub_service = catalog.sub_services[submission.sub_service_code]
    person = await _check_subject(registry, submission, sub_service)
    try:
        found = await documents.describe(submission.document_ids, token, hold=False)
    except Unavailable:
        # A retry of a submission that went through (its answer lost) needs no check of
        # documents checked then: its request is the answer, docs down or not.
        async with uow:
            existing = await _by_key(uow, submission)
        if existing is None:
            raise
        return Filed(existing, replayed=True)
    _check_documents(submission, found, sub_service)
    # Another account's open request for the person that the registry said that account no
    # longer answers for: cancelled if it is still the one in the way.
    released: uuid.UUID | None = None
    for _ in range(NUMBER_DRAWS):
        try:
            async with uow:
                await uow.requests.lock_account(submission.applicant_id)
                if released is not None:
                    # Locked before anything reads it: a decision or a cancellation committed
                    # meanwhile is seen, and none commits before this transaction ends.
                    await uow.requests.get(released, for_update=True)
                related = await uow.requests.related_to(
                    submission.applicant_id,
                    submission.idempotency_key,
                    submission.open_key,
                    submission.document_ids,
                )
                existing = _keyed(related, submission)
                if existing is not None:
                    return Filed(existing, replayed=True)
                _release(_open_for_person(related, submission), submission, released, now)
                _check_account(related, submission)
                cited = await _cited(uow, submission)
                request = Request.submit(
                    submission,
                    id=uuid.uuid4(),
                    number=new_number(),
                    sub_service=sub_service,
                    catalog_version=catalog.version,
                    calendar=calendar,
                    now=now,
                    subject_nationality=person.nationality if person else "",
                    subject_names=(person.name_ar, person.name_en) if person else ("", ""),
                )
                await uow.requests.add(request)
                if cited is not None:
                    cited.cited_by_request(request.number)
                held = await _held(documents, token, submission.document_ids)
                _check_documents(submission, held, sub_service)
                try:
                    await uow.commit()
                except NumberTaken:
                    continue
                except (ConcurrentSubmission, DuplicateOpenRequest):
                    pass
                else:
                    return Filed(request, replayed=False)
        except _FiledElsewhere as found:
            # Asked out of the transaction: the registry (Absher / Muqeem) is not called while
            # a lock is held. Down, it is UNAVAILABLE, and nothing has changed.
            if await _on_record(registry, found.request):
                _refuse_duplicate(submission, found.request)
            released = found.request.id
            continue
        # Out of the failed transaction's block, so that its connection is back in the pool.
        return Filed(await _after_race(uow, submission), replayed=True)
    raise Unavailable("no free request number was drawn; retry with the same idempotency key")


class _FiledElsewhere(Exception):
    """Another account's open request for the submission's person and sub-service, which the
    registry has yet to say whether that account still answers for."""

    def __init__(self, request: Request) -> None:
        super().__init__(request.number)
        self.request = request


def _release(
    open_one: Request | None, submission: Submission, released: uuid.UUID | None, now: datetime
) -> None:
    """Cancels another account's open request for the person that the registry said the
    account no longer answers for (`released`), read again under its row lock; another one
    is for the registry to judge (_FiledElsewhere). The account's own is left to refuse."""
    if open_one is None or open_one.applicant_id == submission.applicant_id:
        return
    if open_one.id != released:
        raise _FiledElsewhere(open_one)
    open_one.cancel_off_record(now)


async def _after_race(uow: UnitOfWork, submission: Submission) -> Request:
    """Another submission committed first: the same key's request, or the open duplicate."""
    async with uow:
        existing = await _by_key(uow, submission)
        if existing is not None:
            return existing
        open_one = await uow.requests.open_request(submission.open_key)
    _refuse_duplicate(submission, open_one)
    raise Unavailable("a concurrent submission was undone; retry with the same idempotency key")


def _refuse_duplicate(submission: Submission, open_one: Request | None) -> None:
    """ALREADY_EXISTS naming the open request, if the caller's own account filed it.

    Another account's request number is not the caller's to learn: a relative may have filed
    for the same person.
    """
    if open_one is None:
        return
    if open_one.applicant_id == submission.applicant_id:
        raise AlreadyExists(
            Bilingual(
                f"request {open_one.number} for this person and sub-service is still open",
                f"الطلب {open_one.number} لهذا الشخص وهذه الخدمة الفرعية ما زال مفتوحًا",
            ),
            existing=open_one.number,
        )
    raise AlreadyExists(
        Bilingual(
            "another account has an open request for this person and sub-service",
            "لدى حساب آخر طلب مفتوح لهذا الشخص وهذه الخدمة الفرعية",
        ),
        existing="",
    )


def _ascii_digits(**typed: str) -> None:
    """Refuses other scripts' digits by field name; malformed input otherwise matches nothing."""
    if found := {name: FOREIGN_DIGITS for name, text in typed.items() if foreign_digits(text)}:
        raise InvalidArgument(found)


async def _own(
    uow: UnitOfWork, caller: Principal, number: str, *, for_update: bool = False
) -> Request:
    _ascii_digits(request_number=number)
    canonical = parse_request_number(number[:40])
    request = (
        await uow.requests.get_by_number(canonical, for_update=for_update) if canonical else None
    )
    if request is None or request.applicant_id != caller.subject:
        raise NotFound(
            Bilingual("no such request for this account", "لا يوجد هذا الطلب لهذا الحساب")
        )
    return request


async def get_request(*, uow: UnitOfWork, caller: Principal, number: str) -> Request:
    """The tracking view; another account's request is reported as not found."""
    async with uow:
        return await _own(uow, caller, number)


async def list_my_requests(
    *, uow: UnitOfWork, caller: Principal, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Request]:
    async with uow:
        return await uow.requests.list_by_applicant(caller.subject, after=after, limit=limit)


async def follow_up(
    *,
    uow: UnitOfWork,
    registry: Registry,
    caller: Principal,
    calendar: WorkingCalendar,
    number: str,
    message: str,
    now: datetime,
) -> Request:
    await _acting_on(uow, registry, caller, number)
    async with uow:
        request = await _own(uow, caller, number, for_update=True)
        request.follow_up(message=message, calendar=calendar, now=now)
        await uow.commit()
    return request


async def cancel_request(
    *, uow: UnitOfWork, caller: Principal, number: str, reason: str, now: datetime
) -> Request:
    async with uow:
        request = await _own(uow, caller, number, for_update=True)
        request.cancel(reason=reason, now=now)
        await uow.commit()
    return request


@dataclass(frozen=True)
class TrackingPolicy:
    """How hard guessing is made; counters live in PostgreSQL, shared by every replica."""

    secret: bytes
    code_valid: timedelta = timedelta(minutes=5)
    window: timedelta = timedelta(hours=1)
    # Code requests and code checks per caller (network peer) and per request number.
    per_caller: int = 20
    per_request: int = 5
    # Wrong codes before the code is void.
    attempts_per_code: int = 5

    def digest(self, request_id: uuid.UUID, code: str) -> str:
        return hmac.new(self.secret, f"{request_id}:{code}".encode(), hashlib.sha256).hexdigest()

    def details_key(self, query: TrackingQuery) -> str:
        """A keyed hash of the ID and mobile typed (the "details:" prefix keeps it apart from
        a code's digest), so that a request's counter can be one per set of details without
        the counters' table holding them."""
        typed = f"details:{query.id_number}:{query.mobile}"
        return hmac.new(self.secret, typed.encode(), hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class TrackingQuery:
    number: str
    id_number: str
    mobile: str

    @classmethod
    def typed(cls, number: str, id_number: str, mobile: str) -> TrackingQuery:
        """What the person typed, capped and normalized.

        What is malformed by itself (other scripts' digits, a check digit that fails, a number
        that is no Saudi mobile) is refused (INVALID_ARGUMENT) at its field rather than
        answered as a code sent that never comes: the person can fix it, and it tells a
        guesser nothing about any request (the check digits are public arithmetic)."""
        _ascii_digits(request_number=number, id_number=id_number, mobile=mobile)
        canonical = parse_request_number(number[:40])
        id_number = id_number[:20].strip()
        problems: dict[str, Bilingual] = {}
        if canonical is None:
            problems["request_number"] = NOT_A_REQUEST_NUMBER
        if problem := _tracked_id_problem(id_number):
            problems["id_number"] = problem
        if problem := mobile_problem(mobile[:32]):
            problems["mobile"] = problem
        if problems:
            raise InvalidArgument(problems)
        return cls(
            number=canonical or "",
            id_number=id_number,
            mobile=normalize_mobile(mobile[:32]) or "",
        )

    def matches(self, request: Request | None) -> bool:
        return (
            request is not None
            and self.id_number in (request.applicant_id, request.subject_id)
            and hmac.compare_digest(self.mobile, request.contact.mobile)
        )


def _tracked_id_problem(id_number: str) -> Bilingual | None:
    """The applicant's or the subject's ID: ten digits, with a valid check digit where it is a
    national ID or an iqama (a visitor's border number has none)."""
    if len(id_number) != 10 or not (id_number.isascii() and id_number.isdigit()):
        return TEN_DIGITS
    if id_number[0] in "12" and not luhn_valid(id_number):
        return CHECK_DIGIT
    return None


_SIX_DIGITS = re.compile(r"[0-9]{6}")


async def _limit(
    uow: UnitOfWork,
    policy: TrackingPolicy,
    step: str,
    caller_key: str,
    query: TrackingQuery,
    now: datetime,
) -> None:
    """Counts the attempt (committed even when the answer is a refusal) and enforces limits.

    A request's counter is one per ID and mobile typed with its number: one for the number
    alone let anyone who knew it spend, with details that match nothing, the attempts of the
    request's people, every hour. The right details still get `per_request` codes and checks
    an hour, and every set of details is counted alike, so a refusal tells nothing."""
    async with uow:
        by_caller = await uow.limits.hit(
            f"{step}:caller:{caller_key[:100]}", window=policy.window, now=now
        )
        # A malformed number names no request: only the caller's own limit counts it.
        by_request = (
            await uow.limits.hit(
                f"{step}:request:{query.number}:{policy.details_key(query)}",
                window=policy.window,
                now=now,
            )
            if query.number
            else 0
        )
        await uow.commit()
    if by_caller > policy.per_caller or by_request > policy.per_request:
        raise ResourceExhausted(
            Bilingual(
                "too many tracking attempts; try again later",
                "محاولات استعلام كثيرة؛ أعد المحاولة لاحقًا",
            )
        )


async def start_tracking(
    *,
    uow: UnitOfWork,
    sender: CodeSender,
    policy: TrackingPolicy,
    query: TrackingQuery,
    caller_key: str,
    now: datetime,
) -> None:
    """Sends a one-time code when number, ID and mobile match; says nothing either way."""
    await _limit(uow, policy, "start", caller_key, query, now)
    if not query.number:
        return
    async with uow:
        request = await uow.requests.get_by_number(query.number)
        if request is None or not query.matches(request):
            return
        code = f"{secrets.randbelow(10**6):06d}"
        await uow.codes.put(request.id, policy.digest(request.id, code), now + policy.code_valid)
        await uow.commit()
    await sender.send(
        request=request, code=code, valid_minutes=int(policy.code_valid.total_seconds() // 60)
    )


async def track_request(
    *,
    uow: UnitOfWork,
    policy: TrackingPolicy,
    query: TrackingQuery,
    code: str,
    caller_key: str,
    now: datetime,
) -> Request:
    """The tracking view for a matching number, ID, mobile and live code; else NOT_FOUND. A
    code that is not six digits is refused as such, spending none of the code's attempts."""
    _ascii_digits(code=code)
    typed = code[:12].strip()
    if not _SIX_DIGITS.fullmatch(typed):
        raise InvalidArgument(
            {"code": Bilingual("the 6 digits sent by SMS", "الأرقام الستة المرسلة برسالة نصية")}
        )
    await _limit(uow, policy, "check", caller_key, query, now)
    nothing = NotFound(
        Bilingual(
            "no request matches these details and code", "لا يوجد طلب يطابق هذه البيانات والرمز"
        )
    )
    if not query.number:
        raise nothing
    async with uow:
        request = await uow.requests.get_by_number(query.number)
        if request is None or not query.matches(request):
            raise nothing
        stored = await uow.codes.attempt(request.id)
        good = (
            stored is not None
            and stored.expires_at > now
            and stored.attempts <= policy.attempts_per_code
            and hmac.compare_digest(stored.code_hash, policy.digest(request.id, typed))
        )
        if good:
            await uow.codes.delete(request.id)
        await uow.commit()
    if not good:
        raise nothing
    return request


async def forget_tracking(
    *, uow: UnitOfWork, policy: TrackingPolicy, now: datetime, batch: int = 1000
) -> bool:
    """Deletes expired codes and the counters of windows that have passed (a new attempt
    starts those afresh anyway): every number and address ever tried would otherwise keep a
    row for good. True while a full batch was deleted (there may be more)."""
    async with uow:
        codes = await uow.codes.forget_expired(now, limit=batch)
        buckets = await uow.limits.forget(now - policy.window, limit=batch)
        await uow.commit()
    return max(codes, buckets) >= batch


async def appeal_rejection(
    *,
    uow: UnitOfWork,
    registry: Registry,
    caller: Principal,
    calendar: WorkingCalendar,
    number: str,
    reason: str,
    now: datetime,
) -> Request:
    await _acting_on(uow, registry, caller, number)
    async with uow:
        request = await _own(uow, caller, number, for_update=True)
        request.appeal(reason=reason, calendar=calendar, now=now)
        # Opened again, it holds its documents again: one may have gone into a request filed
        # since, read under the account's lock (after the row's, as an answer takes them). The
        # cap on open requests holds back new ones, never the one chance to contest a decision.
        await uow.requests.lock_account(request.applicant_id)
        _reopenable(
            request,
            await uow.requests.related_to(
                request.applicant_id, "", request.open_key, request.document_ids
            ),
        )
        try:
            await uow.commit()
        except DuplicateOpenRequest:
            raise FailedPrecondition(_NEWER_OPEN) from None
    return request


_NEWER_OPEN = Bilingual(
    "a newer request for the same person and sub-service is open; follow that one",
    "يوجد طلب أحدث مفتوح للشخص نفسه والخدمة الفرعية نفسها؛ تابعه",
)


def _reopenable(request: Request, related: Related) -> None:
    """Refuses to open `request` again beside an open one for the same person and
    sub-service, or one of the account's holding any of its documents."""
    others = [r for r in related.requests if r.is_open and r.id != request.id]
    if any(r.open_key == request.open_key for r in others):
        raise FailedPrecondition(_NEWER_OPEN)
    holding = next(
        (
            r.number
            for r in others
            if r.applicant_id == request.applicant_id
            and set(r.document_ids) & set(request.document_ids)
        ),
        None,
    )
    if holding is not None:
        raise FailedPrecondition(
            Bilingual(
                f"a document of this request is attached to open request {holding} now;"
                " cancel that one first",
                f"أحد مستندات هذا الطلب مرفق الآن بالطلب المفتوح {holding}؛ ألغِ ذلك الطلب أولًا",
            )
        )


async def respond_to_info_request(
    *,
    uow: UnitOfWork,
    documents: Documents,
    registry: Registry,
    catalog: Catalog,
    caller: Principal,
    token: str,
    number: str,
    message: str,
    fields: Mapping[str, str],
    document_ids: list[str],
    now: datetime,
    idempotency_key: str = "",
) -> Request:
    """The beneficiary's answer, checked against the request's sub-service, with new documents
    of their own not held by another request; one it took already (Request.answered_already)
    is answered with the request as it is."""
    asked = await _acting_on(uow, registry, caller, number)
    sub_service = catalog.sub_services.get(asked.sub_service_code)
    if sub_service is None:
        # A catalog that dropped the sub-service has no schema left to check the answer by.
        raise FailedPrecondition(
            Bilingual(
                "this request's sub-service is no longer offered; file a new request",
                "الخدمة الفرعية لهذا الطلب لم تعد متاحة؛ قدّم طلبًا جديدًا",
            )
        )
    answer = validate_answer(
        sub_service=sub_service,
        subject_id=asked.subject_id,
        filed=asked.fields,
        today=now.astimezone(RIYADH).date(),
        message=message,
        fields=fields,
        document_ids=document_ids,
        idempotency_key=idempotency_key,
    )
    if asked.answered_already(answer):
        # Its documents were checked when it was taken: docs need not answer now.
        return asked
    typed = [s.name for s in sub_service.fields if s.type is FieldType.NATIONALITY]
    if sub_service.subject_nationalities and any(name in answer.fields for name in typed):
        person = await registry.person(asked.subject_id)
        if off_record := _nationalities_off_record(sub_service, answer.fields, person):
            raise InvalidArgument(off_record)
    found = await documents.describe(answer.document_ids, token, hold=False)
    if problems := _document_problems(answer.document_ids, found, sub_service):
        raise InvalidArgument(problems)
    async with uow:
        request = await _own(uow, caller, number, for_update=True)
        if request.answered_already(answer):
            return request  # by the same answer sent at once twice, taken meanwhile
        request.ensure_answerable(now)
        # Each answer within the schema's total, not the request: what a reviewer asks for is
        # often a clearer copy of a document the request holds its full count of already.
        most = _most_documents(sub_service)
        if len(answer.document_ids) > most:
            limit = at_most(DOCUMENTS, most)
            raise InvalidArgument(
                {
                    "document_ids": Bilingual(
                        f"{limit} for this sub-service", f"{limit.ar} لهذه الخدمة الفرعية"
                    )
                }
            )
        await uow.requests.lock_account(request.applicant_id)
        in_use = await uow.requests.open_requests_with_documents(
            request.applicant_id, answer.document_ids
        )
        if in_use:
            raise InvalidArgument(
                {
                    f"document_ids[{i}]": _attached(in_use[d])
                    for i, d in enumerate(answer.document_ids)
                    if d in in_use
                }
            )
        request.respond(
            message=answer.message,
            fields=answer.fields,
            document_ids=answer.document_ids,
            now=now,
            key=answer.key,
        )
        held = await _held(documents, token, answer.document_ids)
        if problems := _document_problems(answer.document_ids, held, sub_service):
            raise InvalidArgument(problems)
        await uow.commit()
    return request


async def track_status(
    *,
    uow: UnitOfWork,
    event_id: str,
    request_id: uuid.UUID,
    status: Status,
    message: str,
    at: datetime,
    missing: tuple[Missing, ...] = (),
    respond_by: datetime | None = None,
    transfer_to: str = "",
    sequence: int = 0,
    reason: Reason | None = None,
    restates: bool = False,
    appeal_until: datetime | None = None,
) -> None:
    """Applies a status change published by review to the tracking view, once; one older than
    a change applied already (a dead letter replayed, a late one) is skipped. `restates`: an
    outcome said again for a cancellation that came too late (Request.track)."""
    async with uow:
        if not await uow.claim_event(CONSUMER, event_id):
            return
        request = await uow.requests.get(request_id, for_update=True)
        if request is None:
            raise NotFound(f"status change for unknown request {request_id}")
        if request.outdated(sequence):
            log.warning(
                "skipping status change %s of request %s: its sequence %d is no later than %d,"
                " applied already",
                status.value,
                request.number,
                sequence,
                request.status_sequence,
            )
        else:
            request.track(
                status,
                message,
                at,
                missing=missing,
                respond_by=respond_by,
                transfer_to=transfer_to,
                sequence=sequence,
                reason=reason,
                restates=restates,
                appeal_until=appeal_until,
            )
        await uow.commit()
