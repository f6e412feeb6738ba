"""Intake's use cases on in-memory fakes that behave like the PostgreSQL adapters.

The fakes keep committed rows apart from what a transaction loaded or changed, as the SQL
unit of work does: nothing lands before `commit`, leaving the block without committing rolls
back, and `commit` refuses what the database's unique constraints refuse.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

import pytest
from tawasul_calendar import RIYADH, WorkingCalendar
from tawasul_intake.adapters.registry import DEV_REGISTRY, FileRegistry
from tawasul_intake.app import handlers
from tawasul_intake.app.handlers import MAX_OPEN_PER_ACCOUNT, TrackingPolicy, TrackingQuery
from tawasul_intake.app.ports import (
    ConcurrentSubmission,
    DocumentInfo,
    DuplicateOpenRequest,
    NumberTaken,
    Related,
    StoredCode,
)
from tawasul_intake.domain.fields import FOREIGN_DIGITS
from tawasul_intake.domain.identity import luhn_valid
from tawasul_intake.domain.model import (
    OFF_RECORD,
    Event,
    HistoryEntry,
    Locale,
    OpenKey,
    Request,
    RequestAnswered,
    RequestCancelled,
    RequestFollowedUp,
    RequestSubmitted,
    Status,
    Submission,
    validate_submission,
)
from tawasul_intake.domain.people import Person, PersonKind, Relation
from tawasul_platform.catalog import load_catalog
from tawasul_platform.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from tawasul_platform.i18n import in_locale
from tawasul_platform.identity import Principal, Role
from tawasul_platform.request_numbers import new_request_number

# --- fakes -------------------------------------------------------------------------------


class Database:
    """What PostgreSQL holds for intake: committed rows only."""

    def __init__(self) -> None:
        self.requests: dict[uuid.UUID, Request] = {}
        self.codes: dict[uuid.UUID, StoredCode] = {}
        self.limits: dict[str, tuple[datetime, int]] = {}
        self.inbox: set[tuple[str, str]] = set()
        self.published: list[Event] = []
        self.commits = 0
        self.locked: list[str] = []
        # Request numbers read to be changed (SELECT ... FOR UPDATE), in order.
        self.held: list[str] = []
        # Committed by "another replica" just before the next commit: a race lost.
        self.racing: list[Request] = []

    def insert(self, request: Request) -> None:
        stored = copy.deepcopy(request)
        stored.events.clear()
        self.requests[stored.id] = stored

    def row(self, number: str) -> Request:
        return next(r for r in self.requests.values() if r.number == number)


class FakeRequests:
    """SqlRequestRepository: reads committed rows into an identity map; writes at commit."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.seen: dict[uuid.UUID, Request] = {}
        self.new: set[uuid.UUID] = set()

    def _load(self, row: Request) -> Request:
        return self.seen.setdefault(row.id, copy.deepcopy(row))

    def _first(self, match: Callable[[Request], bool]) -> Request | None:
        row = next((r for r in self._db.requests.values() if match(r)), None)
        return None if row is None else self._load(row)

    async def add(self, request: Request) -> None:
        self.seen[request.id] = request
        self.new.add(request.id)

    async def get(self, request_id: uuid.UUID, *, for_update: bool = False) -> Request | None:
        return self._held(self._first(lambda r: r.id == request_id), for_update)

    async def get_by_number(self, number: str, *, for_update: bool = False) -> Request | None:
        return self._held(self._first(lambda r: r.number == number), for_update)

    def _held(self, request: Request | None, for_update: bool) -> Request | None:
        if request is not None and for_update:
            self._db.held.append(request.number)
        return request

    async def get_by_idempotency_key(self, applicant_id: str, key: str) -> Request | None:
        return self._first(lambda r: (r.applicant_id, r.idempotency_key) == (applicant_id, key))

    async def open_request(self, about: OpenKey) -> Request | None:
        return self._first(lambda r: r.is_open and r.open_key == about)

    async def related_to(
        self,
        applicant_id: str,
        key: str,
        about: OpenKey,
        document_ids: tuple[uuid.UUID, ...],
    ) -> Related:
        mine = [r for r in self._db.requests.values() if r.applicant_id == applicant_id]
        return Related(
            [
                self._load(r)
                for r in self._db.requests.values()
                if (r.applicant_id, r.idempotency_key) == (applicant_id, key)
                or (r.is_open and r.open_key == about)
                or (r in mine and r.is_open and set(r.document_ids) & set(document_ids))
            ],
            open_count=sum(r.is_open for r in mine),
        )

    async def list_by_applicant(
        self, applicant_id: str, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Request]:
        rows = sorted(
            (r for r in self._db.requests.values() if r.applicant_id == applicant_id),
            key=lambda r: (r.submitted_at, r.id),
            reverse=True,
        )
        if after is not None:
            rows = [r for r in rows if (r.submitted_at, r.id) < after]
        return [self._load(r) for r in rows[:limit]]

    async def open_requests_with_documents(
        self, applicant_id: str, document_ids: tuple[uuid.UUID, ...]
    ) -> dict[uuid.UUID, str]:
        return {
            d: r.number
            for r in self._db.requests.values()
            if r.is_open and r.applicant_id == applicant_id
            for d in r.document_ids
            if d in document_ids
        }

    async def lock_account(self, applicant_id: str) -> None:
        self._db.locked.append(applicant_id)


class FakeCodes:
    """SqlTrackingCodes on a working copy of the table."""

    def __init__(self, rows: dict[uuid.UUID, StoredCode]) -> None:
        self.rows = rows

    async def put(self, request_id: uuid.UUID, code_hash: str, expires_at: datetime) -> None:
        self.rows[request_id] = StoredCode(code_hash, expires_at, 0)

    async def attempt(self, request_id: uuid.UUID) -> StoredCode | None:
        stored = self.rows.get(request_id)
        if stored is None:
            return None
        self.rows[request_id] = replace(stored, attempts=stored.attempts + 1)
        return self.rows[request_id]

    async def delete(self, request_id: uuid.UUID) -> None:
        self.rows.pop(request_id, None)

    async def forget_expired(self, now: datetime, *, limit: int) -> int:
        expired = [k for k, v in self.rows.items() if v.expires_at <= now][:limit]
        for key in expired:
            del self.rows[key]
        return len(expired)


class FakeLimits:
    """SqlRateLimits: a fixed window per bucket, restarted once the window has passed."""

    def __init__(self, rows: dict[str, tuple[datetime, int]]) -> None:
        self.rows = rows

    async def hit(self, bucket: str, *, window: timedelta, now: datetime) -> int:
        start, hits = self.rows.get(bucket, (now, 0))
        if start <= now - window:
            start, hits = now, 0
        self.rows[bucket] = (start, hits + 1)
        return hits + 1

    async def forget(self, started_before: datetime, *, limit: int) -> int:
        stale = [k for k, (start, _) in self.rows.items() if start <= started_before][:limit]
        for key in stale:
            del self.rows[key]
        return len(stale)


@dataclass
class _Transaction:
    requests: FakeRequests
    codes: FakeCodes
    limits: FakeLimits
    claimed: set[tuple[str, str]] = field(default_factory=set)


class FakeUnitOfWork:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._open: _Transaction | None = None

    async def __aenter__(self) -> Self:
        self._open = _Transaction(
            FakeRequests(self.db), FakeCodes(dict(self.db.codes)), FakeLimits(dict(self.db.limits))
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = None  # whatever was not committed is rolled back

    @property
    def _tx(self) -> _Transaction:
        if self._open is None:
            raise RuntimeError("the unit of work is used outside `async with`")
        return self._open

    @property
    def requests(self) -> FakeRequests:
        return self._tx.requests

    @property
    def codes(self) -> FakeCodes:
        return self._tx.codes

    @property
    def limits(self) -> FakeLimits:
        return self._tx.limits

    async def seen_event(self, consumer: str, event_id: str) -> bool:
        return (consumer, event_id) in self.db.inbox | self._tx.claimed

    async def claim_event(self, consumer: str, event_id: str) -> bool:
        if await self.seen_event(consumer, event_id):
            return False
        self._tx.claimed.add((consumer, event_id))
        return True

    async def claim_events(self, consumer: str, event_ids: list[str]) -> set[str]:
        return {e for e in event_ids if await self.claim_event(consumer, e)}

    async def commit(self) -> None:
        tx, db = self._tx, self.db
        for racer in db.racing:
            db.insert(racer)
        db.racing.clear()
        # The rows as this transaction leaves them: one it cancelled holds no open key.
        rows = db.requests | tx.requests.seen
        for request in (tx.requests.seen[i] for i in tx.requests.new):
            self._check_constraints(request, [r for r in rows.values() if r.id != request.id])
        for request in tx.requests.seen.values():
            db.published.extend(request.events)
            request.events.clear()
            db.requests[request.id] = copy.deepcopy(request)
        tx.requests.new.clear()
        db.codes = dict(tx.codes.rows)
        db.limits = dict(tx.limits.rows)
        db.inbox |= tx.claimed
        tx.claimed.clear()
        db.commits += 1

    @staticmethod
    def _check_constraints(new: Request, others: Iterable[Request]) -> None:
        for other in others:
            if other.number == new.number:
                raise NumberTaken
            if (other.applicant_id, other.idempotency_key) == (
                new.applicant_id,
                new.idempotency_key,
            ):
                raise ConcurrentSubmission
            if new.is_open and other.is_open and other.open_key == new.open_key:
                raise DuplicateOpenRequest


class FakeDocuments:
    """Docs as each account sees them: only its own uploads exist."""

    def __init__(self) -> None:
        self.uploads: dict[str, dict[uuid.UUID, DocumentInfo]] = {}
        self.calls: list[tuple[tuple[uuid.UUID, ...], str]] = []
        # What docs was asked to hold, call by call.
        self.held: list[tuple[uuid.UUID, ...]] = []

    def upload(
        self,
        caller: Principal,
        content_type: str = "application/pdf",
        size: int = 50_000,
        *,
        clean: bool = True,
        infected: bool = False,
        kind: str = "",
    ) -> uuid.UUID:
        document_id = uuid.uuid4()
        info = DocumentInfo(content_type, size, clean=clean, infected=infected, kind=kind)
        self.uploads.setdefault(token(caller), {})[document_id] = info
        return document_id

    async def describe(
        self, document_ids: tuple[uuid.UUID, ...], token: str, *, hold: bool
    ) -> dict[uuid.UUID, DocumentInfo]:
        self.calls.append((document_ids, token))
        if hold:
            self.held.append(document_ids)
        own = self.uploads.get(token, {})
        return {d: own[d] for d in document_ids if d in own}


@dataclass(frozen=True)
class Sent:
    request: Request
    code: str
    valid_minutes: int


class FakeSender:
    def __init__(self) -> None:
        self.sent: list[Sent] = []

    async def send(self, *, request: Request, code: str, valid_minutes: int) -> None:
        self.sent.append(Sent(request, code, valid_minutes))


class Numbers:
    """Request numbers from a seeded generator; `forced` ones are drawn first."""

    def __init__(self) -> None:
        self._random = random.Random(2026)
        self.forced: list[str] = []
        self.drawn: list[str] = []

    def __call__(self) -> str:
        number = self.forced.pop(0) if self.forced else new_request_number(self._random.randrange)
        self.drawn.append(number)
        return number


# --- the world the tests run in ----------------------------------------------------------

CATALOG = load_catalog()
CALENDAR = WorkingCalendar()
REGISTRY = FileRegistry.from_file(DEV_REGISTRY)
POLICY = TrackingPolicy(secret=b"unit-test-tracking-secret-32-bytes")

FATHER = Principal("1000000008", Role.CITIZEN)  # dev registry: two dependents, a visitor
DAUGHTER = "1012345672"  # FATHER's dependent
DAUGHTER_ACCOUNT = Principal(DAUGHTER, Role.CITIZEN)
VISITOR = "3000000129"  # hosted by FATHER; Syrian
HOUSEMAID = "2045678907"  # FATHER's sponsored worker; Filipino
STRANGER = Principal("1034567899", Role.CITIZEN)  # no relation to anyone
RESIDENT = Principal("2000000006", Role.RESIDENT)
COMPANY = Principal("7000000005", Role.ESTABLISHMENT)  # sponsors 2000000006 and 2023456789
WORKER = "2023456789"
OTHER_COMPANYS_WORKER = "2034567897"

MOBILE = "0551234567"
E164 = "+966551234567"
DESCRIPTION = "The photo does not appear when renewing passport A123 after payment"
PASSPORT = "passports.issue-renewal-problem"
INQUIRY = "reports.general-inquiry"
VISIT = "residents.visit-visa-extension"
NAME = "corrections.name-or-birth-date"
CANCEL_VISA = "visas.cancel-visa"


def riyadh(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in January 2026, Riyadh time; the 4th is a Sunday."""
    return datetime(2026, 1, day, hour, minute, tzinfo=RIYADH)


NOW = riyadh(4, 10)

# A complete, valid form for every sub-service of the catalog.
FORMS: dict[str, dict[str, str]] = {
    VISIT: {
        "visitor_border_number": VISITOR,
        "visa_number": "1234567890",
        "visitor_nationality": "SYR",
        "visitor_passport_number": "N1234567",
        "relationship": "sibling",
        "visa_expiry_date": "2026-02-01",
    },
    "residents.iqama-issue-renewal": {
        "request_type": "renewal",
        "iqama_number": HOUSEMAID,
        "passport_number": "A1234567",
    },
    "residents.transfer-of-services": {
        "iqama_number": "2000000006",
        "new_employer_number": "7000000013",
    },
    "residents.profession-change": {
        "iqama_number": "2000000006",
        "current_profession": "Driver",
        "new_profession": "Cook",
    },
    "residents.dependents-services": {
        "request_type": "issue_id",
        "dependent_name": "Mona Adel Fahmy",
        "dependent_date_of_birth": "2015-03-01",
        "relationship": "daughter",
    },
    CANCEL_VISA: {
        "visa_type": "final_exit",
        "visa_number": "1234567890",
        "iqama_number": HOUSEMAID,
    },
    "visas.change-visa-duration": {
        "visa_number": "1234567890",
        "iqama_number": HOUSEMAID,
        "requested_extension": "one_month",
        "holder_location": "outside",
    },
    "visas.final-exit-issue": {"iqama_number": HOUSEMAID, "passport_number": "P1234567"},
    PASSPORT: {"national_id": "1000000008", "request_type": "renewal", "problem": "other"},
    "passports.lost-passport-report": {
        "national_id": "1000000008",
        "loss_date": "2025-12-20",
        "loss_place": "outside_kingdom",
    },
    NAME: {
        "id_number": "1000000008",
        "correction": "date_of_birth",
        "correct_date_of_birth": "1990-05-01",
    },
    "corrections.passport-data-update": {
        "iqama_number": "2000000006",
        "new_passport_number": "A7654321",
        "new_passport_expiry_date": "2030-06-30",
        "nationality": "EGY",
    },
    "reports.absence-report": {
        "iqama_number": HOUSEMAID,
        "absence_date": "2025-12-28",
        "worker_type": "domestic_worker",
    },
    "reports.cancel-absence-report": {
        "iqama_number": HOUSEMAID,
        "report_date": "2025-12-28",
        "reason": "worker_returned",
    },
    "reports.edit-absent-worker-data": {
        "iqama_number": HOUSEMAID,
        "data_to_correct": "other",
        "correct_value": "Returned on 2 January",
    },
    INQUIRY: {},
}


def about(subject: str, code: str) -> dict[str, str]:
    """FORMS[code] for `subject`: the ID fields that name the person the request is about
    give that person's number."""
    named = {spec.name for spec in CATALOG.sub_services[code].fields if spec.names_subject}
    return {name: subject if name in named else value for name, value in FORMS[code].items()}


def fathers_subject(code: str) -> str:
    """Whom FATHER files FORMS[code] for where a test does not care: his housemaid where the
    form's ID field names her, his visitor for a visit visa, else himself ("")."""
    if code == VISIT:
        return VISITOR
    named = {spec.name for spec in CATALOG.sub_services[code].fields if spec.names_subject}
    return HOUSEMAID if any(FORMS[code].get(name) == HOUSEMAID for name in named) else ""


def token(caller: Principal) -> str:
    return f"token-of-{caller.subject}"


def with_check_digit(body: str) -> str:
    return next(f"{body}{d}" for d in "0123456789" if luhn_valid(f"{body}{d}"))


def synthetic_citizens(count: int) -> list[str]:
    """Luhn-valid national IDs under the dev registry's synthetic prefix "19"."""
    found: list[str] = []
    body = 190_000_000
    while len(found) < count:
        body += 7919
        found.extend(f"{body}{d}" for d in "0123456789" if luhn_valid(f"{body}{d}"))
    return found[:count]


def required_kinds(sub_service_code: str) -> list[str]:
    """Each required kind of the sub-service's documents, as often as it is needed."""
    specs = CATALOG.sub_services[sub_service_code].documents
    return [spec.kind for spec in specs if spec.required for _ in range(spec.min_count)]


class Intake:
    def __init__(self) -> None:
        self.db = Database()
        self.uow = FakeUnitOfWork(self.db)
        self.documents = FakeDocuments()
        self.sender = FakeSender()
        self.registry = REGISTRY
        self.numbers = Numbers()

    def form(
        self,
        caller: Principal = FATHER,
        *,
        code: str = PASSPORT,
        key: str = "key-1",
        subject: str = "",
        fields: Mapping[str, str] | None = None,
        documents: list[uuid.UUID] | None = None,
        description: str = DESCRIPTION,
        mobile: str = MOBILE,
        cites: str = "",
        now: datetime = NOW,
    ) -> Submission:
        """The validated form; `documents` None uploads the sub-service's required minimum,
        `fields` None takes FORMS[code] with its ID fields naming the subject (SPEC §2)."""
        if documents is None:
            documents = [self.documents.upload(caller, kind=k) for k in required_kinds(code)]
        if fields is None:
            fields = about(subject or caller.subject, code)
        return validate_submission(
            caller=caller,
            catalog=CATALOG,
            today=now.astimezone(RIYADH).date(),
            idempotency_key=key,
            sub_service_code=code,
            description=description,
            subject_id=subject,
            fields=fields,
            document_ids=[str(d) for d in documents],
            mobile=mobile,
            email="",
            locale="",
            cites_number=cites,
        )

    async def file(self, submission: Submission, *, now: datetime = NOW) -> Request:
        return (await self.filed(submission, now=now)).request

    async def filed(self, submission: Submission, *, now: datetime = NOW) -> handlers.Filed:
        return await handlers.submit_request(
            uow=self.uow,
            documents=self.documents,
            registry=self.registry,
            catalog=CATALOG,
            calendar=CALENDAR,
            token=f"token-of-{submission.applicant_id}",
            submission=submission,
            now=now,
            new_number=self.numbers,
        )

    async def submit(
        self,
        caller: Principal = FATHER,
        *,
        code: str = PASSPORT,
        key: str = "key-1",
        subject: str = "",
        fields: Mapping[str, str] | None = None,
        documents: list[uuid.UUID] | None = None,
        cites: str = "",
        now: datetime = NOW,
    ) -> Request:
        submission = self.form(
            caller,
            code=code,
            key=key,
            subject=subject,
            fields=fields,
            documents=documents,
            cites=cites,
            now=now,
        )
        return await self.file(submission, now=now)

    async def decide(self, request: Request, status: Status, at: datetime = NOW) -> None:
        await handlers.track_status(
            uow=self.uow,
            event_id=str(uuid.uuid4()),
            request_id=request.id,
            status=status,
            message=f"decided: {status.value}",
            at=at + timedelta(minutes=1),
        )

    def submitted(self) -> list[RequestSubmitted]:
        return [e for e in self.db.published if isinstance(e, RequestSubmitted)]


@pytest.fixture
def intake() -> Intake:
    return Intake()


def test_the_forms_cover_the_whole_catalog() -> None:
    assert set(FORMS) == set(CATALOG.sub_services)


# --- submit_request: who may file for whom ----------------------------------------------


async def test_a_citizen_files_for_themselves(intake: Intake) -> None:
    request = await intake.submit()
    stored = intake.db.row(request.number)
    assert stored.id == request.id
    assert (stored.applicant_id, stored.subject_id) == (FATHER.subject, FATHER.subject)
    assert stored.status is Status.SUBMITTED
    assert stored.department_code == "passports"
    assert stored.contact.mobile == E164
    assert stored.fields == FORMS[PASSPORT]
    assert stored.history == [HistoryEntry(Status.SUBMITTED, NOW)]
    assert request.number == intake.numbers.drawn[0]
    assert intake.db.locked == [FATHER.subject]
    (event,) = intake.db.published
    assert isinstance(event, RequestSubmitted)
    assert event.request.number == request.number


@pytest.mark.parametrize(
    ("caller", "subject", "code"),
    [
        pytest.param(FATHER, DAUGHTER, PASSPORT, id="dependent"),
        pytest.param(FATHER, "1023456781", INQUIRY, id="second-dependent"),
        pytest.param(FATHER, VISITOR, INQUIRY, id="hosted-visitor"),
        pytest.param(FATHER, HOUSEMAID, CANCEL_VISA, id="household-sponsored-worker"),
        pytest.param(RESIDENT, "2012345670", INQUIRY, id="residents-dependent"),
        pytest.param(COMPANY, WORKER, INQUIRY, id="establishments-worker"),
        pytest.param(COMPANY, "2000000006", CANCEL_VISA, id="establishments-other-worker"),
    ],
)
async def test_filing_for_someone_the_account_answers_for(
    intake: Intake, caller: Principal, subject: str, code: str
) -> None:
    request = await intake.submit(caller, code=code, subject=subject)
    stored = intake.db.row(request.number)
    assert (stored.applicant_id, stored.subject_id) == (caller.subject, subject)
    assert len(intake.submitted()) == 1


@pytest.mark.parametrize(
    ("caller", "subject"),
    [
        pytest.param(FATHER, STRANGER.subject, id="unrelated-citizen"),
        pytest.param(FATHER, "2000000006", id="another-sponsors-worker"),
        pytest.param(STRANGER, DAUGHTER, id="someone-elses-dependent"),
        pytest.param(RESIDENT, FATHER.subject, id="resident-for-a-citizen"),
        pytest.param(COMPANY, OTHER_COMPANYS_WORKER, id="another-establishments-worker"),
        pytest.param(COMPANY, "2012345670", id="a-workers-dependent"),
        pytest.param(
            Principal(with_check_digit("181111111"), Role.CITIZEN), "", id="not-in-registry"
        ),
        pytest.param(FATHER, "2999999994", id="unknown-person"),
    ],
)
async def test_filing_for_anyone_else_is_refused_and_stores_nothing(
    intake: Intake, caller: Principal, subject: str
) -> None:
    with pytest.raises(PermissionDenied):
        await intake.submit(caller, code=INQUIRY, subject=subject)
    assert intake.db.requests == {}
    assert intake.db.published == []
    assert intake.db.commits == 0


async def test_a_synthetic_resident_files_about_their_own_iqama(intake: Intake) -> None:
    """The dev registry's synthetic residents ("28…") give end-to-end tests fresh iqama
    holders, as synthetic citizens ("19…") give fresh citizens."""
    resident, other = (Principal(with_check_digit(f"28{n:07d}"), Role.RESIDENT) for n in (1, 2))
    request = await intake.submit(resident, code=CANCEL_VISA)
    stored = intake.db.row(request.number)
    assert (stored.subject_id, stored.fields["iqama_number"]) == (resident.subject,) * 2
    (event,) = intake.submitted()
    assert (event.applicant_kind, event.subject_nationality) == ("resident", "EGY")
    with pytest.raises(PermissionDenied):
        await intake.submit(other, code=CANCEL_VISA, key="other", subject=resident.subject)


@pytest.mark.parametrize(
    ("relation", "allowed"),
    [
        (Relation.DEPENDENT, False),
        (Relation.HOSTED_VISITOR, False),
        (Relation.SELF, False),
        (Relation.SPONSORED_WORKER, True),
    ],
)
async def test_an_establishment_acts_for_its_sponsored_workers_only(
    intake: Intake, relation: Relation, allowed: bool
) -> None:
    intake.registry = replace(
        REGISTRY, relations={**REGISTRY.relations, (COMPANY.subject, "2012345670"): relation}
    )
    submission = intake.form(COMPANY, code=INQUIRY, subject="2012345670")
    if allowed:
        assert (await intake.file(submission)).subject_id == "2012345670"
    else:
        with pytest.raises(PermissionDenied):
            await intake.file(submission)
        assert intake.db.requests == {}


ABSENCE = "reports.absence-report"
RESIDENTS_WIFE = "2012345670"  # on RESIDENT's family record


@pytest.mark.parametrize(
    ("caller", "subject", "code"),
    [
        pytest.param(RESIDENT, RESIDENTS_WIFE, ABSENCE, id="absence-of-a-dependent"),
        pytest.param(RESIDENT, "", ABSENCE, id="absence-of-oneself"),
        pytest.param(RESIDENT, RESIDENT.subject, ABSENCE, id="absence-of-oneself-by-number"),
        pytest.param(
            RESIDENT, RESIDENTS_WIFE, "reports.cancel-absence-report", id="cancel-for-a-dependent"
        ),
        pytest.param(
            RESIDENT, RESIDENTS_WIFE, "reports.edit-absent-worker-data", id="edit-for-a-dependent"
        ),
        pytest.param(FATHER, HOUSEMAID, "residents.dependents-services", id="dependents-maid"),
        pytest.param(FATHER, VISITOR, "residents.dependents-services", id="dependents-visitor"),
    ],
)
async def test_a_sub_service_about_some_relations_only_refuses_the_others(
    intake: Intake, caller: Principal, subject: str, code: str
) -> None:
    """SPEC §3 / seed 000: an absence report is about a worker the filer sponsors, the
    dependents' services about the holder's family; the account may file for the others,
    only not this."""
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(caller, code=code, subject=subject)
    assert set(caught.value.violations) == {"subject_id"}
    assert intake.db.requests == {}
    assert intake.db.commits == 0


async def test_what_a_sub_service_is_about_is_said_in_both_languages(intake: Intake) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(RESIDENT, code=ABSENCE, subject=RESIDENTS_WIFE)
    refused = caught.value.violations["subject_id"]
    assert (refused, in_locale(refused, "ar")) == (
        "Absence-from-work report is only about a worker the account sponsors",
        "خدمة «بلاغ تغيب / هروب» تخص عامل مكفول لدى صاحب الحساب فقط",
    )
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=DEPENDENTS, subject=HOUSEMAID)
    refused = caught.value.violations["subject_id"]
    assert (refused, in_locale(refused, "ar")) == (
        "Dependents' services is only about the account holder or a dependent on the account"
        " holder's record",
        "خدمة «خدمات التابعين» تخص صاحب الحساب أو أحد التابعين المسجلين على صاحب الحساب فقط",
    )


@pytest.mark.parametrize(
    ("caller", "subject", "code"),
    [
        pytest.param(FATHER, HOUSEMAID, ABSENCE, id="absence-of-the-housemaid"),
        pytest.param(COMPANY, WORKER, ABSENCE, id="absence-of-an-establishments-worker"),
        pytest.param(COMPANY, WORKER, "reports.cancel-absence-report", id="cancel-for-the-worker"),
        pytest.param(FATHER, "", "residents.dependents-services", id="dependents-unnumbered"),
        pytest.param(FATHER, DAUGHTER, "residents.dependents-services", id="dependents-daughter"),
        pytest.param(
            RESIDENT, RESIDENTS_WIFE, "residents.dependents-services", id="dependents-wife"
        ),
    ],
)
async def test_a_sub_service_takes_the_relations_it_is_about(
    intake: Intake, caller: Principal, subject: str, code: str
) -> None:
    request = await intake.submit(caller, code=code, subject=subject)
    assert intake.db.row(request.number).subject_id == (subject or caller.subject)


async def test_a_visit_visa_extension_is_for_syrian_and_yemeni_visitors(intake: Intake) -> None:
    request = await intake.submit(code=VISIT, subject=VISITOR)
    assert intake.db.row(request.number).subject_id == VISITOR


@pytest.mark.parametrize(
    ("caller", "subject"),
    [
        pytest.param(FATHER, "", id="the-citizen-host-himself"),
        pytest.param(FATHER, DAUGHTER, id="a-saudi-dependent"),
        pytest.param(FATHER, HOUSEMAID, id="a-filipino-worker"),
        pytest.param(RESIDENT, "2012345670", id="an-egyptian-dependent"),
    ],
)
async def test_a_visit_visa_extension_is_about_a_visitor_by_border_number(
    intake: Intake, caller: Principal, subject: str
) -> None:
    """The visitor's border number names the request's subject: anyone else is refused at it."""
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(caller, code=VISIT, subject=subject)
    assert set(caught.value.violations) == {"fields.visitor_border_number"}
    assert intake.db.requests == {}


async def test_a_visit_visa_extension_for_a_visitor_of_another_nationality_is_refused(
    intake: Intake,
) -> None:
    egyptian = "3000000137"
    intake.registry = replace(
        REGISTRY,
        people={
            **REGISTRY.people,
            egyptian: Person(egyptian, PersonKind.VISITOR, "EGY", "زائر", "A visitor"),
        },
        relations={**REGISTRY.relations, (FATHER.subject, egyptian): Relation.HOSTED_VISITOR},
    )
    fields = about(egyptian, VISIT) | {"visitor_nationality": "EGY"}
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=VISIT, subject=egyptian, fields=fields)
    # Typed, the form says so before the registry is asked.
    assert caught.value.violations == {
        "fields.visitor_nationality": "this sub-service is for nationals of Syria, Yemen only"
    }
    # Typed as one of them, the registry's record says otherwise.
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(
            code=VISIT, subject=egyptian, fields=fields | {"visitor_nationality": "SYR"}
        )
    refused = caught.value.violations["subject_id"]
    assert (refused, in_locale(refused, "ar")) == (
        "this sub-service is for nationals of Syria, Yemen only",
        "هذه الخدمة الفرعية لحاملي الجنسيات التالية فقط: الجمهورية العربية السورية، اليمن",
    )
    assert intake.db.requests == {}


async def test_an_answer_keeps_to_the_nationality_rules_of_a_submission(intake: Intake) -> None:
    """A reviewer may ask for the visitor's nationality again; the answer is held to the
    sub-service's limit and to the record, as the form was."""
    fields = about(VISITOR, VISIT) | {"visitor_nationality": "SYR"}
    request = await intake.submit(code=VISIT, subject=VISITOR, fields=fields)
    await intake.decide(request, Status.NEEDS_MORE_INFO)
    for typed, problem in (
        ("EGY", "this sub-service is for nationals of Syria, Yemen only"),
        ("YEM", "not the nationality on record for this person"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            await answer(intake, request, fields={"visitor_nationality": typed})
        assert caught.value.violations == {"fields.visitor_nationality": problem}
    assert intake.db.requests[request.id].fields["visitor_nationality"] == "SYR"
    answered = await answer(intake, request, fields={"visitor_nationality": "SYR"})
    assert answered.status is Status.RETURNED_BY_APPLICANT


async def test_a_visitor_s_nationality_is_the_one_on_record(intake: Intake) -> None:
    """VISITOR is Syrian: a form calling him Yemeni would pass the limit but not the record."""
    fields = about(VISITOR, VISIT) | {"visitor_nationality": "YEM"}
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=VISIT, subject=VISITOR, fields=fields)
    assert caught.value.violations == {
        "fields.visitor_nationality": "not the nationality on record for this person"
    }
    assert intake.db.requests == {}


@pytest.mark.parametrize("code", sorted(CATALOG.sub_services))
async def test_every_sub_service_takes_a_complete_form(intake: Intake, code: str) -> None:
    filers = CATALOG.sub_services[code].filers
    caller, subject = {
        Role.CITIZEN: (FATHER, fathers_subject(code)),
        Role.RESIDENT: (RESIDENT, ""),
        Role.ESTABLISHMENT: (COMPANY, WORKER),
    }[min(filers)]
    request = await intake.submit(caller, code=code, subject=subject)
    assert intake.db.row(request.number).sub_service_code == code


# --- documents ----------------------------------------------------------------------------


async def test_documents_are_described_with_the_callers_token(intake: Intake) -> None:
    first, second = intake.documents.upload(FATHER), intake.documents.upload(FATHER)
    request = await intake.submit(code=INQUIRY, documents=[first, second])
    # Checked, then held (and checked again) just before the commit.
    assert intake.documents.calls == [((first, second), token(FATHER))] * 2
    assert intake.documents.held == [(first, second)]
    assert intake.db.row(request.number).document_ids == (first, second)


async def test_a_refused_submission_holds_none_of_its_documents(intake: Intake) -> None:
    """Docs keeps what a request is about to name (the hold) a full unattached lifetime more:
    a submission refused after docs described its documents held them all the same, so one
    refused again and again (a duplicate, past the cap, a document in use) kept them for good,
    past docs' 72 hours (docs/retention.md)."""
    own = intake.documents.upload(FATHER)
    first = await intake.submit(subject=DAUGHTER, key="first", documents=[own])
    assert intake.documents.held == [(own,)]
    fresh = intake.documents.upload(FATHER)
    with pytest.raises(AlreadyExists):  # a second open request for the person
        await intake.submit(subject=DAUGHTER, key="second", documents=[fresh])
    with pytest.raises(InvalidArgument):  # its document is attached to an open request
        await intake.submit(code=INQUIRY, key="third", documents=[fresh, own])
    with pytest.raises(InvalidArgument):  # the document's kind is not the sub-service's
        await intake.submit(code=INQUIRY, key="fourth", documents=[fresh, fresh])
    assert intake.documents.held == [(own,)]
    assert first.number


async def test_a_refused_answer_holds_none_of_its_documents(intake: Intake) -> None:
    request = await intake.submit(code=NAME)
    await intake.decide(request, Status.NEEDS_MORE_INFO)
    in_use = intake.documents.upload(FATHER, kind="passport_copy")
    other = await intake.submit(code=NAME, subject=DAUGHTER, key="other", documents=[in_use])
    held = list(intake.documents.held)
    with pytest.raises(InvalidArgument) as caught:
        await answer(intake, request, documents=[in_use])
    assert caught.value.violations == {
        "document_ids[0]": f"already attached to open request {other.number}"
    }
    assert intake.documents.held == held
    clearer = intake.documents.upload(FATHER, kind="passport_copy")
    await answer(intake, request, documents=[clearer])
    assert intake.documents.held == [*held, (clearer,)]


async def test_a_document_gone_when_it_is_held_is_refused(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removed by docs between the check and the hold (its unattached lifetime ran out): the
    request would name a document that no longer exists."""
    own = intake.documents.upload(FATHER)
    describe = intake.documents.describe

    async def expiring(
        document_ids: tuple[uuid.UUID, ...], token: str, *, hold: bool
    ) -> dict[uuid.UUID, DocumentInfo]:
        found = await describe(document_ids, token, hold=hold)
        return {} if hold else found

    monkeypatch.setattr(intake.documents, "describe", expiring)
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=INQUIRY, documents=[own])
    assert set(caught.value.violations) == {"document_ids[0]"}
    assert intake.db.requests == {}


async def test_someone_elses_document_is_refused(intake: Intake) -> None:
    own = intake.documents.upload(FATHER)
    theirs = intake.documents.upload(STRANGER)
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=INQUIRY, documents=[own, theirs, uuid.uuid4()])
    assert caught.value.violations == {
        "document_ids[1]": "no such document uploaded by this account",
        "document_ids[2]": "no such document uploaded by this account",
    }
    assert intake.db.requests == {}


@pytest.mark.parametrize(
    ("code", "content_type", "size", "problem"),
    [
        (INQUIRY, "image/gif", 1000, "a type this sub-service does not accept"),
        (INQUIRY, "application/zip", 1000, "a type this sub-service does not accept"),
        # SPEC §2: PDF or JPG; a PNG docs stored before that rule is no attachment either.
        (
            INQUIRY,
            "image/png",
            1000,
            "a type this sub-service does not accept (it takes PDF or JPG)",
        ),
        (INQUIRY, "application/pdf", 10 * 2**20 + 1, "larger than this sub-service's"),
        (CANCEL_VISA, "application/pdf", 10 * 2**20 + 1, "larger than this sub-service's"),
    ],
)
async def test_a_document_the_sub_service_does_not_accept_is_refused(
    intake: Intake, code: str, content_type: str, size: int, problem: str
) -> None:
    document = intake.documents.upload(FATHER, content_type, size)
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=code, subject=fathers_subject(code), documents=[document])
    assert set(caught.value.violations) == {"document_ids[0]"}
    assert problem in caught.value.violations["document_ids[0]"]


@pytest.mark.parametrize("content_type", ["application/pdf", "image/jpeg"])
async def test_accepted_types_up_to_the_largest_size_pass(
    intake: Intake, content_type: str
) -> None:
    document = intake.documents.upload(FATHER, content_type, 10 * 2**20)
    assert (await intake.submit(code=INQUIRY, documents=[document])).document_ids == (document,)


async def test_a_missing_required_kind_is_named(intake: Intake) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=NAME, documents=[])
    assert caught.value.violations == {"document_ids": "required documents missing: Passport copy"}
    assert in_locale(caught.value.violations["document_ids"], "ar") == (
        "مستندات مطلوبة لم تُرفق: صورة جواز السفر"
    )
    assert intake.db.requests == {}


async def test_another_kind_does_not_stand_for_a_required_one(intake: Intake) -> None:
    """SPEC §6.4: the schema's required types, not a count of files of any kind."""
    supporting = intake.documents.upload(FATHER, kind="supporting_document")
    official = intake.documents.upload(FATHER, kind="official_document")
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=NAME, documents=[supporting, official])
    assert caught.value.violations == {"document_ids": "required documents missing: Passport copy"}
    passport = intake.documents.upload(FATHER, kind="passport_copy")
    filed = await intake.submit(code=NAME, documents=[supporting, passport, official])
    assert filed.document_ids == (supporting, passport, official)


async def test_a_visit_visa_extension_needs_the_passport_and_the_kinship_proof(
    intake: Intake,
) -> None:
    unlabelled = [intake.documents.upload(FATHER)]
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=VISIT, subject=VISITOR, documents=unlabelled)
    assert caught.value.violations == {
        "document_ids": "required documents missing: Copy of the visitor's passport, Proof of"
        " kinship; a document uploaded without its kind counts as none of them"
    }


async def test_a_kind_has_at_most_its_count(intake: Intake) -> None:
    first, second = (intake.documents.upload(FATHER, kind="passport_copy") for _ in range(2))
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=NAME, documents=[first, second])
    assert caught.value.violations == {
        "document_ids[1]": "Passport copy: at most 1 for this sub-service"
    }
    assert in_locale(caught.value.violations["document_ids[1]"], "ar") == (
        "صورة جواز السفر: 1 على الأكثر لهذه الخدمة الفرعية"
    )


async def test_a_kind_of_another_sub_service_is_refused(intake: Intake) -> None:
    photo = intake.documents.upload(FATHER, "image/jpeg", kind="photo")
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=INQUIRY, documents=[photo])
    assert caught.value.violations == {
        "document_ids[0]": "uploaded as a kind of document this sub-service does not take:"
        " Screenshot of the error message, Supporting documents"
    }


@pytest.mark.parametrize(
    ("kind", "content_type", "size", "problem"),
    [
        # 5 MB for a passport copy where the sub-service takes 10 MB for other kinds.
        ("passport_copy", "application/pdf", 5 * 2**20 + 1, "larger than this sub-service's 5 MB"),
        ("official_document", "application/pdf", 10 * 2**20 + 1, "larger than this sub-serv"),
    ],
)
async def test_a_kind_has_its_own_size_limit(
    intake: Intake, kind: str, content_type: str, size: int, problem: str
) -> None:
    passport = intake.documents.upload(FATHER, kind="passport_copy")
    document = intake.documents.upload(FATHER, content_type, size, kind=kind)
    documents = [document] if kind == "passport_copy" else [passport, document]
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=NAME, documents=documents)
    position = f"document_ids[{len(documents) - 1}]"
    assert set(caught.value.violations) == {position}
    assert caught.value.violations[position].startswith(problem)


async def test_a_kind_has_its_own_types(intake: Intake) -> None:
    """The passport photo is an image; the sub-service's other kinds take PDFs too."""
    pdf = intake.documents.upload(FATHER, "application/pdf", kind="photo")
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(documents=[pdf])
    refused = caught.value.violations["document_ids[0]"]
    assert (refused, in_locale(refused, "ar")) == (
        "a type Recent personal photo does not take (it takes JPG)",
        "نوع ملف لا يُقبل في «صورة شخصية حديثة» (يُقبل: JPG)",
    )
    jpeg = intake.documents.upload(FATHER, "image/jpeg", kind="photo")
    assert (await intake.submit(documents=[jpeg])).document_ids == (jpeg,)


async def test_the_accepted_types_are_named_as_the_spec_names_them(intake: Intake) -> None:
    """SPEC §2 and the seeds: «PDF أو JPG», in both languages."""
    png = intake.documents.upload(FATHER, "image/png")
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=INQUIRY, subject=fathers_subject(INQUIRY), documents=[png])
    refused = caught.value.violations["document_ids[0]"]
    assert (refused, in_locale(refused, "ar")) == (
        "a type this sub-service does not accept (it takes PDF or JPG)",
        "نوع ملف لا تقبله هذه الخدمة الفرعية (تقبل: PDF أو JPG)",
    )


async def test_an_answer_may_bring_another_of_a_kind_within_its_size(intake: Intake) -> None:
    """What the reviewer asked for is often a clearer copy of a document already there."""
    request = await intake.submit(code=NAME)
    await intake.decide(request, Status.NEEDS_MORE_INFO)
    too_big = intake.documents.upload(FATHER, size=5 * 2**20 + 1, kind="passport_copy")
    with pytest.raises(InvalidArgument) as caught:
        await answer(intake, request, documents=[too_big])
    assert set(caught.value.violations) == {"document_ids[0]"}
    clearer = intake.documents.upload(FATHER, kind="passport_copy")
    answered = await answer(intake, request, documents=[clearer])
    assert answered.document_ids == (*request.document_ids, clearer)


async def test_too_many_documents_are_refused(intake: Intake) -> None:
    six = [intake.documents.upload(FATHER) for _ in range(6)]
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=CANCEL_VISA, subject=HOUSEMAID, documents=six)
    refused = caught.value.violations["document_ids"]
    assert (refused, in_locale(refused, "ar")) == (
        "at most 5 documents for this sub-service",
        "5 مستندات على الأكثر لهذه الخدمة الفرعية",
    )
    assert set(caught.value.violations) == {"document_ids"}
    five = six[:5]
    filed = await intake.submit(code=CANCEL_VISA, subject=HOUSEMAID, documents=five)
    assert len(filed.document_ids) == 5


async def test_a_document_of_an_open_request_cannot_be_attached_again(intake: Intake) -> None:
    own = intake.documents.upload(FATHER)
    first = await intake.submit(code=INQUIRY, key="first", documents=[own])
    fresh = intake.documents.upload(FATHER)
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(key="second", documents=[fresh, own])
    assert caught.value.violations == {
        "document_ids[1]": f"already attached to open request {first.number}"
    }
    await handlers.cancel_request(
        uow=intake.uow, caller=FATHER, number=first.number, reason="Wrong form", now=NOW
    )
    again = await intake.submit(key="third", documents=[fresh, own])
    assert again.document_ids == (fresh, own)


async def test_an_appeal_does_not_reopen_a_request_whose_document_another_holds_now(
    intake: Intake,
) -> None:
    """Rejected, the request let go of its document, which went into a request filed since:
    appealed, both open requests would hold it, as a submission or an answer may not."""
    own = intake.documents.upload(FATHER)
    rejected = await intake.submit(code=INQUIRY, key="first", documents=[own])
    await intake.decide(rejected, Status.REJECTED)
    since = await intake.submit(key="second", documents=[own])

    async def appeal() -> Request:
        return await handlers.appeal_rejection(
            uow=intake.uow,
            registry=intake.registry,
            caller=FATHER,
            calendar=CALENDAR,
            number=rejected.number,
            reason="The reviewer misread the passport number",
            now=NOW + timedelta(hours=2),
        )

    with pytest.raises(FailedPrecondition) as caught:
        await appeal()
    said = caught.value.args[0]
    assert (str(said), said.ar) == (
        f"a document of this request is attached to open request {since.number} now;"
        " cancel that one first",
        f"أحد مستندات هذا الطلب مرفق الآن بالطلب المفتوح {since.number}؛ ألغِ ذلك الطلب أولًا",
    )
    assert intake.db.requests[rejected.id].status is Status.REJECTED
    await handlers.cancel_request(
        uow=intake.uow, caller=FATHER, number=since.number, reason="Wrong form", now=NOW
    )
    assert (await appeal()).status is Status.UNDER_REVIEW


async def test_only_a_document_the_scanner_found_clean_is_attached(intake: Intake) -> None:
    waiting = intake.documents.upload(FATHER, clean=False)
    infected = intake.documents.upload(FATHER, clean=False, infected=True)
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=INQUIRY, documents=[waiting, infected])
    assert caught.value.violations == {
        "document_ids[0]": "still being scanned; try again shortly",
        "document_ids[1]": "refused by the malware scan",
    }


async def test_a_bad_document_is_reported_at_the_position_it_was_sent(intake: Intake) -> None:
    own, again = intake.documents.upload(FATHER), intake.documents.upload(FATHER)
    theirs = intake.documents.upload(STRANGER)
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=INQUIRY, documents=[own, again, theirs])
    assert set(caught.value.violations) == {"document_ids[2]"}
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=INQUIRY, documents=[own, own, theirs])
    assert caught.value.violations == {"document_ids[1]": "listed twice"}


# --- duplicates, caps and idempotency -----------------------------------------------------


async def test_a_second_open_request_for_the_same_person_and_sub_service_is_refused(
    intake: Intake,
) -> None:
    first = await intake.submit(subject=DAUGHTER, key="first")
    with pytest.raises(AlreadyExists) as caught:
        await intake.submit(subject=DAUGHTER, key="second")
    assert caught.value.existing == first.number
    assert first.number in str(caught.value)
    assert list(intake.db.requests) == [first.id]
    # Another person, or another sub-service, is no duplicate.
    await intake.submit(subject="1023456781", key="third")
    await intake.submit(code=INQUIRY, subject=DAUGHTER, key="fourth")
    assert len(intake.db.requests) == 3


@pytest.mark.parametrize("how", ["cancelled", "rejected", "processed"])
async def test_the_same_request_may_be_filed_again_once_the_first_is_closed(
    intake: Intake, how: str
) -> None:
    first = await intake.submit(subject=DAUGHTER, key="first")
    if how == "cancelled":
        await handlers.cancel_request(
            uow=intake.uow, caller=FATHER, number=first.number, reason="filed twice", now=NOW
        )
    else:
        await intake.decide(first, Status(how))
    again = await intake.submit(subject=DAUGHTER, key="second")
    assert again.number != first.number
    assert intake.db.row(again.number).is_open
    assert not intake.db.row(first.number).is_open


async def test_an_accepted_request_still_blocks_a_duplicate_only_while_open(intake: Intake) -> None:
    """Accepted is neither open nor final: a new request for the same thing is possible."""
    first = await intake.submit(key="first")
    await intake.decide(first, Status.ACCEPTED)
    assert (await intake.submit(key="second")).number != first.number


async def test_an_account_has_at_most_ten_open_requests(intake: Intake) -> None:
    citizen, other = FATHER, Principal(synthetic_citizens(1)[0], Role.CITIZEN)
    codes = [
        code
        for code, s in CATALOG.sub_services.items()
        if Role.CITIZEN in s.filers and not s.subject_nationalities and code != INQUIRY
    ]
    most = MAX_OPEN_PER_ACCOUNT[Role.CITIZEN]
    assert len(codes) >= most
    filed = [
        await intake.submit(citizen, code=code, key=code, subject=fathers_subject(code))
        for code in codes[:most]
    ]
    assert len(filed) == most == 10
    extra = INQUIRY
    with pytest.raises(ResourceExhausted) as caught:
        await intake.submit(citizen, code=extra, key=extra)
    said = caught.value.args[0]
    assert (said, said.ar) == (
        "at most 10 open requests per account; follow up on or cancel one first",
        "10 طلبات مفتوحة على الأكثر لكل حساب؛ تابع أحدها أو ألغه أولًا",
    )
    assert len(intake.db.requests) == most
    # The cap is per account.
    await intake.submit(other, code=extra, key=extra)
    # A closed request no longer counts.
    await intake.decide(filed[0], Status.REJECTED)
    assert (await intake.submit(citizen, code=extra, key=extra)).sub_service_code == extra


async def test_the_cap_counts_requests_filed_for_others_too(intake: Intake) -> None:
    subjects = ["", DAUGHTER, "1023456781", VISITOR, HOUSEMAID]
    # Dependents' services are for the holder and his family only.
    other = {VISITOR: VISIT, HOUSEMAID: CANCEL_VISA}
    for subject in subjects:
        for code in (INQUIRY, other.get(subject, DEPENDENTS)):
            await intake.submit(code=code, subject=subject, key=f"{code}:{subject}")
    with pytest.raises(ResourceExhausted):
        await intake.submit(code=PASSPORT, key="eleventh")


async def test_an_appeal_reopens_its_rejection_at_the_cap(intake: Intake) -> None:
    """The cap holds back new requests, never the one chance to contest a decision."""
    codes = [
        code
        for code, s in CATALOG.sub_services.items()
        if Role.CITIZEN in s.filers and not s.subject_nationalities and code != INQUIRY
    ]
    most = MAX_OPEN_PER_ACCOUNT[Role.CITIZEN]
    filed = [await intake.submit(code=c, key=c, subject=fathers_subject(c)) for c in codes[:most]]
    await intake.decide(filed[0], Status.REJECTED)
    await intake.submit(code=INQUIRY, key=INQUIRY)
    with pytest.raises(ResourceExhausted):
        await intake.submit(code=codes[0], key="one-more", subject=fathers_subject(codes[0]))

    appealed = await handlers.appeal_rejection(
        uow=intake.uow,
        registry=intake.registry,
        caller=FATHER,
        calendar=CALENDAR,
        number=filed[0].number,
        reason="The reviewer misread the passport number",
        now=NOW + timedelta(hours=2),
    )
    assert (appealed.status, appealed.appealed) == (Status.UNDER_REVIEW, True)
    assert sum(r.is_open for r in intake.db.requests.values()) == most + 1


async def test_an_establishment_files_for_its_workforce_past_a_family_s_cap(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its CSV of a hundred rows is one morning's work; a cap of ten stopped it at the
    eleventh row."""
    codes = sorted(c for c, s in CATALOG.sub_services.items() if Role.ESTABLISHMENT in s.filers)
    assert len(codes) > MAX_OPEN_PER_ACCOUNT[Role.CITIZEN]
    filed = [await intake.submit(COMPANY, code=c, key=c, subject=WORKER) for c in codes]
    assert [r.status for r in filed] == [Status.SUBMITTED] * len(codes)
    # Its own cap, all the same.
    monkeypatch.setitem(MAX_OPEN_PER_ACCOUNT, Role.ESTABLISHMENT, len(codes))
    with pytest.raises(ResourceExhausted) as caught:
        await intake.submit(COMPANY, code=codes[0], key="one-more", subject="2000000006")
    # Past ten, Arabic counts in the singular.
    assert len(codes) == 11
    assert caught.value.args[0].ar.startswith("11 طلبًا مفتوحًا على الأكثر لكل حساب")


DEPENDENTS = "residents.dependents-services"
SPOUSE = {
    "request_type": "add_dependent",
    "dependent_name": "منى عادل فهمي",
    "dependent_date_of_birth": "1990-03-01",
    "relationship": "spouse",
}
NEWBORN = {
    "request_type": "add_dependent",
    "dependent_name": "Omar Adel Fahmy",
    "dependent_date_of_birth": "2024-11-20",
    "relationship": "son",
}


async def test_dependents_without_a_number_are_told_apart_by_name_and_birth(
    intake: Intake,
) -> None:
    """A newborn added while the spouse's request is open: both are filed under the holder's
    number, and they are two people, not one request twice."""
    spouse = await intake.submit(code=DEPENDENTS, key="spouse", fields=SPOUSE)
    newborn = await intake.submit(code=DEPENDENTS, key="newborn", fields=NEWBORN)
    assert spouse.subject_id == newborn.subject_id == FATHER.subject
    assert spouse.status == newborn.status == Status.SUBMITTED
    # Either typed again, other spacing, case, harakat or hamza, is the request still open.
    for key, fields, existing in (
        ("again", {**NEWBORN, "dependent_name": "  omar adel   FAHMY"}, newborn),
        ("again2", {**SPOUSE, "dependent_name": "مُنى عادِل فَهمى"}, spouse),
    ):
        with pytest.raises(AlreadyExists) as caught:
            await intake.submit(code=DEPENDENTS, key=key, fields=fields)
        assert caught.value.existing == existing.number
    # Born the same day with another name: another child.
    twin = await intake.submit(
        code=DEPENDENTS, key="twin", fields={**NEWBORN, "dependent_name": "Ali Adel Fahmy"}
    )
    assert twin.number not in (spouse.number, newborn.number)
    # A dependent with a number is that number's, as before.
    numbered = await intake.submit(code=DEPENDENTS, key="numbered", subject=DAUGHTER)
    assert (numbered.subject_id, numbered.person) == (DAUGHTER, "")
    with pytest.raises(AlreadyExists):
        await intake.submit(code=DEPENDENTS, key="numbered-again", subject=DAUGHTER)


async def test_the_holders_own_number_as_subject_is_the_same_as_none(intake: Intake) -> None:
    """An empty subject_id means the caller: a channel that sends the holder's own number
    instead files the same request, its unnumbered dependents told apart the same way."""
    mine = FATHER.subject
    spouse = await intake.submit(code=DEPENDENTS, key="spouse", subject=mine, fields=SPOUSE)
    newborn = await intake.submit(code=DEPENDENTS, key="newborn", subject=mine, fields=NEWBORN)
    assert spouse.number != newborn.number
    assert spouse.person == intake.form(code=DEPENDENTS, fields=SPOUSE).person != ""
    # The same dependent again, once with the number and once without: still the one open.
    with pytest.raises(AlreadyExists) as caught:
        await intake.submit(code=DEPENDENTS, key="spouse-again", fields=SPOUSE)
    assert caught.value.existing == spouse.number
    twin = {**NEWBORN, "dependent_name": "Ali Adel Fahmy"}
    first = await intake.submit(code=DEPENDENTS, key="twin", fields=twin)
    with pytest.raises(AlreadyExists) as caught:
        await intake.submit(code=DEPENDENTS, key="twin-again", subject=mine, fields=twin)
    assert caught.value.existing == first.number


async def test_a_retried_key_returns_the_first_request(intake: Intake) -> None:
    submission = intake.form(subject=DAUGHTER)
    filed = await intake.filed(submission)
    replayed = await intake.filed(submission, now=NOW + timedelta(seconds=30))
    # A channel tells "already filed" from "filed" by it, whatever the clocks say.
    assert (filed.replayed, replayed.replayed) == (False, True)
    first, again = filed.request, replayed.request
    assert (again.id, again.number) == (first.id, first.number)
    assert again.submitted_at == NOW
    assert len(intake.db.requests) == 1
    assert len(intake.db.published) == 1
    assert intake.numbers.drawn == [first.number]


async def test_a_different_request_under_a_used_key_is_refused(intake: Intake) -> None:
    first = await intake.submit(key="k")
    with pytest.raises(AlreadyExists) as caught:
        await intake.submit(key="k", code=INQUIRY)
    assert caught.value.existing == first.number
    assert "idempotency key" in str(caught.value)
    assert len(intake.db.requests) == 1


@pytest.mark.parametrize(
    "change", ["sub_service", "subject", "description", "fields", "documents", "mobile", "cites"]
)
async def test_any_change_of_body_under_a_used_key_is_refused(intake: Intake, change: str) -> None:
    document = intake.documents.upload(FATHER)
    first = await intake.submit(code=INQUIRY, documents=[document])
    fields = {"related_service": "Passport renewal"} if change == "fields" else None
    retry = intake.form(
        code=PASSPORT if change == "sub_service" else INQUIRY,
        subject=DAUGHTER if change == "subject" else "",
        fields=fields,
        documents=[] if change == "documents" else [document],
        description=DESCRIPTION + " (second)" if change == "description" else DESCRIPTION,
        mobile="0559876543" if change == "mobile" else MOBILE,
        cites=first.number if change == "cites" else "",
    )
    with pytest.raises(AlreadyExists) as caught:
        await intake.file(retry)
    assert caught.value.existing == first.number
    assert list(intake.db.requests) == [first.id]


async def test_the_same_submission_after_its_request_was_answered_is_still_a_retry(
    intake: Intake,
) -> None:
    """An answer grows the request's fields and documents; the establishment's file uploaded
    again that day (its rows' keys the same) still names the requests it filed."""
    submission = intake.form()
    first = await intake.file(submission)
    await intake.decide(first, Status.NEEDS_MORE_INFO)
    receipt = intake.documents.upload(FATHER)
    await answer(intake, first, fields={"passport_number": "A1234567"}, documents=[receipt])

    again = await intake.file(submission, now=NOW + timedelta(days=1))
    assert (again.id, again.number, again.status) == (
        first.id,
        first.number,
        Status.RETURNED_BY_APPLICANT,
    )
    assert list(intake.db.requests) == [first.id]


@pytest.mark.parametrize("digest", ["kept", "stored before"])
async def test_a_retry_sent_in_the_other_language_is_still_the_retry(
    intake: Intake, digest: str
) -> None:
    """The page switched language after its answer was lost: it sends the retry in the new
    one, and the beneficiary sees the request, not "a different request"."""
    submission = intake.form()
    first = await intake.file(submission)
    if digest == "stored before":
        intake.db.requests[first.id].submitted_digest = ""
    english = replace(submission, contact=replace(submission.contact, locale=Locale.EN))
    again = await intake.file(english)
    assert (again.number, again.contact.locale) == (first.number, Locale.AR)


async def test_a_request_stored_before_its_digest_is_compared_as_it_is(intake: Intake) -> None:
    submission = intake.form()
    first = await intake.file(submission)
    intake.db.requests[first.id].submitted_digest = ""

    assert (await intake.file(submission)).number == first.number
    with pytest.raises(AlreadyExists):
        await intake.file(replace(submission, description=DESCRIPTION + " (second)"))


async def test_an_answer_to_a_sub_service_the_catalog_dropped_is_refused_plainly(
    intake: Intake,
) -> None:
    request = await intake.submit()
    newer = replace(
        CATALOG,
        version=CATALOG.version + 1,
        sub_services={c: s for c, s in CATALOG.sub_services.items() if c != PASSPORT},
    )
    with pytest.raises(FailedPrecondition) as caught:
        await handlers.respond_to_info_request(
            uow=intake.uow,
            documents=intake.documents,
            registry=intake.registry,
            catalog=newer,
            caller=FATHER,
            token=token(FATHER),
            number=request.number,
            message="Here it is",
            fields={},
            document_ids=[],
            now=NOW + timedelta(days=1),
        )
    assert "no longer offered" in str(caught.value)
    assert intake.db.requests[request.id].status is Status.SUBMITTED


async def answer(
    intake: Intake,
    request: Request,
    *,
    message: str = "Attached the receipts",
    fields: Mapping[str, str] | None = None,
    documents: Iterable[uuid.UUID] = (),
) -> Request:
    return await handlers.respond_to_info_request(
        uow=intake.uow,
        documents=intake.documents,
        registry=intake.registry,
        catalog=CATALOG,
        caller=FATHER,
        token=token(FATHER),
        number=request.number,
        message=message,
        fields=fields or {},
        document_ids=[str(d) for d in documents],
        now=NOW + timedelta(days=1),
    )


async def test_an_answer_sent_again_after_its_reply_was_lost_gets_the_request_as_it_is(
    intake: Intake,
) -> None:
    """A channel that lost the reply (a timeout, a dropped connection) sends the same answer
    again: it was taken, so the beneficiary sees the request, not "no information was
    requested"; nothing is answered twice."""
    request = await intake.submit()
    await intake.decide(request, Status.NEEDS_MORE_INFO)
    receipts = [intake.documents.upload(FATHER) for _ in range(2)]
    fields = {"passport_number": "a1234567", "problem": "photo_not_shown"}
    first = await answer(intake, request, fields=fields, documents=receipts)
    commits = intake.db.commits

    again = await answer(intake, request, fields=fields, documents=receipts)

    assert again.status is Status.RETURNED_BY_APPLICANT
    assert (again.fields, again.document_ids, again.history) == (
        first.fields,
        first.document_ids,
        first.history,
    )
    assert intake.db.commits == commits
    answered = [e for e in intake.db.published if isinstance(e, RequestAnswered)]
    assert [e.document_ids for e in answered] == [tuple(receipts)]
    # Also once the reviewer has taken the request up again: the request as it is now.
    await intake.decide(request, Status.UNDER_REVIEW, at=NOW + timedelta(days=1))
    later = await answer(intake, request, fields=fields, documents=receipts)
    assert later.status is Status.UNDER_REVIEW


async def test_an_answer_sent_again_needs_no_docs_service(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = await intake.submit()
    await intake.decide(request, Status.NEEDS_MORE_INFO)
    receipt = intake.documents.upload(FATHER)
    first = await answer(intake, request, documents=[receipt])

    async def down(document_ids: tuple[uuid.UUID, ...], token: str, *, hold: bool) -> None:
        raise Unavailable("docs cannot answer")

    monkeypatch.setattr(intake.documents, "describe", down)
    again = await answer(intake, request, documents=[receipt])
    assert (again.status, again.document_ids) == (first.status, first.document_ids)


async def test_a_submission_sent_again_while_docs_is_down_is_answered_as_replayed(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    submission = intake.form(subject=DAUGHTER)
    first = await intake.file(submission)

    async def down(document_ids: tuple[uuid.UUID, ...], token: str, *, hold: bool) -> None:
        raise Unavailable("docs cannot answer")

    monkeypatch.setattr(intake.documents, "describe", down)
    again = await intake.filed(submission)
    assert (again.request.number, again.replayed) == (first.number, True)


async def test_the_same_answer_sent_twice_at_once_is_taken_once(intake: Intake) -> None:
    """The retry read the request still waiting, then the first call took the answer while
    the retry's documents were being checked."""
    request = await intake.submit()
    await intake.decide(request, Status.NEEDS_MORE_INFO)
    receipt = intake.documents.upload(FATHER)
    describe = intake.documents.describe
    first: list[Request] = []

    async def first_call_lands_meanwhile(
        document_ids: tuple[uuid.UUID, ...], token: str, *, hold: bool
    ) -> dict[uuid.UUID, DocumentInfo]:
        if not first:
            intake.documents.describe = describe  # type: ignore[method-assign]
            first.append(await answer(intake, request, documents=[receipt]))
        return await describe(document_ids, token, hold=hold)

    intake.documents.describe = first_call_lands_meanwhile  # type: ignore[method-assign]
    retry = await answer(intake, request, documents=[receipt])
    assert retry.document_ids == first[0].document_ids == (*request.document_ids, receipt)
    assert len([e for e in intake.db.published if isinstance(e, RequestAnswered)]) == 1


FIELDS = {"passport_number": "A1234567", "problem": "photo_not_shown"}


@pytest.mark.parametrize(
    ("message", "fields", "documents"),
    [
        ("Attached, see also", FIELDS, slice(None)),
        ("Attached", {**FIELDS, "passport_number": "A7654321"}, slice(None)),
        ("Attached", {"passport_number": "A1234567"}, slice(None)),
        ("Attached", FIELDS, slice(1, None)),
        ("Attached", FIELDS, slice(0)),
    ],
    ids=["message", "a field's value", "fewer fields", "fewer documents", "no documents"],
)
async def test_a_different_answer_to_a_request_answered_already_is_refused(
    intake: Intake, message: str, fields: dict[str, str], documents: slice
) -> None:
    request = await intake.submit()
    await intake.decide(request, Status.NEEDS_MORE_INFO)
    receipts = [intake.documents.upload(FATHER) for _ in range(2)]
    await answer(intake, request, message="Attached", fields=FIELDS, documents=receipts)
    with pytest.raises(FailedPrecondition) as caught:
        await answer(intake, request, message=message, fields=fields, documents=receipts[documents])
    assert "no information was requested" in str(caught.value)
    assert len([e for e in intake.db.published if isinstance(e, RequestAnswered)]) == 1


async def test_a_taken_number_is_drawn_again(intake: Intake) -> None:
    taken = await intake.submit(STRANGER, code=INQUIRY)
    intake.numbers.forced = [taken.number]
    request = await intake.submit()
    assert intake.numbers.drawn[-2:] == [taken.number, request.number]
    assert request.number != taken.number
    assert intake.db.row(request.number).applicant_id == FATHER.subject
    assert intake.db.row(taken.number).applicant_id == STRANGER.subject
    assert [e.request.number for e in intake.submitted()] == [taken.number, request.number]


async def test_a_concurrent_duplicate_is_reported_as_already_existing(intake: Intake) -> None:
    racer = Request.submit(
        intake.form(DAUGHTER_ACCOUNT, key="her-own"),
        id=uuid.uuid4(),
        number="TW000000000",
        sub_service=CATALOG.sub_services[PASSPORT],
        catalog_version=CATALOG.version,
        calendar=CALENDAR,
        now=NOW,
    )
    intake.db.racing.append(racer)
    with pytest.raises(AlreadyExists) as caught:
        await intake.submit(subject=DAUGHTER, fields={**FORMS[PASSPORT], "national_id": DAUGHTER})
    # The racer is another account's request: its number is not this caller's to learn.
    assert caught.value.existing == ""
    assert "another account" in str(caught.value)
    assert list(intake.db.requests) == [racer.id]


async def test_a_concurrent_retry_returns_the_request_that_won(intake: Intake) -> None:
    submission = intake.form(subject=DAUGHTER)
    winner = Request.submit(
        submission,
        id=uuid.uuid4(),
        number="TW000000000",
        sub_service=CATALOG.sub_services[PASSPORT],
        catalog_version=CATALOG.version,
        calendar=CALENDAR,
        now=NOW,
    )
    intake.db.racing.append(winner)
    filed = await intake.filed(submission)
    assert filed.replayed
    request = filed.request
    assert (request.id, request.number) == (winner.id, winner.number)
    assert list(intake.db.requests) == [winner.id]
    assert intake.db.published == []


# --- citing a rejected request ----------------------------------------------------------


async def test_citing_a_rejected_request_links_both_ways(intake: Intake) -> None:
    old = await intake.submit(key="old")
    await intake.decide(old, Status.REJECTED)
    new = await intake.submit(key="new", cites=old.number)
    assert intake.db.row(new.number).cites_number == old.number
    assert intake.db.row(old.number).cited_by == [new.number]
    assert intake.db.row(old.number).status is Status.REJECTED


async def test_a_citation_survives_a_number_clash(intake: Intake) -> None:
    old = await intake.submit(key="old")
    await intake.decide(old, Status.REJECTED)
    intake.numbers.forced = [old.number]
    new = await intake.submit(key="new", cites=old.number)
    assert new.number != old.number
    assert intake.db.row(old.number).cited_by == [new.number]


@pytest.mark.parametrize("typed", ["tw {} {} {}", "TW-{}-{}-{}", "{}{}{}"])
async def test_a_citation_is_stored_under_the_canonical_number(intake: Intake, typed: str) -> None:
    old = await intake.submit(key="old")
    await intake.decide(old, Status.REJECTED)
    digits = old.number[2:]
    cites = typed.format(digits[:4], digits[4:8], digits[8:])
    new = await intake.submit(key="new", cites=cites)
    assert intake.db.row(old.number).cited_by == [new.number]
    assert intake.db.row(new.number).cites_number == old.number


@pytest.mark.parametrize("status", [None, Status.UNDER_REVIEW, Status.ACCEPTED, Status.CANCELLED])
async def test_only_a_rejected_request_can_be_cited(intake: Intake, status: Status | None) -> None:
    old = await intake.submit(key="old")
    if status is not None:
        await intake.decide(old, status)
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=INQUIRY, key="new", cites=old.number)
    assert set(caught.value.violations) == {"cites_request_number"}
    assert intake.db.row(old.number).cited_by == []
    assert len(intake.db.requests) == 1


@pytest.mark.parametrize("cites", ["TW000000000", "TW12345678", "nonsense"])
async def test_citing_an_unknown_number_is_refused(intake: Intake, cites: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(cites=cites)
    assert set(caught.value.violations) == {"cites_request_number"}


async def test_another_accounts_rejected_request_cannot_be_cited(intake: Intake) -> None:
    theirs = await intake.submit(STRANGER, code=INQUIRY)
    await intake.decide(theirs, Status.REJECTED)
    with pytest.raises(InvalidArgument) as caught:
        await intake.submit(code=INQUIRY, cites=theirs.number)
    assert caught.value.violations == {
        "cites_request_number": "not a rejected request of this account"
    }
    assert intake.db.row(theirs.number).cited_by == []


# --- the promised date --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "due"),
    [
        pytest.param(PASSPORT, riyadh(11, 10), id="5-working-days"),
        pytest.param(NAME, riyadh(13, 10), id="7-working-days"),
        pytest.param(CANCEL_VISA, riyadh(7, 10), id="3-working-days"),
    ],
)
async def test_the_submitted_event_carries_the_expected_completion(
    intake: Intake, code: str, due: datetime
) -> None:
    await intake.submit(code=code, subject=fathers_subject(code))  # Sunday 2026-01-04 10:00
    (event,) = intake.submitted()
    assert event.expected_completion == due


async def test_the_expected_completion_is_in_riyadh_time_whatever_the_input_zone(
    intake: Intake,
) -> None:
    await intake.submit(now=datetime(2026, 1, 4, 7, 0, tzinfo=UTC))  # 10:00 in Riyadh
    (event,) = intake.submitted()
    assert event.expected_completion == riyadh(11, 10)


# --- reading, following up and cancelling ----------------------------------------------


async def test_get_request_finds_the_accounts_own_request(intake: Intake) -> None:
    request = await intake.submit()
    digits = request.number[2:]
    for typed in (request.number, request.number.lower(), f"TW {digits[:4]} {digits[4:]}"):
        found = await handlers.get_request(uow=intake.uow, caller=FATHER, number=typed)
        assert found.id == request.id


@pytest.mark.parametrize("caller", [STRANGER, DAUGHTER_ACCOUNT, COMPANY])
async def test_another_accounts_request_is_not_found(intake: Intake, caller: Principal) -> None:
    request = await intake.submit(subject=DAUGHTER)
    with pytest.raises(NotFound) as caught:
        await handlers.get_request(uow=intake.uow, caller=caller, number=request.number)
    assert request.number not in str(caught.value)


@pytest.mark.parametrize("number", ["", "TW000000000", "TW12345678", "x" * 10_000])
async def test_an_unknown_number_is_not_found(intake: Intake, number: str) -> None:
    await intake.submit()
    with pytest.raises(NotFound):
        await handlers.get_request(uow=intake.uow, caller=FATHER, number=number)


async def test_list_my_requests_pages_newest_first(intake: Intake) -> None:
    first = await intake.submit(code=INQUIRY, key="1", now=riyadh(4, 10))
    second = await intake.submit(code=PASSPORT, key="2", now=riyadh(5, 10))
    third = await intake.submit(code=CANCEL_VISA, subject=HOUSEMAID, key="3", now=riyadh(6, 10))
    await intake.submit(STRANGER, code=INQUIRY, key="1", now=riyadh(7, 10))

    async def page(after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[str]:
        found = await handlers.list_my_requests(
            uow=intake.uow, caller=FATHER, after=after, limit=limit
        )
        return [r.number for r in found]

    assert await page(None, 10) == [third.number, second.number, first.number]
    assert await page(None, 2) == [third.number, second.number]
    assert await page((second.submitted_at, second.id), 2) == [first.number]
    assert await page((third.submitted_at, third.id), 1) == [second.number]
    assert await page((first.submitted_at, first.id), 5) == []
    assert await page(None, 0) == []


async def test_follow_up_after_three_working_days(intake: Intake) -> None:
    request = await intake.submit()
    with pytest.raises(FailedPrecondition) as caught:
        await handlers.follow_up(
            uow=intake.uow,
            registry=intake.registry,
            caller=FATHER,
            calendar=CALENDAR,
            number=request.number,
            message="Any news?",
            now=riyadh(6, 14),
        )
    assert "7 January 2026" in str(caught.value)
    assert "٢٠٢٦" in caught.value.args[0].ar
    assert intake.db.row(request.number).follow_up_count == 0

    done = await handlers.follow_up(
        uow=intake.uow,
        registry=intake.registry,
        caller=FATHER,
        calendar=CALENDAR,
        number=request.number,
        message="Any news?",
        now=riyadh(7, 10),
    )
    assert done.follow_up_count == 1
    stored = intake.db.row(request.number)
    assert (stored.follow_up_count, stored.last_follow_up_at) == (1, riyadh(7, 10))
    event = intake.db.published[-1]
    assert isinstance(event, RequestFollowedUp)
    assert (event.request.number, event.message) == (request.number, "Any news?")

    with pytest.raises(FailedPrecondition, match="8 January 2026"):
        await handlers.follow_up(
            uow=intake.uow,
            registry=intake.registry,
            caller=FATHER,
            calendar=CALENDAR,
            number=request.number,
            message="Again?",
            now=riyadh(7, 14),
        )
    assert intake.db.row(request.number).follow_up_count == 1
    assert len(intake.db.published) == 2


async def test_no_follow_up_on_a_closed_request_or_anothers(intake: Intake) -> None:
    request = await intake.submit()
    with pytest.raises(NotFound):
        await handlers.follow_up(
            uow=intake.uow,
            registry=intake.registry,
            caller=STRANGER,
            calendar=CALENDAR,
            number=request.number,
            message="?",
            now=riyadh(20, 10),
        )
    await intake.decide(request, Status.REJECTED)
    with pytest.raises(FailedPrecondition, match='is "Rejected"'):
        await handlers.follow_up(
            uow=intake.uow,
            registry=intake.registry,
            caller=FATHER,
            calendar=CALENDAR,
            number=request.number,
            message="?",
            now=riyadh(20, 10),
        )
    assert intake.db.row(request.number).follow_up_count == 0


async def test_cancel_an_open_request(intake: Intake) -> None:
    request = await intake.submit()
    await intake.decide(request, Status.NEEDS_MORE_INFO)
    cancelled = await handlers.cancel_request(
        uow=intake.uow, caller=FATHER, number=request.number, reason="Solved", now=riyadh(5, 9)
    )
    assert cancelled.status is Status.CANCELLED
    stored = intake.db.row(request.number)
    assert stored.status is Status.CANCELLED
    assert stored.history[-1] == HistoryEntry(
        Status.CANCELLED, riyadh(5, 9), "Solved", by_beneficiary=True
    )
    event = intake.db.published[-1]
    assert isinstance(event, RequestCancelled)
    assert (event.request.number, event.reason, event.off_record) == (
        request.number,
        "Solved",
        False,
    )


async def test_an_accepted_request_cannot_be_cancelled(intake: Intake) -> None:
    request = await intake.submit()
    await intake.decide(request, Status.ACCEPTED)
    published = len(intake.db.published)
    with pytest.raises(FailedPrecondition):
        await handlers.cancel_request(
            uow=intake.uow, caller=FATHER, number=request.number, reason="x", now=riyadh(5, 9)
        )
    assert intake.db.row(request.number).status is Status.ACCEPTED
    assert len(intake.db.published) == published


async def test_another_account_cannot_cancel(intake: Intake) -> None:
    request = await intake.submit(subject=DAUGHTER)
    with pytest.raises(NotFound):
        await handlers.cancel_request(
            uow=intake.uow,
            caller=DAUGHTER_ACCOUNT,
            number=request.number,
            reason="x",
            now=riyadh(5, 9),
        )
    assert intake.db.row(request.number).status is Status.SUBMITTED


async def test_a_request_is_read_for_update_only_to_be_changed(intake: Intake) -> None:
    request = await intake.submit()
    await intake.decide(request, Status.NEEDS_MORE_INFO)
    await handlers.get_request(uow=intake.uow, caller=FATHER, number=request.number)
    await handlers.cancel_request(
        uow=intake.uow, caller=FATHER, number=request.number, reason="Solved", now=riyadh(5, 9)
    )
    # The status change and the cancellation; not the look in between.
    assert intake.db.held == [request.number, request.number]


# --- a person who left the account's record ------------------------------------------------

NEW_SPONSOR = Principal("7000000013", Role.ESTABLISHMENT)


def off_record(intake: Intake, holder: Principal, person: str) -> None:
    """The registry no longer has `person` on `holder`'s record (a transfer of services, a
    dependent who left the family record)."""
    relations = {k: v for k, v in REGISTRY.relations.items() if k != (holder.subject, person)}
    intake.registry = replace(REGISTRY, relations=relations)


async def act(intake: Intake, action: str, caller: Principal, request: Request) -> Request:
    """The beneficiary's action on a request waiting for it: an appeal, an answer, a follow-up."""
    if action == "appeal":
        return await handlers.appeal_rejection(
            uow=intake.uow,
            registry=intake.registry,
            caller=caller,
            calendar=CALENDAR,
            number=request.number,
            reason="The reviewer misread the iqama number",
            now=riyadh(5, 10),
        )
    if action == "answer":
        return await handlers.respond_to_info_request(
            uow=intake.uow,
            documents=intake.documents,
            registry=intake.registry,
            catalog=CATALOG,
            caller=caller,
            token=token(caller),
            number=request.number,
            message="Here is the passport",
            fields={},
            document_ids=[str(intake.documents.upload(caller))],
            now=riyadh(5, 10),
        )
    return await handlers.follow_up(
        uow=intake.uow,
        registry=intake.registry,
        caller=caller,
        calendar=CALENDAR,
        number=request.number,
        message="Any news?",
        now=riyadh(20, 10),
    )


WAITS_FOR = {"appeal": Status.REJECTED, "answer": Status.NEEDS_MORE_INFO, "follow_up": None}


@pytest.mark.parametrize("action", sorted(WAITS_FOR))
@pytest.mark.parametrize(
    ("holder", "person"),
    [
        pytest.param(COMPANY, WORKER, id="worker-transferred"),
        pytest.param(FATHER, DAUGHTER, id="dependent-left"),
    ],
)
async def test_an_account_no_longer_acts_for_a_person_off_its_record(
    intake: Intake, action: str, holder: Principal, person: str
) -> None:
    """Appealing, answering or following up speaks for the person: the account that filed
    may do it only while the registry still has them on its record (SPEC §2)."""
    request = await intake.submit(holder, code=INQUIRY, subject=person)
    if waits := WAITS_FOR[action]:
        await intake.decide(request, waits)
    off_record(intake, holder, person)
    before = copy.deepcopy(intake.db.row(request.number))
    published, described = len(intake.db.published), len(intake.documents.calls)
    with pytest.raises(NotFound):  # another account learns nothing of the request
        await act(intake, action, STRANGER, request)
    with pytest.raises(PermissionDenied) as caught:
        await act(intake, action, holder, request)
    said = caught.value.args[0]
    assert (said, said.ar) == (
        "the person this request is about is no longer on this account's record (a dependent,"
        " hosted visitor or sponsored worker); the request can now only be viewed or cancelled",
        "لم يعد الشخص الذي يخصه هذا الطلب مسجلًا على هذا الحساب (تابعًا أو زائرًا مستضافًا أو"
        " عاملًا مكفولًا)؛ لا يمكن الآن إلا عرض الطلب أو إلغاؤه",
    )
    assert intake.db.row(request.number) == before
    assert len(intake.db.published) == published
    # An answer is refused before its documents are read.
    assert len(intake.documents.calls) == described
    # On the record again, the same action is taken.
    intake.registry = REGISTRY
    assert (await act(intake, action, holder, request)).number == request.number
    assert len(intake.db.published) == published + 1


async def test_a_former_sponsor_still_sees_its_request_until_the_new_sponsor_files(
    intake: Intake,
) -> None:
    """The new sponsor filing the same sub-service has the office cancel the former sponsor's
    request about the worker, which it could only view or cancel by then, and is filed."""
    request = await intake.submit(COMPANY, code=INQUIRY, subject=WORKER)
    relations = {k: v for k, v in REGISTRY.relations.items() if k != (COMPANY.subject, WORKER)}
    intake.registry = replace(
        REGISTRY,
        relations={**relations, (NEW_SPONSOR.subject, WORKER): Relation.SPONSORED_WORKER},
    )
    seen = await handlers.get_request(uow=intake.uow, caller=COMPANY, number=request.number)
    assert seen.status is Status.SUBMITTED
    listed = await handlers.list_my_requests(uow=intake.uow, caller=COMPANY, after=None, limit=5)
    assert [r.number for r in listed] == [request.number]
    filed = await intake.submit(NEW_SPONSOR, code=INQUIRY, subject=WORKER, key="new", now=NOW)
    assert (filed.applicant_id, filed.subject_id) == (NEW_SPONSOR.subject, WORKER)
    old = intake.db.row(request.number)
    assert old.status is Status.CANCELLED
    # The office's words, shown in tracking without login too.
    assert old.history[-1] == HistoryEntry(Status.CANCELLED, NOW, OFF_RECORD)
    assert request.number in intake.db.held
    assert [
        (type(e).__name__, e.request.number, getattr(e, "reason", ""), getattr(e, "off_record", ""))
        for e in intake.db.published[1:]
    ] == [
        ("RequestCancelled", request.number, OFF_RECORD, True),
        ("RequestSubmitted", filed.number, "", ""),
    ]
    with pytest.raises(FailedPrecondition):
        await handlers.cancel_request(
            uow=intake.uow,
            caller=COMPANY,
            number=request.number,
            reason="He moved to another sponsor",
            now=riyadh(5, 9),
        )


# --- track_status --------------------------------------------------------------------------


async def test_a_status_change_is_applied_once_per_event(intake: Intake) -> None:
    request = await intake.submit()

    async def deliver(event_id: str, status: Status, at: datetime) -> None:
        await handlers.track_status(
            uow=intake.uow,
            event_id=event_id,
            request_id=request.id,
            status=status,
            message=status.value,
            at=at,
        )

    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    await deliver(first, Status.UNDER_REVIEW, riyadh(4, 11))
    await deliver(second, Status.NEEDS_MORE_INFO, riyadh(5, 10))
    await deliver(first, Status.UNDER_REVIEW, riyadh(4, 11))  # redelivered late
    stored = intake.db.row(request.number)
    assert stored.status is Status.NEEDS_MORE_INFO
    assert [h.status for h in stored.history] == [
        Status.SUBMITTED,
        Status.UNDER_REVIEW,
        Status.NEEDS_MORE_INFO,
    ]
    assert stored.clock.paused_since == riyadh(5, 10)
    assert intake.db.inbox == {(handlers.CONSUMER, first), (handlers.CONSUMER, second)}


async def test_a_transfer_names_the_department_the_request_went_to(intake: Intake) -> None:
    """The tracking view names the department that holds the request, not the one it was
    misfiled in."""
    request = await intake.submit()
    before = intake.db.row(request.number).department_code
    await handlers.track_status(
        uow=intake.uow,
        event_id=str(uuid.uuid4()),
        request_id=request.id,
        status=Status.TRANSFERRED,
        message="",
        at=riyadh(5, 10),
        transfer_to="visas",
    )
    stored = intake.db.row(request.number)
    assert before != "visas"
    assert (stored.status, stored.department_code) == (Status.TRANSFERRED, "visas")


async def test_a_transfer_that_crossed_the_cancellation_is_in_the_cancelled_requests_view(
    intake: Intake,
) -> None:
    """Review claimed and transferred the request before the cancellation reached it, which the
    beneficiary was told: the view keeps both steps, before the cancellation (review withdrew
    it after them), and names the department it was transferred to, as it would have had the
    transfer reached intake first."""
    request = await intake.submit()
    await handlers.cancel_request(
        uow=intake.uow, caller=FATHER, number=request.number, reason="Solved", now=riyadh(5, 9)
    )
    for sequence, status, at in (
        (1, Status.UNDER_REVIEW, riyadh(5, 8)),
        (2, Status.TRANSFERRED, riyadh(5, 9, 30)),
    ):
        await handlers.track_status(
            uow=intake.uow,
            event_id=str(uuid.uuid4()),
            request_id=request.id,
            status=status,
            message="",
            at=at,
            transfer_to="visas" if status is Status.TRANSFERRED else "",
            sequence=sequence,
        )
    stored = intake.db.row(request.number)
    assert (stored.status, stored.department_code) == (Status.CANCELLED, "visas")
    assert [(h.status, h.at) for h in stored.history] == [
        (Status.SUBMITTED, request.submitted_at),
        (Status.UNDER_REVIEW, riyadh(5, 8)),
        (Status.TRANSFERRED, riyadh(5, 9, 30)),
        (Status.CANCELLED, riyadh(5, 9)),
    ]


async def test_a_status_change_for_an_unknown_request_is_not_found(intake: Intake) -> None:
    event_id = str(uuid.uuid4())
    with pytest.raises(NotFound):
        await handlers.track_status(
            uow=intake.uow,
            event_id=event_id,
            request_id=uuid.uuid4(),
            status=Status.ACCEPTED,
            message="",
            at=NOW,
        )
    assert intake.db.inbox == set()  # rolled back: a redelivery is tried again


# --- tracking without login ---------------------------------------------------------------


def query(
    request: Request, *, id_number: str = "", number: str = "", mobile: str = MOBILE
) -> TrackingQuery:
    return TrackingQuery.typed(number or request.number, id_number or request.applicant_id, mobile)


async def start(
    intake: Intake,
    q: TrackingQuery,
    *,
    caller_key: str = "10.0.0.1",
    policy: TrackingPolicy = POLICY,
    now: datetime = NOW,
) -> None:
    await handlers.start_tracking(
        uow=intake.uow, sender=intake.sender, policy=policy, query=q, caller_key=caller_key, now=now
    )


async def track(
    intake: Intake,
    q: TrackingQuery,
    code: str,
    *,
    caller_key: str = "10.0.0.1",
    policy: TrackingPolicy = POLICY,
    now: datetime = NOW,
) -> Request:
    return await handlers.track_request(
        uow=intake.uow, policy=policy, query=q, code=code, caller_key=caller_key, now=now
    )


NO_MATCH = "no request matches these details and code"


@pytest.mark.parametrize("who", ["applicant", "subject"])
async def test_a_code_is_sent_when_number_id_and_mobile_match(intake: Intake, who: str) -> None:
    request = await intake.submit(subject=DAUGHTER)
    id_number = FATHER.subject if who == "applicant" else DAUGHTER
    await start(intake, query(request, id_number=id_number))
    (sent,) = intake.sender.sent
    assert sent.request.id == request.id
    assert sent.valid_minutes == 5
    assert len(sent.code) == 6
    assert sent.code.isascii()
    assert sent.code.isdigit()
    stored = intake.db.codes[request.id]
    assert stored == StoredCode(POLICY.digest(request.id, sent.code), NOW + timedelta(minutes=5), 0)
    assert sent.code not in (stored.code_hash, str(stored.expires_at), str(stored.attempts))


async def test_typed_forms_of_the_details_match(intake: Intake) -> None:
    request = await intake.submit()
    digits = request.number[2:]
    typed = TrackingQuery.typed(
        f" tw {digits[:4]}-{digits[4:]} ", f" {FATHER.subject} ", "+966 55 123 4567"
    )
    assert typed == TrackingQuery(request.number, FATHER.subject, E164)
    await start(intake, typed)
    assert len(intake.sender.sent) == 1


def test_details_typed_in_other_scripts_digits_are_refused_by_name() -> None:
    arabic = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    with pytest.raises(InvalidArgument) as caught:
        TrackingQuery.typed(
            "TW482913578".translate(arabic),
            FATHER.subject.translate(arabic),
            "0551234567".translate(arabic),
        )
    assert caught.value.violations == {
        "request_number": FOREIGN_DIGITS,
        "id_number": FOREIGN_DIGITS,
        "mobile": FOREIGN_DIGITS,
    }


@pytest.mark.parametrize("wrong", ["number", "other-request", "id", "a-strangers-id", "mobile"])
async def test_no_code_is_sent_when_anything_differs(intake: Intake, wrong: str) -> None:
    request = await intake.submit(subject=DAUGHTER)
    other = await intake.submit(STRANGER, code=INQUIRY, key="other")
    q = {
        "number": lambda: query(request, number="TW000000000"),
        "other-request": lambda: query(request, number=other.number),
        "id": lambda: query(request, id_number="1023456781"),
        "a-strangers-id": lambda: query(request, id_number=STRANGER.subject),
        "mobile": lambda: query(request, mobile="0559999999"),
    }[wrong]()
    await start(intake, q)
    assert intake.sender.sent == []
    assert intake.db.codes == {}


@pytest.mark.parametrize(
    ("number", "id_number", "mobile", "refused"),
    [
        ("TW-not-a-number", FATHER.subject, MOBILE, {"request_number"}),
        ("TW000000001", FATHER.subject, MOBILE, {"request_number"}),  # one digit mistyped
        ("TW000000000", "10000000O8", MOBILE, {"id_number"}),
        ("TW000000000", "1000000009", MOBILE, {"id_number"}),  # its check digit fails
        ("TW000000000", FATHER.subject, "call me", {"mobile"}),
        ("9" * 100_000, "1" * 100_000, "5" * 100_000, {"request_number", "id_number", "mobile"}),
    ],
)
def test_details_malformed_by_themselves_are_refused_at_their_field(
    number: str, id_number: str, mobile: str, refused: set[str]
) -> None:
    """Refused, not answered as a code sent that never comes: a check digit is public
    arithmetic, so this tells a guesser nothing about any request."""
    with pytest.raises(InvalidArgument) as caught:
        TrackingQuery.typed(number, id_number, mobile)
    assert set(caught.value.violations) == refused


async def test_the_right_code_shows_the_request_once(intake: Intake) -> None:
    request = await intake.submit(subject=DAUGHTER)
    q = query(request, id_number=DAUGHTER)
    await start(intake, q)
    code = intake.sender.sent[0].code
    found = await track(intake, q, code, now=NOW + timedelta(minutes=4))
    assert (found.id, found.number, found.status) == (request.id, request.number, Status.SUBMITTED)
    assert intake.db.codes == {}
    with pytest.raises(NotFound, match=NO_MATCH):
        await track(intake, q, code, now=NOW + timedelta(minutes=4))


async def test_a_code_typed_in_arabic_indic_digits_is_refused_uncounted(intake: Intake) -> None:
    request = await intake.submit()
    await start(intake, query(request))
    code = intake.sender.sent[0].code
    with pytest.raises(InvalidArgument) as caught:
        await track(
            intake, query(request), code.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
        )
    assert caught.value.violations == {"code": FOREIGN_DIGITS}
    # Refused before the code's attempts were counted: the right code still works.
    assert (await track(intake, query(request), f" {code} ")).id == request.id


async def test_a_new_code_replaces_the_old_one(intake: Intake) -> None:
    request = await intake.submit()
    await start(intake, query(request))
    await start(intake, query(request), now=NOW + timedelta(minutes=1))
    old, new = (s.code for s in intake.sender.sent)
    if old != new:
        with pytest.raises(NotFound):
            await track(intake, query(request), old)
    assert (await track(intake, query(request), new)).id == request.id


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


@pytest.mark.parametrize(
    "wrong",
    [
        "number",
        "other-request",
        "id",
        "mobile",
        "code",
        "expired",
        "too-many-attempts",
        "no-code-sent",
    ],
)
async def test_every_wrong_combination_is_the_same_not_found(intake: Intake, wrong: str) -> None:
    policy = replace(POLICY, per_request=100, per_caller=100, attempts_per_code=3)
    request = await intake.submit(subject=DAUGHTER)
    other = await intake.submit(STRANGER, code=INQUIRY, key="other")
    await start(intake, query(request), policy=policy)
    await start(intake, query(other, mobile=MOBILE), policy=policy)
    code = intake.sender.sent[0].code
    q, typed, now = query(request), code, NOW + timedelta(minutes=1)
    if wrong == "number":
        q = query(request, number="TW000000000")
    elif wrong == "other-request":
        q = query(request, number=other.number)
    elif wrong == "id":
        q = query(request, id_number="1023456781")
    elif wrong == "mobile":
        q = query(request, mobile="0559999999")
    elif wrong == "code":
        typed = wrong_code(code)
    elif wrong == "expired":
        now = NOW + timedelta(minutes=5)
    elif wrong == "too-many-attempts":
        for _ in range(policy.attempts_per_code):
            with pytest.raises(NotFound):
                await track(intake, q, wrong_code(code), policy=policy)
    elif wrong == "no-code-sent":
        q = query(await intake.submit(key="x", code=INQUIRY))
    with pytest.raises(NotFound) as caught:
        await track(intake, q, typed, policy=policy, now=now)
    assert str(caught.value) == NO_MATCH


async def test_a_wrong_code_leaves_the_right_one_usable_until_the_limit(intake: Intake) -> None:
    policy = replace(POLICY, per_request=100, attempts_per_code=3)
    request = await intake.submit()
    await start(intake, query(request), policy=policy)
    code = intake.sender.sent[0].code
    for _ in range(2):
        with pytest.raises(NotFound):
            await track(intake, query(request), wrong_code(code), policy=policy)
    assert intake.db.codes[request.id].attempts == 2
    assert (await track(intake, query(request), code, policy=policy)).id == request.id


async def test_tracking_attempts_are_limited_per_request_number(intake: Intake) -> None:
    policy = replace(POLICY, per_request=3, per_caller=100)
    request = await intake.submit()
    other = await intake.submit(code=INQUIRY, key="other")
    for n in range(3):
        await start(intake, query(request), caller_key=f"10.0.0.{n}", policy=policy)
    with pytest.raises(ResourceExhausted):
        await start(intake, query(request), caller_key="10.0.0.99", policy=policy)
    assert len(intake.sender.sent) == 3
    await start(intake, query(other), caller_key="10.0.0.99", policy=policy)  # another number
    # Checking codes has its own count, and it is kept even when every check fails.
    code = intake.sender.sent[2].code
    for n in range(3):
        with pytest.raises(NotFound):
            await track(intake, query(request), "000000", caller_key=f"10.1.0.{n}", policy=policy)
    with pytest.raises(ResourceExhausted):
        await track(intake, query(request), code, caller_key="10.1.0.99", policy=policy)
    # A new window starts afresh.
    later = NOW + policy.window
    await start(intake, query(request), caller_key="10.0.0.99", policy=policy, now=later)
    assert len(intake.sender.sent) == 5


WRONG_ID, WRONG_MOBILE = STRANGER.subject, "0559999999"  # not the request's people


async def test_wrong_details_do_not_spend_the_attempts_of_the_requests_people(
    intake: Intake,
) -> None:
    """The count was per request number alone: anyone who knew a number locked its people out
    of their codes and checks, every hour, with five attempts of details that match nothing."""
    request = await intake.submit()
    stranger = query(request, id_number=WRONG_ID, mobile=WRONG_MOBILE)
    for n in range(POLICY.per_request):
        await start(intake, stranger, caller_key=f"10.9.0.{n}")
    assert intake.sender.sent == []
    await start(intake, query(request), caller_key="10.0.0.1")
    (sent,) = intake.sender.sent
    for n in range(POLICY.per_request):
        with pytest.raises(NotFound):
            await track(intake, stranger, sent.code, caller_key=f"10.9.1.{n}")
    assert (await track(intake, query(request), sent.code, caller_key="10.0.0.1")).id == request.id


async def test_every_set_of_details_has_the_same_limit(intake: Intake) -> None:
    """Details that match nothing are refused after as many attempts as the right ones, so
    the refusal tells a guesser nothing; each set is counted on its own."""
    policy = replace(POLICY, per_request=2, per_caller=100)
    request = await intake.submit()
    mobile_only = query(request, mobile=WRONG_MOBILE)
    for q in (query(request), mobile_only, query(request, id_number=WRONG_ID)):
        for n in range(policy.per_request):
            await start(intake, q, caller_key=f"10.0.0.{n}", policy=policy)
        with pytest.raises(ResourceExhausted):
            await start(intake, q, caller_key="10.0.0.99", policy=policy)
    assert len(intake.sender.sent) == policy.per_request
    # Neither the details nor anything derived without the secret is kept in the counters.
    keys = "".join(intake.db.limits)
    for typed in (request.applicant_id, WRONG_ID, request.contact.mobile, mobile_only.mobile):
        assert typed not in keys
    assert policy.details_key(query(request)) != replace(
        policy, secret=b"another secret"
    ).details_key(query(request))


async def test_tracking_attempts_are_limited_per_caller(intake: Intake) -> None:
    policy = replace(POLICY, per_request=100, per_caller=2)
    requests = [await intake.submit(code=code, key=code) for code in (PASSPORT, INQUIRY, NAME)]
    await start(intake, query(requests[0]), policy=policy)
    await start(intake, query(requests[1]), policy=policy)
    with pytest.raises(ResourceExhausted, match="too many tracking attempts"):
        await start(intake, query(requests[2]), policy=policy)
    with pytest.raises(ResourceExhausted):  # even a non-matching query counts
        await start(intake, query(requests[2], mobile="0559999999"), policy=policy)
    await start(intake, query(requests[2]), caller_key="10.0.0.2", policy=policy)
    assert [s.request.id for s in intake.sender.sent] == [r.id for r in requests]


async def test_expired_codes_and_past_windows_are_forgotten(intake: Intake) -> None:
    """Every number and address ever tried kept its counter, and every code never used its
    row, for good: a guesser's random numbers grew the table without end."""
    first, second = await intake.submit(), await intake.submit(code=INQUIRY, key="other")
    await start(intake, query(first), caller_key="10.0.0.1")
    later = NOW + POLICY.window - timedelta(minutes=1)
    await start(intake, query(second), caller_key="10.0.0.2", now=later)
    assert (len(intake.db.codes), len(intake.db.limits)) == (2, 4)
    # The first code has expired and the first window has passed; the second's have not.
    more = await handlers.forget_tracking(uow=intake.uow, policy=POLICY, now=NOW + POLICY.window)
    assert more is False
    assert set(intake.db.codes) == {second.id}
    assert set(intake.db.limits) == {
        "start:caller:10.0.0.2",
        f"start:request:{second.number}:{POLICY.details_key(query(second))}",
    }
    # A full batch says there may be more.
    assert await handlers.forget_tracking(
        uow=intake.uow, policy=POLICY, now=later + POLICY.window, batch=1
    )


async def test_a_code_that_is_not_six_digits_is_refused_without_spending_an_attempt(
    intake: Intake,
) -> None:
    policy = replace(POLICY, per_request=100, per_caller=100, attempts_per_code=3)
    request = await intake.submit()
    await start(intake, query(request), policy=policy)
    code = intake.sender.sent[0].code
    for typed in ("", "12345", "abcdef", "974 311", "1234567", "1" * 100_000):
        with pytest.raises(InvalidArgument) as caught:
            await track(intake, query(request), typed, policy=policy)
        assert set(caught.value.violations) == {"code"}
    assert (await track(intake, query(request), code, policy=policy)).id == request.id
