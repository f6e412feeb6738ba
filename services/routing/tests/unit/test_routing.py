import uuid
from datetime import UTC, datetime
from typing import Self

import pytest
from tawasul_platform.catalog import load_catalog
from tawasul_platform.errors import InvalidArgument, NotFound
from tawasul_platform.testing import FakeInbox, FakeTransaction
from tawasul_routing.app import handlers
from tawasul_routing.domain.model import Decision, IncomingRequest, RequestRouted

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def incoming(code: str = "visas.cancel-visa") -> IncomingRequest:
    return IncomingRequest(
        request_id=uuid.uuid4(),
        request_number="TW2600000001",
        sub_service_code=code,
        description="Cancel exit re-entry visa 123 issued by mistake",
        applicant_id="1000000008",
        document_ids=(),
        mobile="+966551234567",
        email="",
        locale="ar",
    )


class FakeUnitOfWork(FakeTransaction, FakeInbox):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[uuid.UUID, Decision] = {}
        self.published: list[RequestRouted] = []

    @property
    def decisions(self) -> Self:
        return self

    async def add(self, decision: Decision) -> None:
        self.rows[decision.request.request_id] = decision

    async def get(self, request_id: uuid.UUID) -> Decision | None:
        return self.rows.get(request_id)

    async def commit(self) -> None:
        for decision in self.rows.values():
            self.published.extend(decision.events)
            decision.events.clear()


@pytest.mark.parametrize(
    ("code", "department"),
    [
        ("visas.cancel-visa", "visas"),
        ("passports.lost-passport-report", "passports"),
        ("residents.visit-visa-extension", "residents"),
        ("reports.general-inquiry", "reports"),
    ],
)
async def test_the_catalog_decides_the_department_queue(code: str, department: str) -> None:
    uow = FakeUnitOfWork()
    request = incoming(code)
    await handlers.route_request(
        uow=uow, event_id="e1", request=request, catalog=load_catalog(), now=NOW
    )
    decision = await handlers.get_decision(uow=uow, request_id=request.request_id)
    assert (decision.department, decision.queue) == (department, f"{department}.default")
    assert decision.rule == f"catalog.v{load_catalog().version}:{code}"
    assert [e.decision for e in uow.published] == [decision]


async def test_a_redelivered_or_repeated_request_is_routed_once() -> None:
    uow = FakeUnitOfWork()
    request = incoming()
    for event_id in ("e1", "e1", "e2"):
        await handlers.route_request(
            uow=uow, event_id=event_id, request=request, catalog=load_catalog(), now=NOW
        )
    assert len(uow.published) == 1


async def test_an_unknown_sub_service_cannot_be_routed() -> None:
    with pytest.raises(InvalidArgument):
        await handlers.route_request(
            uow=FakeUnitOfWork(),
            event_id="e1",
            request=incoming("nope"),
            catalog=load_catalog(),
            now=NOW,
        )


async def test_an_unrouted_request_has_no_decision() -> None:
    with pytest.raises(NotFound):
        await handlers.get_decision(uow=FakeUnitOfWork(), request_id=uuid.uuid4())
