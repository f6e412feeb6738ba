"""The Request driven through generated sequences (hypothesis' stateful testing): the
beneficiary's actions by intake's clock, review's status changes stamped by review's clock
(up to 2 s off intake's) in any order, and time passing. An action is either refused with a
caller's error and changes nothing, or leaves the request consistent: a final status stays
final but for the races the model allows, the history and events only grow, and the promise's
clock is paused exactly while the request waits on the beneficiary.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from tawasul_calendar import RIYADH, WorkingCalendar
from tawasul_intake.domain.model import (
    FINAL,
    OUTCOMES,
    Contact,
    HistoryEntry,
    Missing,
    Request,
    RequestAppealed,
    Status,
    Submission,
)
from tawasul_platform.catalog import load_catalog
from tawasul_platform.errors import FailedPrecondition, InvalidArgument
from tawasul_platform.identity import Role

CATALOG = load_catalog()
CALENDAR = WorkingCalendar()
CODE = "passports.issue-renewal-problem"
START = datetime(2026, 1, 4, 10, tzinfo=RIYADH)  # a Sunday, in working hours
RECEIPT = Missing("document", "receipt", "The payment receipt")
REFUSED = (FailedPrecondition, InvalidArgument)
# What review publishes about a request (and an accepted one's processing).
FROM_REVIEW = sorted(set(Status) - {Status.SUBMITTED, Status.CANCELLED})

skew = st.integers(min_value=-2, max_value=2).map(lambda s: timedelta(seconds=s))


def allowed(before: Status, after: Status) -> bool:
    """A final status stays, but for an outcome review reached before a cancellation reached
    it, and an appeal of a rejection."""
    if before not in FINAL or after == before:
        return True
    return (before is Status.CANCELLED and after in OUTCOMES) or (
        before is Status.REJECTED and after is Status.UNDER_REVIEW
    )


class RequestLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = START
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
        self.request = Request.submit(
            submission,
            id=uuid.uuid4(),
            number="TW123456789",
            sub_service=CATALOG.sub_services[CODE],
            catalog_version=CATALOG.version,
            calendar=CALENDAR,
            now=START,
        )
        self.status = self.request.status
        self.history: list[HistoryEntry] = []
        self.events: list[object] = []

    def act(self, action: Callable[[], object]) -> None:
        before = (self.request.status, len(self.request.history), len(self.request.events))
        try:
            action()
        except REFUSED:
            after = (self.request.status, len(self.request.history), len(self.request.events))
            assert after == before
        assert allowed(self.status, self.request.status), (self.status, self.request.status)
        self.status = self.request.status

    @rule(hours=st.integers(min_value=0, max_value=24 * 9), minutes=st.integers(0, 59))
    def time_passes(self, hours: int, minutes: int) -> None:
        self.now += timedelta(hours=hours, minutes=minutes)

    # --- review, by its own clock -----------------------------------------------------------

    @rule(
        status=st.sampled_from(FROM_REVIEW),
        message=st.sampled_from(("", "We are checking your file")),
        off=skew,
        days=st.integers(min_value=1, max_value=10),
    )
    def review_publishes(self, status: Status, message: str, off: timedelta, days: int) -> None:
        at = self.now + off
        waiting = status is Status.NEEDS_MORE_INFO
        self.act(
            lambda: self.request.track(
                status,
                message,
                at,
                missing=(RECEIPT,) if waiting else (),
                respond_by=CALENDAR.add_working_days(at, days) if waiting else None,
            )
        )

    # --- the beneficiary, by intake's clock -------------------------------------------------

    @rule()
    def follows_up(self) -> None:
        self.act(
            lambda: self.request.follow_up(message="Any news?", calendar=CALENDAR, now=self.now)
        )

    @rule()
    def cancels(self) -> None:
        self.act(lambda: self.request.cancel(reason="Solved", now=self.now))

    @rule(message=st.sampled_from(("", "Attached")))
    def answers(self, message: str) -> None:
        self.act(
            lambda: self.request.respond(message=message, fields={}, document_ids=(), now=self.now)
        )

    @rule(reason=st.sampled_from(("", "The photo is fine")))
    def appeals(self, reason: str) -> None:
        self.act(lambda: self.request.appeal(reason=reason, calendar=CALENDAR, now=self.now))

    # --- what holds after every step ---------------------------------------------------------

    @invariant()
    def records_only_grow(self) -> None:
        assert self.request.history[: len(self.history)] == self.history
        assert self.request.events[: len(self.events)] == self.events
        self.history = list(self.request.history)
        self.events = list(self.request.events)

    @invariant()
    def the_history_ends_at_the_status(self) -> None:
        assert self.request.history[-1].status is self.request.status

    @invariant()
    def the_promise_waits_while_the_beneficiary_does(self) -> None:
        request = self.request
        waiting = request.status is Status.NEEDS_MORE_INFO
        assert request.clock.paused == waiting
        if not waiting:
            assert request.missing == ()
            assert request.respond_by is None
        assert request.expected_completion(CALENDAR, self.now) >= request.submitted_at

    @invariant()
    def appealed_once_at_most(self) -> None:
        appeals = [e for e in self.request.events if isinstance(e, RequestAppealed)]
        assert len(appeals) == int(self.request.appealed)


RequestLife.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_request_life = RequestLife.TestCase
