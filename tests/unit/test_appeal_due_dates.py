"""An appeal's due date as intake tells it (RequestAppealed) and as review alerts on it: one
rule (tawasul_platform.appeals.appeal_clock), so the two are the same date."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from tawasul_calendar import RIYADH, WorkingCalendar
from tawasul_intake.domain.model import Contact, Request, RequestAppealed, Status, Submission
from tawasul_platform.catalog import load_catalog
from tawasul_platform.identity import Principal, Role
from tawasul_platform.workdays import shipped_config
from tawasul_review.adapters.reasons import load_reasons
from tawasul_review.domain.model import Contact as ReviewContact
from tawasul_review.domain.model import Decision, WorkItem

CATALOG = load_catalog()
CALENDAR = WorkingCalendar(config=shipped_config())
CODE = "passports.issue-renewal-problem"
ALI = Principal("E100", Role.REVIEWER, frozenset({"passports"}))


def riyadh(day: int, hour: int) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=RIYADH)


def intake_side(submitted: datetime, rejected: datetime, appealed: datetime) -> datetime | None:
    submission = Submission(
        applicant_id="1000000008",
        applicant_role=Role.CITIZEN,
        subject_id="1012345672",
        idempotency_key="key-1",
        sub_service_code=CODE,
        description="The photo does not appear when renewing passport A123 after payment",
        fields={"national_id": "1012345672"},
        document_ids=(),
        contact=Contact(mobile="+966551234567"),
    )
    request = Request.submit(
        submission,
        id=uuid.uuid4(),
        number="TW123456789",
        sub_service=CATALOG.sub_services[CODE],
        catalog_version=CATALOG.version,
        calendar=CALENDAR,
        now=submitted,
    )
    request.track(Status.REJECTED, "The photo is not clear", rejected)
    request.appeal(reason="The photo was taken at a studio", calendar=CALENDAR, now=appealed)
    (event,) = [e for e in request.events if isinstance(e, RequestAppealed)]
    return event.expected_completion


def review_side(submitted: datetime, rejected: datetime, appealed: datetime) -> datetime | None:
    item = WorkItem.enqueue(
        request_id=uuid.uuid4(),
        request_number="TW123456789",
        department="passports",
        queue="passports.default",
        sub_service_code=CODE,
        description="The photo does not appear when renewing passport A123 after payment",
        applicant_id="1000000008",
        document_ids=(),
        contact=ReviewContact("+966551234567", "", "ar"),
        now=submitted,
        submitted_at=submitted,
        sla=CATALOG.sub_services[CODE].sla,
    )
    item.schedule(CALENDAR, submitted)
    item.claim(ALI, rejected, timedelta(minutes=30))
    unclear = load_reasons()["documents-unclear"]
    item.decide(ALI, Decision.REJECT, "The photo is unclear", unclear, rejected, CALENDAR)
    assert item.appeal(reason="The photo was taken at a studio", now=appealed, calendar=CALENDAR)
    item.schedule(CALENDAR, appealed)
    return item.due_at


@pytest.mark.parametrize(
    ("rejected", "appealed"),
    [
        (riyadh(5, 10), riyadh(15, 10)),  # in time
        (riyadh(13, 10), riyadh(14, 10)),  # after the due date (Sunday 11th)
    ],
)
def test_intake_tells_the_due_date_review_alerts_on(rejected: datetime, appealed: datetime) -> None:
    told = intake_side(riyadh(4, 10), rejected, appealed)
    assert told is not None
    assert told > appealed
    assert told == review_side(riyadh(4, 10), rejected, appealed)
