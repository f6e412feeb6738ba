"""Review's records of reviewers as other services read and apply them."""

from __future__ import annotations

import pytest
from tawasul.events.v1 import events_pb2
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.identity import Principal, Role, StaffRecord
from tawasul_platform.staff import on_reviewers_recorded, record_from
from tawasul_platform.testing import FakeStaffRecords, FakeTransaction, reviewer_recorded

TOKEN = frozenset({"passports", "visas", "residents"})


@pytest.mark.parametrize(
    ("departments", "scope", "left"),
    [
        # An administrator's record decides every department.
        ({"visas"}, None, {"visas"}),
        # A supervisor of passports decides passports only: the rest follow the token.
        ({"visas"}, {"passports"}, {"visas", "residents"}),
        ({"passports"}, {"passports"}, TOKEN),
        # A record of availability only decides nothing.
        (set(), set(), TOKEN),
        # A record never widens what identity grants.
        ({"reports"}, None, set()),
    ],
)
def test_a_record_narrows_the_token_within_its_scope(
    departments: set[str], scope: set[str] | None, left: set[str]
) -> None:
    frozen = None if scope is None else frozenset(scope)
    record = StaffRecord("E100", frozenset(departments), frozen, 1)
    caller = Principal("E100", Role.REVIEWER, TOKEN)
    assert caller.narrowed(record).departments == left
    assert caller.narrowed(None) == caller


def test_a_record_reads_back_as_published() -> None:
    for scope in (None, {"passports"}, set()):
        event = reviewer_recorded("E100", {"visas", "passports"}, scope, 7)
        frozen = None if scope is None else frozenset(scope)
        assert record_from(event) == StaffRecord(
            "E100", frozenset({"visas", "passports"}), frozen, 7
        )


def test_an_event_that_is_no_record_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        record_from(events_pb2.Envelope(event_type="tawasul.requests.submitted"))
    assert caught.value.violations == {
        "payload": "not a reviewer's record: tawasul.requests.submitted"
    }


class Work(FakeTransaction):
    def __init__(self) -> None:
        self.staff = FakeStaffRecords()
        self.commits = 0

    async def commit(self) -> None:
        self.commits += 1


async def test_a_poll_keeps_each_reviewers_latest_version_whatever_its_order() -> None:
    work = Work()
    handle = on_reviewers_recorded(lambda: work)
    await handle(
        [
            reviewer_recorded("E100", {"visas"}, None, 3),
            reviewer_recorded("E200", {"visas"}, None, 1),
            reviewer_recorded("E100", {"passports"}, None, 2),
        ]
    )
    await handle([reviewer_recorded("E200", {"passports"}, None, 1)])
    assert {r: (set(k.departments), k.version) for r, k in work.staff.records.items()} == {
        "E100": ({"visas"}, 3),
        "E200": ({"visas"}, 1),
    }
    assert work.commits == 2
