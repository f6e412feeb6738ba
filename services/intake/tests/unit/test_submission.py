import uuid
from datetime import UTC, datetime

import pytest
from tawasul_intake.app import handlers
from tawasul_intake.app.ports import ConcurrentSubmission
from tawasul_intake.domain.identity import id_number_problem, luhn_valid, normalize_mobile
from tawasul_intake.domain.model import Request, RequestSubmitted, Status, validate_submission
from tawasul_platform.catalog import load_catalog
from tawasul_platform.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from tawasul_platform.identity import Principal, Role
from tawasul_platform.testing import FakeInbox, FakeTransaction

CITIZEN = Principal("1000000008", Role.CITIZEN)
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
DESCRIPTION = "The photo does not appear when renewing passport A123 after payment"


def submission(**overrides: object):  # type: ignore[no-untyped-def]
    fields: dict[str, object] = {
        "caller": CITIZEN,
        "catalog": load_catalog(),
        "idempotency_key": "key-1",
        "sub_service_code": "passports.issue-renewal-problem",
        "description": DESCRIPTION,
        "document_ids": [],
        "mobile": "0551234567",
        "email": "",
        "locale": "",
    }
    fields.update(overrides)
    return validate_submission(**fields)  # type: ignore[arg-type]


OWN_DOCUMENT = uuid.uuid4()
TOKEN = "citizen-token"


class FakeDocuments:
    """Docs as seen by the citizen: only their own uploads exist."""

    def __init__(self, uploaded: set[uuid.UUID]) -> None:
        self.uploaded = uploaded
        self.tokens: list[str] = []

    async def missing(self, document_ids: tuple[uuid.UUID, ...], token: str) -> set[uuid.UUID]:
        self.tokens.append(token)
        return set(document_ids) - self.uploaded


DOCS = FakeDocuments({OWN_DOCUMENT})


class FakeRepository:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Request] = {}
        self.sequence = 0

    async def add(self, request: Request) -> None:
        self.rows[request.id] = request

    async def get(self, request_id: uuid.UUID) -> Request | None:
        return self.rows.get(request_id)

    async def get_by_number(self, number: str) -> Request | None:
        return next((r for r in self.rows.values() if r.number == number), None)

    async def get_by_idempotency_key(self, applicant_id: str, key: str) -> Request | None:
        return next(
            (
                r
                for r in self.rows.values()
                if r.applicant_id == applicant_id and r.idempotency_key == key
            ),
            None,
        )

    async def next_number(self) -> str:
        self.sequence += 1
        return f"TW26{self.sequence:08d}"


class FakeUnitOfWork(FakeTransaction, FakeInbox):
    def __init__(self) -> None:
        super().__init__()
        self.requests = FakeRepository()
        self.published: list[RequestSubmitted] = []
        self.commits = 0

    async def commit(self) -> None:
        for request in self.requests.rows.values():
            self.published.extend(request.events)
            request.events.clear()
        self.commits += 1


def test_saudi_ids_carry_a_luhn_check_digit() -> None:
    assert luhn_valid("1000000008")
    assert id_number_problem("1000000007", first_digit="1") == "check digit does not match"
    assert id_number_problem("2000000006", first_digit="1") == "must start with 1"
    assert id_number_problem("12345", first_digit="1") == "must be 10 digits"


@pytest.mark.parametrize("raw", ["0551234567", "+966551234567", "00966551234567", "055 123 4567"])
def test_saudi_mobiles_in_any_usual_form(raw: str) -> None:
    assert normalize_mobile(raw) == "+966551234567"


@pytest.mark.parametrize("raw", ["0451234567", "+971551234567", "055123456", ""])
def test_other_numbers_are_not_saudi_mobiles(raw: str) -> None:
    assert normalize_mobile(raw) is None


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as caught:
        submission(
            idempotency_key=" ",
            sub_service_code="nope",
            description="site broken",
            document_ids=["not-a-uuid"],
            mobile="12",
            locale="fr",
        )
    assert set(caught.value.violations) == {
        "idempotency_key",
        "sub_service_code",
        "description",
        "document_ids[0]",
        "contact.mobile",
        "contact.locale",
    }


def test_a_resident_cannot_file_a_citizens_passport_request() -> None:
    with pytest.raises(InvalidArgument) as caught:
        submission(caller=Principal("2000000006", Role.RESIDENT))
    assert "sub_service_code" in caught.value.violations


def test_an_account_with_a_malformed_id_cannot_submit() -> None:
    with pytest.raises(InvalidArgument) as caught:
        submission(caller=Principal("1000000007", Role.CITIZEN))
    assert "applicant_id" in caught.value.violations


def test_employees_do_not_submit_requests() -> None:
    with pytest.raises(PermissionDenied):
        submission(caller=Principal("E1", Role.REVIEWER, frozenset({"passports"})))


async def test_submitting_stores_the_request_and_its_event() -> None:
    uow = FakeUnitOfWork()
    request = await handlers.submit_request(
        uow=uow, documents=DOCS, token=TOKEN, submission=submission(), now=NOW
    )
    assert request.number == "TW2600000001"
    assert request.status is Status.SUBMITTED
    assert request.contact.mobile == "+966551234567"
    assert [e.request for e in uow.published] == [request]


async def test_retrying_with_the_same_key_returns_the_same_request() -> None:
    uow = FakeUnitOfWork()
    first = await handlers.submit_request(
        uow=uow, documents=DOCS, token=TOKEN, submission=submission(), now=NOW
    )
    again = await handlers.submit_request(
        uow=uow, documents=DOCS, token=TOKEN, submission=submission(), now=NOW
    )
    assert again.id == first.id
    assert len(uow.published) == 1


async def test_a_reused_key_for_another_request_is_refused() -> None:
    uow = FakeUnitOfWork()
    first = await handlers.submit_request(
        uow=uow, documents=DOCS, token=TOKEN, submission=submission(), now=NOW
    )
    with pytest.raises(AlreadyExists) as caught:
        await handlers.submit_request(
            uow=uow,
            documents=DOCS,
            token=TOKEN,
            submission=submission(description=DESCRIPTION + " again"),
            now=NOW,
        )
    assert caught.value.existing == first.number


async def test_losing_a_race_on_the_key_returns_the_winner() -> None:
    uow = FakeUnitOfWork()
    winner = await handlers.submit_request(
        uow=uow, documents=DOCS, token=TOKEN, submission=submission(), now=NOW
    )

    class RacingUnitOfWork(FakeUnitOfWork):
        def __init__(self) -> None:
            super().__init__()
            self.lookups = 0

        async def commit(self) -> None:
            raise ConcurrentSubmission

    racing = RacingUnitOfWork()

    async def no_match_then_winner(applicant_id: str, key: str) -> Request | None:
        racing.lookups += 1
        return None if racing.lookups == 1 else winner

    racing.requests.get_by_idempotency_key = no_match_then_winner  # type: ignore[method-assign]
    assert (
        await handlers.submit_request(
            uow=racing, documents=DOCS, token=TOKEN, submission=submission(), now=NOW
        )
    ) is winner


async def test_only_the_applicant_sees_a_request() -> None:
    uow = FakeUnitOfWork()
    request = await handlers.submit_request(
        uow=uow, documents=DOCS, token=TOKEN, submission=submission(), now=NOW
    )
    assert await handlers.get_request(uow=uow, caller=CITIZEN, number=request.number.lower())
    with pytest.raises(NotFound):
        await handlers.get_request(
            uow=uow, caller=Principal("1000000016", Role.CITIZEN), number=request.number
        )


async def test_a_status_change_is_applied_once() -> None:
    uow = FakeUnitOfWork()
    request = await handlers.submit_request(
        uow=uow, documents=DOCS, token=TOKEN, submission=submission(), now=NOW
    )
    for _ in range(2):
        await handlers.track_status(
            uow=uow,
            event_id="e1",
            request_id=request.id,
            status=Status.ACCEPTED,
            message="done",
            at=NOW,
        )
    assert (request.status, request.decision_message) == (Status.ACCEPTED, "done")
    assert uow.commits == 2


async def test_only_the_accounts_own_documents_can_be_attached() -> None:
    uow, docs = FakeUnitOfWork(), FakeDocuments({OWN_DOCUMENT})
    foreign = uuid.uuid4()
    with pytest.raises(InvalidArgument) as caught:
        await handlers.submit_request(
            uow=uow,
            documents=docs,
            token=TOKEN,
            submission=submission(document_ids=[str(OWN_DOCUMENT), str(foreign)]),
            now=NOW,
        )
    assert caught.value.violations == {
        "document_ids[1]": "no such document uploaded by this account"
    }
    assert uow.published == []
    stored = await handlers.submit_request(
        uow=uow,
        documents=docs,
        token=TOKEN,
        submission=submission(document_ids=[str(OWN_DOCUMENT)]),
        now=NOW,
    )
    assert stored.document_ids == (OWN_DOCUMENT,)
    assert docs.tokens == [TOKEN, TOKEN]
