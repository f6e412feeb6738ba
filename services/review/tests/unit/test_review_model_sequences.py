"""The work item driven through generated sequences of everything that can happen to it
(hypothesis' stateful testing): reviewers' actions, the beneficiary's events, the sweep and
time passing, with the beneficiary's events stamped by intake's clock, which may run a little
ahead of or behind review's. Whatever the order, an action is either refused with a caller's
error or leaves the item consistent: a move the state machine allows, a history and events
that only grow, an SLA clock that runs exactly while the office owes the request an answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from tawasul_calendar import RIYADH, Sla, WorkingCalendar
from tawasul_platform.errors import FailedPrecondition, InvalidArgument, NotFound
from tawasul_platform.identity import Principal, Role
from tawasul_platform.workdays import shipped_config
from tawasul_review.adapters.reasons import load_reasons
from tawasul_review.domain.model import (
    SLA_MARKS,
    UNFINISHED,
    Contact,
    Decision,
    HistoryEntry,
    Missing,
    State,
    StatusChanged,
    WorkItem,
)

CALENDAR = WorkingCalendar(config=shipped_config())
REASONS = load_reasons()
LEASE = timedelta(minutes=30)
START = datetime(2026, 1, 4, 10, tzinfo=RIYADH)  # a Sunday, in working hours
REVIEWERS = (
    Principal("E100", Role.REVIEWER, frozenset({"passports"})),
    Principal("E200", Role.REVIEWER, frozenset({"passports", "visas"})),
    Principal("E300", Role.REVIEWER, frozenset({"visas"})),
)
PHOTO = Missing("document", "personal_photo", "A recent photo on a white background")
REFUSED = (FailedPrecondition, InvalidArgument, NotFound)

# Every move the state machine allows (the model's docstring), and staying put.
MOVES = {
    (State.QUEUED, State.CLAIMED),  # claimed, assigned
    (State.CLAIMED, State.CLAIMED),  # assigned to another reviewer
    (State.CLAIMED, State.QUEUED),  # released, lapsed, unassigned
    (State.CLAIMED, State.DECIDED),
    (State.CLAIMED, State.WAITING),
    (State.CLAIMED, State.TRANSFERRED),
    (State.WAITING, State.CLAIMED),  # answered, to the reviewer who asked
    (State.WAITING, State.QUEUED),  # answered, to the queue
    (State.WAITING, State.CLOSED),
    (State.CLOSED, State.CLAIMED),  # answered by the deadline, arriving after it
    (State.CLOSED, State.QUEUED),
    (State.TRANSFERRED, State.QUEUED),  # routed again
    (State.DECIDED, State.QUEUED),  # a rejection appealed
    *((s, State.WITHDRAWN) for s in UNFINISHED),
    *((s, s) for s in State),
}
# Where the office owes the beneficiary an answer: the SLA clock runs.
RUNNING = {State.QUEUED, State.CLAIMED, State.TRANSFERRED}

skew = st.integers(min_value=-2, max_value=2).map(lambda s: timedelta(seconds=s))
reviewers = st.sampled_from(REVIEWERS)


class ItemLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.item = WorkItem.enqueue(
            request_id=uuid.uuid4(),
            request_number="TW260000001",
            department="passports",
            queue="passports.default",
            sub_service_code="passports.issue-renewal-problem",
            description="The photo does not appear when renewing passport",
            applicant_id="1000000008",
            document_ids=("d1",),
            contact=Contact("+966551234567", "", "ar"),
            now=START,
            sla=Sla.days(2),
        )
        self.item.schedule(CALENDAR, START)
        self.history: list[HistoryEntry] = []
        self.events: list[object] = []
        self.state = self.item.state
        self.alerted = 0

    def act(self, action: Callable[[], object]) -> None:
        """Runs one action; a refusal must leave the item as it was."""
        before = (self.item.state, self.item.assignee, len(self.item.new_history))
        try:
            action()
        except REFUSED:
            assert (self.item.state, self.item.assignee, len(self.item.new_history)) == before
        assert (self.state, self.item.state) in MOVES, (self.state, self.item.state)
        self.state = self.item.state

    # --- time, the sweep --------------------------------------------------------------------

    @rule(hours=st.integers(min_value=0, max_value=24 * 9), minutes=st.integers(0, 59))
    def time_passes(self, hours: int, minutes: int) -> None:
        self.now += timedelta(hours=hours, minutes=minutes)

    @rule()
    def sweep(self) -> None:
        self.act(lambda: self.item.lapse(self.now))
        self.act(lambda: self.item.expire(self.now, CALENDAR))
        self.act(lambda: self.item.check_sla(CALENDAR, self.now, ("S1",)))

    # --- reviewers --------------------------------------------------------------------------

    @rule(who=reviewers)
    def claim(self, who: Principal) -> None:
        self.act(lambda: self.item.claim(who, self.now, LEASE))

    @rule(who=reviewers)
    def assign(self, who: Principal) -> None:
        self.act(lambda: self.item.assign(who.subject, self.now, LEASE, by="S1"))

    @rule()
    def unassign(self) -> None:
        self.act(lambda: self.item.unassign(self.now, by="S1"))

    @rule(who=reviewers)
    def release(self, who: Principal) -> None:
        self.act(lambda: self.item.release(who, self.now, LEASE))

    @rule(who=reviewers)
    def note(self, who: Principal) -> None:
        self.act(lambda: self.item.note(who, "Checked the record", self.now, LEASE))

    @rule(who=reviewers)
    def message(self, who: Principal) -> None:
        self.act(lambda: self.item.message(who, "We are on it", self.now, LEASE, CALENDAR))

    @rule(who=reviewers, accept=st.booleans())
    def decide(self, who: Principal, accept: bool) -> None:
        appeal_of = self.item.appeal_of
        if accept:
            decision, text, reason = Decision.ACCEPT, "Done", REASONS["completed"]
        else:
            decision, text, reason = (
                Decision.REJECT,
                "The photo is unclear",
                REASONS["documents-unclear"],
            )
        self.act(lambda: self.item.decide(who, decision, text, reason, self.now, CALENDAR))
        if self.item.state is State.DECIDED and self.state is State.DECIDED and appeal_of:
            assert self.item.assignee != appeal_of  # four eyes

    @rule(who=reviewers, days=st.integers(min_value=1, max_value=10))
    def request_information(self, who: Principal, days: int) -> None:
        respond_by = CALENDAR.add_working_days(self.now, days)
        self.act(
            lambda: self.item.request_information(
                who, (PHOTO,), "Please add", respond_by, self.now, CALENDAR
            )
        )

    @rule(who=reviewers, department=st.sampled_from(("passports", "visas")))
    def transfer(self, who: Principal, department: str) -> None:
        self.act(lambda: self.item.transfer(who, department, "Misfiled", self.now, CALENDAR))

    # --- routing ----------------------------------------------------------------------------

    @rule(department=st.sampled_from(("passports", "visas")), priority=st.integers(0, 3))
    def routed_again(self, department: str, priority: int) -> None:
        def rerouted() -> None:
            queue = f"{department}.default"
            self.item.rerouted(department=department, queue=queue, priority=priority, now=self.now)
            self.item.schedule(CALENDAR, self.now)

        self.act(rerouted)

    # --- the beneficiary, as of intake's clock ----------------------------------------------

    @rule(off=skew)
    def follows_up(self, off: timedelta) -> None:
        self.act(lambda: self.item.followed_up(message="Any news?", now=self.now + off))

    @rule(off=skew, free=st.booleans())
    def answers(self, off: timedelta, free: bool) -> None:
        given = self.now + off
        self.act(
            lambda: self.item.answered(
                message="Attached",
                holder_available=free,
                now=max(given, self.now),
                lease=LEASE,
                calendar=CALENDAR,
                answered_at=given,
            )
        )

    @rule(off=skew)
    def appeals(self, off: timedelta) -> None:
        at = self.now + off

        def appeal() -> None:
            if self.item.appeal(reason="Please look again", now=at):
                self.item.schedule(CALENDAR, at)

        self.act(appeal)

    @rule(off=skew)
    def cancels(self, off: timedelta) -> None:
        self.act(lambda: self.item.withdraw(reason="Solved", now=self.now + off))

    # --- what holds after every step ---------------------------------------------------------

    @invariant()
    def records_only_grow(self) -> None:
        assert self.item.new_history[: len(self.history)] == self.history
        assert self.item.events[: len(self.events)] == self.events
        self.history = list(self.item.new_history)
        self.events = list(self.item.events)

    @invariant()
    def fields_fit_the_state(self) -> None:
        item = self.item
        state = item.state
        # A decided item keeps who decided it: an appeal goes to someone else.
        assert (item.assignee != "") == (state in (State.CLAIMED, State.DECIDED))
        assert (item.claimed_until is not None) == (state is State.CLAIMED)
        assert (item.decision is not None) == (state is State.DECIDED)
        if state is State.WAITING:
            assert item.missing
            assert item.respond_by is not None

    @invariant()
    def the_clock_runs_while_the_office_owes_an_answer(self) -> None:
        item = self.item
        assert item.clock.paused == (item.state not in RUNNING), item.state
        if item.clock.paused:
            assert item.sla_next_at is None
        ends = [item.clock.started_at]
        for start, end in item.clock.pauses:
            assert ends[-1] <= start <= end
            ends.append(end)
        if item.clock.paused_since is not None:
            assert ends[-1] <= item.clock.paused_since

    @invariant()
    def alerts_only_rise(self) -> None:
        assert self.item.sla_alerted in (0, *SLA_MARKS)
        assert self.item.sla_alerted >= self.alerted
        self.alerted = self.item.sla_alerted

    @invariant()
    def the_beneficiary_sees_the_last_status_published(self) -> None:
        published = [e.status for e in self.item.events if isinstance(e, StatusChanged)]
        assert self.item.public_status == (published[-1] if published else None)

    @invariant()
    def due_after_the_start(self) -> None:
        due = self.item.due_at
        assert due is None or due >= self.item.clock.started_at


ItemLife.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_item_life = ItemLife.TestCase
