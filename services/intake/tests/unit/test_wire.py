"""What the request's page says is possible: GetRequest's and tracking's view of a request
(IntakeServicer.to_wire), from the entity alone."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from tawasul_calendar import RIYADH, WorkingCalendar
from tawasul_intake.domain.model import Contact, Request, Submission
from tawasul_intake.entrypoints.grpc import IntakeServicer
from tawasul_platform.catalog import load_catalog
from tawasul_platform.identity import Role

CATALOG = load_catalog()
CALENDAR = WorkingCalendar()
SUBMITTED = datetime(2026, 1, 4, 10, tzinfo=RIYADH)  # a Sunday
UNUSED = cast(Any, None)


def servicer(now: datetime = SUBMITTED) -> IntakeServicer:
    return IntakeServicer(
        uow=UNUSED,
        documents=UNUSED,
        registry=UNUSED,
        sender=UNUSED,
        catalog=CATALOG,
        calendar=CALENDAR,
        tracking=UNUSED,
        now=lambda: now,
        new_number=UNUSED,
    )


def inquiry() -> Request:
    return Request.submit(
        Submission(
            applicant_id="1000000008",
            applicant_role=Role.CITIZEN,
            subject_id="1000000008",
            idempotency_key="key-1",
            sub_service_code="reports.general-inquiry",
            description="My iqama renewal has been stalled with error 4411 for two weeks",
            fields={"related_service": "Iqama renewal"},
            document_ids=(),
            contact=Contact(mobile="+966551234567"),
        ),
        id=uuid.uuid4(),
        number="TW123456789",
        sub_service=CATALOG.sub_services["reports.general-inquiry"],
        catalog_version=CATALOG.version,
        calendar=CALENDAR,
        now=SUBMITTED,
    )


def test_a_finished_request_offers_no_follow_up_date() -> None:
    """FollowUp refuses one on a cancelled (or decided, or closed) request: its page must not
    say one is possible from a date, as it does while the request is open."""
    request = inquiry()
    wire = servicer()
    open_page = wire.to_wire(request)
    assert open_page.follow_up_from.gregorian_date == "2026-01-07"
    assert wire.to_tracking_wire(request).follow_up_from == open_page.follow_up_from

    request.cancel(reason="No longer needed", now=SUBMITTED)
    page = wire.to_wire(request)
    assert not page.HasField("follow_up_from")
    assert not page.HasField("expected_completion")
    assert not wire.to_tracking_wire(request).HasField("follow_up_from")


def test_a_request_the_office_is_late_on_promises_no_date_already_past() -> None:
    """Its three working days ran out on the 7th: a month on, the page must not say the answer
    is expected on a day gone by (notify's messages leave such a date out too)."""
    request = inquiry()
    on_time = servicer(SUBMITTED + timedelta(days=2)).to_wire(request)
    assert on_time.expected_completion.gregorian_date == "2026-01-07"

    late = servicer(SUBMITTED + timedelta(days=30))
    page = late.to_wire(request)
    assert not page.HasField("expected_completion")
    assert not late.to_tracking_wire(request).HasField("expected_completion")
    # What the beneficiary can do about it stays: a follow-up.
    assert page.follow_up_from.gregorian_date == "2026-01-07"
