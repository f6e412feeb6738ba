"""The work item's state machine, lease, information requests and SLA clock, with no I/O;
last, the item driven through generated sequences of everything that can happen to it.

Times are in Riyadh: the office works Sunday to Thursday, 07:30-14:30 (7 hours a day).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul_calendar import RIYADH, Sla, WorkingCalendar
from tawasul_platform.errors import FailedPrecondition, InvalidArgument, NotFound
from tawasul_platform.identity import Principal, Role
from tawasul_platform.topics import REQUEST_STATUS_CHANGED, SLA_ALERTS
from tawasul_platform.workdays import shipped_config
from tawasul_review.adapters.events import to_event
from tawasul_review.adapters.reasons import load_reasons
from tawasul_review.domain.model import (
    ANSWER_IN_FLIGHT,
    MAX_MESSAGE,
    MAX_MISSING,
    MESSAGE_RESENT,
    NO_ANSWER,
    SLA_MARKS,
    Contact,
    Decision,
    HistoryEntry,
    Missing,
    SlaCrossed,
    State,
    Status,
    StatusChanged,
    WorkItem,
    missing_items,
    names_of,
)

CALENDAR = WorkingCalendar(config=shipped_config())
REASONS = load_reasons()
LEASE = timedelta(minutes=30)


def riyadh(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An instant of January 2026 in Riyadh (the 4th is a Sunday)."""
    return datetime(2026, 1, day, hour, minute, second, tzinfo=RIYADH)


START = riyadh(4, 10)  # Sunday 10:00
ALI = Principal("E100", Role.REVIEWER, frozenset({"passports"}))
SARA = Principal("E200", Role.REVIEWER, frozenset({"passports", "visas"}))
VISAS_ONLY = Principal("E300", Role.REVIEWER, frozenset({"visas"}))
# A beneficiary whose token somehow names the department is still no reviewer.
CITIZEN = Principal("1000000008", Role.CITIZEN, frozenset({"passports"}))
PHOTO = Missing("document", "personal_photo", "A recent photo on a white background")


def new_item(
    *, sla: Sla | None = None, at: datetime = START, submitted_at: datetime | None = None
) -> WorkItem:
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
        now=at,
        submitted_at=submitted_at,
        sla=sla or Sla.days(2),
    )


def scheduled(item: WorkItem, at: datetime = START) -> WorkItem:
    """As the enqueue handler leaves it: due date and first SLA mark computed."""
    item.schedule(CALENDAR, at)
    return item


def settled(item: WorkItem) -> WorkItem:
    item.events.clear()
    item.new_history.clear()
    return item


def statuses(item: WorkItem) -> list[Status]:
    return [e.status for e in item.events if isinstance(e, StatusChanged)]


def in_state(state: State) -> WorkItem:
    """A fresh item brought to `state` by real transitions (ALI the holder or last holder)."""
    item = scheduled(new_item())
    if state is State.WITHDRAWN:
        item.withdraw(reason="Solved", now=START)
    elif state is not State.QUEUED:
        item.claim(ALI, START, LEASE)
    if state in (State.DECIDED, State.PROCESSED):
        item.decide(ALI, Decision.ACCEPT, "", REASONS["completed"], START, CALENDAR)
    if state is State.PROCESSED:
        item.mark_processed(SARA, "Ready to collect", START, CALENDAR)
    elif state is State.TRANSFERRED:
        item.transfer(ALI, "visas", "Misfiled: a visa question", START, CALENDAR, catalog_version=6)
    elif state in (State.WAITING, State.CLOSED):
        respond_by = CALENDAR.add_working_days(START, 5)
        item.request_information(ALI, (PHOTO,), "Please add", respond_by, START, CALENDAR)
        if state is State.CLOSED:
            assert item.expire(respond_by + ANSWER_IN_FLIGHT, CALENDAR)
    assert item.state is state
    return settled(item)


# --- the reviewer's actions, state by state -----------------------------------------------

Action = Callable[[WorkItem, Principal, datetime], None]
ACTIONS: dict[str, Action] = {
    "claim": lambda i, who, at: i.claim(who, at, LEASE),
    "release": lambda i, who, at: i.release(who, at, LEASE),
    "note": lambda i, who, at: i.note(who, "Checked the record", at, LEASE),
    "message": lambda i, who, at: i.message(who, "We are on it", at, LEASE, CALENDAR),
    "accept": lambda i, who, at: i.decide(
        who, Decision.ACCEPT, "Done", REASONS["completed"], at, CALENDAR
    ),
    "reject": lambda i, who, at: i.decide(
        who, Decision.REJECT, "The photo is unclear", REASONS["documents-unclear"], at, CALENDAR
    ),
    "request_information": lambda i, who, at: i.request_information(
        who, (PHOTO,), "Please add", CALENDAR.add_working_days(at, 5), at, CALENDAR
    ),
    "transfer": lambda i, who, at: i.transfer(
        who, "visas", "A visa question", at, CALENDAR, catalog_version=6
    ),
    "processed": lambda i, who, at: i.mark_processed(who, "Ready to collect", at, CALENDAR),
}

# What the holder (ALI) may do in each state: the state reached and the statuses published.
# Anything not listed is refused with FailedPrecondition.
HOLDER_MAY: dict[State, dict[str, tuple[State, list[Status]]]] = {
    State.QUEUED: {
        "claim": (State.CLAIMED, [Status.UNDER_REVIEW]),
        "note": (State.QUEUED, []),
    },
    State.CLAIMED: {
        "claim": (State.CLAIMED, []),
        "release": (State.QUEUED, []),
        "note": (State.CLAIMED, []),
        "message": (State.CLAIMED, [Status.UNDER_REVIEW]),
        "accept": (State.DECIDED, [Status.ACCEPTED]),
        "reject": (State.DECIDED, [Status.REJECTED]),
        "request_information": (State.WAITING, [Status.NEEDS_MORE_INFO]),
        "transfer": (State.TRANSFERRED, [Status.TRANSFERRED]),
    },
    # Accepted: any reviewer of the department marks it processed once the work is done.
    State.DECIDED: {
        "note": (State.DECIDED, []),
        "processed": (State.PROCESSED, [Status.PROCESSED]),
    },
    **{
        s: {"note": (s, [])}
        for s in (
            State.WITHDRAWN,
            State.WAITING,
            State.TRANSFERRED,
            State.CLOSED,
            State.PROCESSED,
        )
    },
}
# Another reviewer of the department: the same, except that a claimed item is not theirs.
OTHER_MAY: dict[State, dict[str, tuple[State, list[Status]]]] = {
    **HOLDER_MAY,
    State.CLAIMED: {"note": (State.CLAIMED, [])},
}

CASES = [
    pytest.param(who, state, action, id=f"{name}-{state.value}-{action}")
    for name, who in (("holder", ALI), ("colleague", SARA))
    for state in State
    for action in ACTIONS
]


@pytest.mark.parametrize(("who", "state", "action"), CASES)
def test_each_action_in_each_state_is_allowed_or_refused(
    who: Principal, state: State, action: str
) -> None:
    item = in_state(state)
    before = copy.deepcopy(item)
    at = START + timedelta(minutes=5)
    table = HOLDER_MAY if who is ALI else OTHER_MAY
    allowed = table[state].get(action)
    if allowed is None:
        with pytest.raises(FailedPrecondition):
            ACTIONS[action](item, who, at)
        assert item == before
        assert (item.events, item.new_history) == ([], [])
        return
    ACTIONS[action](item, who, at)
    reached, published = allowed
    assert item.state is reached
    assert statuses(item) == published
    assert {h.actor for h in item.new_history} <= {who.subject}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("outsider", [VISAS_ONLY, CITIZEN], ids=["other-department", "citizen"])
def test_an_outsider_finds_nothing_in_any_state(
    outsider: Principal, state: State, action: str
) -> None:
    item = in_state(state)
    before = copy.deepcopy(item)
    with pytest.raises(NotFound) as caught:
        ACTIONS[action](item, outsider, START + timedelta(minutes=5))
    # The refusal does not reveal the request's number, state or holder.
    assert str(caught.value) == "no such request in your departments"
    assert item == before
    assert (item.events, item.new_history) == ([], [])


def test_a_claimed_item_names_its_holder_to_a_colleague() -> None:
    item = in_state(State.CLAIMED)
    with pytest.raises(FailedPrecondition, match="E100"):
        item.claim(SARA, START, LEASE)
    with pytest.raises(FailedPrecondition, match="held by E100"):
        item.decide(SARA, Decision.ACCEPT, "", None, START, CALENDAR)


# --- what the system and the beneficiary do, state by state --------------------------------

LATER = riyadh(18, 10)  # Two weeks on: past any lease and any information deadline.

SystemAction = Callable[[WorkItem], object]
SYSTEM: dict[str, SystemAction] = {
    "lapse": lambda i: i.lapse(LATER),
    "answered": lambda i: i.answered(
        message="Added", holder_available=True, now=LATER, lease=LEASE, calendar=CALENDAR
    ),
    "expire": lambda i: i.expire(LATER, CALENDAR),
    "rerouted": lambda i: i.rerouted(
        department="visas", queue="visas.default", priority=0, now=LATER
    ),
    "followed_up": lambda i: i.followed_up(message="Any news?", now=LATER),
    "withdraw": lambda i: i.withdraw(reason="Solved", now=LATER),
    # Only a rejection is appealed; in_state(DECIDED) is an acceptance (see the appeal tests).
    "appeal": lambda i: i.appeal(reason="I disagree", now=LATER, calendar=CALENDAR),
}
UNFINISHED = (State.QUEUED, State.CLAIMED, State.WAITING, State.TRANSFERRED)
SYSTEM_MOVES: dict[str, dict[State, State]] = {
    "lapse": {State.CLAIMED: State.QUEUED},
    "answered": {State.WAITING: State.CLAIMED},
    "expire": {State.WAITING: State.CLOSED},
    "rerouted": {State.TRANSFERRED: State.QUEUED},
    "followed_up": {s: s for s in UNFINISHED},
    # Too late for a finished item: its history records it, its outcome stands.
    "withdraw": {s: State.WITHDRAWN for s in UNFINISHED}
    | {s: s for s in (State.DECIDED, State.PROCESSED, State.CLOSED)},
    # A processed request was accepted: none lies against it either.
    "appeal": {},
}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", list(SYSTEM))
def test_each_system_event_in_each_state_moves_it_or_changes_nothing(
    state: State, action: str
) -> None:
    item = in_state(state)
    before = copy.deepcopy(item)
    SYSTEM[action](item)
    reached = SYSTEM_MOVES[action].get(state)
    if reached is None:
        assert item == before
        assert (item.events, item.new_history) == ([], [])
    else:
        assert item.state is reached
        assert item.new_history != []


# A supervisor hands an open item to a reviewer (or a queue pushes it), or takes it back.
SUPERVISOR: dict[str, SystemAction] = {
    "assign": lambda i: i.assign("E200", LATER, LEASE, by="E900"),
    "unassign": lambda i: i.unassign(LATER, by="E900"),
}
SUPERVISOR_MOVES: dict[str, dict[State, State]] = {
    "assign": {State.QUEUED: State.CLAIMED, State.CLAIMED: State.CLAIMED},
    "unassign": {State.QUEUED: State.QUEUED, State.CLAIMED: State.QUEUED},
}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", list(SUPERVISOR))
def test_only_an_open_item_is_assigned_or_taken_back(state: State, action: str) -> None:
    item = in_state(state)
    before = copy.deepcopy(item)
    reached = SUPERVISOR_MOVES[action].get(state)
    if reached is None:
        with pytest.raises(FailedPrecondition):
            SUPERVISOR[action](item)
        assert item == before
        return
    SUPERVISOR[action](item)
    assert item.state is reached
    if action == "assign":
        assert (item.assignee, item.claimed_until) == ("E200", LATER + LEASE)
        assert [(h.actor, h.action, h.note) for h in item.new_history] == [
            ("E900", "assigned", "E200")
        ]
    else:
        assert (item.assignee, item.claimed_until) == ("", None)
        assert [(h.actor, h.action) for h in item.new_history] == [("E900", "reassigned_to_queue")]


def rejected() -> WorkItem:
    item = in_state(State.CLAIMED)
    unclear = REASONS["documents-unclear"]
    item.decide(ALI, Decision.REJECT, "The photo is unclear", unclear, START, CALENDAR)
    return settled(item)


def test_an_appealed_rejection_is_queued_for_another_reviewer() -> None:
    item = rejected()
    assert item.appeal(reason="The photo is fine", now=riyadh(5, 9), calendar=CALENDAR)
    assert (item.state, item.assignee, item.appeal_of, item.priority) == (
        State.QUEUED,
        "",
        "E100",
        1,
    )
    assert (item.decision, item.decision_message, item.reason_code) == (None, "", "")
    assert [(h.actor, h.action, h.note) for h in item.new_history] == [
        ("applicant", "appealed", "The photo is fine")
    ]
    assert not item.appeal(reason="again", now=riyadh(5, 9), calendar=CALENDAR)
    with pytest.raises(FailedPrecondition, match="your own decision"):
        item.claim(ALI, riyadh(5, 10), LEASE)
    with pytest.raises(FailedPrecondition, match="your own decision"):
        item.assign("E100", riyadh(5, 10), LEASE, by="E900")
    settled(item)
    item.claim(SARA, riyadh(5, 10), LEASE)
    # The beneficiary saw "rejected"; the appeal is under review again.
    assert statuses(item) == [Status.UNDER_REVIEW]
    item.decide(SARA, Decision.ACCEPT, "", None, riyadh(5, 10), CALENDAR)
    assert (item.state, item.decision) == (State.DECIDED, Decision.ACCEPT)


def test_only_the_decision_of_an_appeal_says_it_decides_one() -> None:
    """The beneficiary's notice offers an appeal against a rejection, but not against the
    rejection of their appeal."""
    item = in_state(State.CLAIMED)
    unclear = REASONS["documents-unclear"]
    item.decide(ALI, Decision.REJECT, "The photo is unclear", unclear, START, CALENDAR)
    assert [(e.status, e.decides_appeal) for e in item.events if isinstance(e, StatusChanged)] == [
        (Status.REJECTED, False)
    ]
    settled(item)
    assert item.appeal(reason="The photo is fine", now=riyadh(5, 9), calendar=CALENDAR)
    settled(item)
    item.claim(SARA, riyadh(5, 10), LEASE)
    item.decide(SARA, Decision.REJECT, "Still unclear", unclear, riyadh(5, 11), CALENDAR)
    assert [(e.status, e.decides_appeal) for e in item.events if isinstance(e, StatusChanged)] == [
        (Status.UNDER_REVIEW, False),
        (Status.REJECTED, True),
    ]
    # A cancellation after it is told the rejection stands, with no appeal to offer either.
    settled(item)
    item.withdraw(reason="Never mind", now=riyadh(5, 12))
    assert [
        (e.status, e.cancel_too_late, e.decides_appeal)
        for e in item.events
        if isinstance(e, StatusChanged)
    ] == [(Status.REJECTED, True, True)]


def test_a_rejection_tells_until_when_it_may_be_appealed() -> None:
    """By intake's rule, from the decision's time (the event's, which intake records): ten
    working days on, to the end of that day in Riyadh. Not on an appeal's decision, against
    which none lies, nor on an acceptance."""
    item = in_state(State.CLAIMED)
    unclear = REASONS["documents-unclear"]
    item.decide(ALI, Decision.REJECT, "The photo is unclear", unclear, START, CALENDAR)
    (event,) = item.events
    wire = events_pb2.Envelope.FromString(to_event(event).payload)
    assert wire.occurred_at.ToDatetime(tzinfo=UTC) == START
    # Sunday 4 January 10:00 and ten working days: Sunday 18 January, to its end.
    until = wire.request_status_changed.appeal_until.ToDatetime(tzinfo=UTC)
    assert until == riyadh(19, 0) - timedelta(microseconds=1)
    settled(item)
    assert item.appeal(reason="The photo is fine", now=riyadh(5, 9), calendar=CALENDAR)
    settled(item)
    item.claim(SARA, riyadh(5, 10), LEASE)
    item.decide(SARA, Decision.REJECT, "Still unclear", unclear, riyadh(5, 11), CALENDAR)
    final = events_pb2.Envelope.FromString(to_event(item.events[-1]).payload)
    assert not final.request_status_changed.HasField("appeal_until")
    accepted = in_state(State.CLAIMED)
    accepted.decide(ALI, Decision.ACCEPT, "", None, START, CALENDAR)
    (event,) = accepted.events
    assert isinstance(event, StatusChanged)
    assert event.appeal_until is None


def test_the_history_keeps_each_decisions_reason_code_through_an_appeal() -> None:
    """Who decided, when and why: the canned reason is the why, and an appeal clears it from
    the item, so the history must hold it."""
    item = in_state(State.CLAIMED)
    unclear = REASONS["documents-unclear"]
    item.decide(ALI, Decision.REJECT, "The photo is unclear", unclear, START, CALENDAR)
    assert item.appeal(reason="The photo is fine", now=riyadh(5, 9), calendar=CALENDAR)
    item.claim(SARA, riyadh(5, 10), LEASE)
    item.decide(SARA, Decision.ACCEPT, "", REASONS["completed"], riyadh(5, 11), CALENDAR)
    decisions = [h for h in item.new_history if h.action.startswith(("reject", "accept"))]
    assert [(h.actor, h.at) for h in decisions if "documents-unclear" in h.note] == [
        ("E100", START)
    ]
    assert [(h.actor, h.at) for h in decisions if "completed" in h.note] == [
        ("E200", riyadh(5, 11))
    ]


def test_the_sla_clock_stops_at_the_decision_and_an_appeal_starts_one_of_its_own() -> None:
    item = in_state(State.CLAIMED)
    decided_at = riyadh(5, 10)  # Monday 10:00: 7 of the 14 working hours used
    assert item.check_sla(CALENDAR, decided_at) == 50
    unclear = REASONS["documents-unclear"]
    item.decide(ALI, Decision.REJECT, "The photo is unclear", unclear, decided_at, CALENDAR)
    assert item.due_at == riyadh(6, 10)  # Tuesday 10:00, as it was
    # Weeks later the answer still took half the time promised, not many times it.
    assert item.percent_used(CALENDAR, riyadh(28, 10)) == 50

    appealed_at = riyadh(7, 10)  # Wednesday 10:00
    assert item.appeal(reason="The photo is fine", now=appealed_at, calendar=CALENDAR)
    item.schedule(CALENDAR, appealed_at)
    # A new review, with the whole SLA from the appeal: later than the old clock resumed
    # (Thursday 10:00), the 14 working hours end Sunday 10:00, and its 50 % mark is alerted
    # again, on Thursday 10:00.
    assert item.percent_used(CALENDAR, appealed_at) == 0
    assert item.due_at == riyadh(11, 10)
    assert (item.sla_alerted, item.sla_next_at) == (0, riyadh(8, 10))


def test_an_appeal_of_a_rejection_made_after_the_due_date_is_due_after_it_and_alerted() -> None:
    item = scheduled(new_item())  # Sunday 4 January 10:00, 14 working hours: due Tuesday 6
    item.claim(ALI, START, LEASE)
    assert item.check_sla(CALENDAR, riyadh(6, 10), ("SUP",)) == 100
    item.claim(ALI, riyadh(7, 9), LEASE)
    unclear = REASONS["documents-unclear"]
    item.decide(ALI, Decision.REJECT, "The photo is unclear", unclear, riyadh(7, 10), CALENDAR)
    appealed_at = riyadh(8, 10)  # Thursday 10:00
    assert item.appeal(reason="The photo is fine", now=appealed_at, calendar=CALENDAR)
    item.schedule(CALENDAR, appealed_at)
    assert item.due_at == riyadh(12, 10)  # Monday 10:00, not before the appeal
    item.events.clear()
    # Left in the queue, it warns the supervisors at each mark and then tells them the breach.
    for at in (riyadh(11, 10), riyadh(11, 14), riyadh(12, 11)):
        item.check_sla(CALENDAR, at, ("SUP",))
    alerts = [e for e in item.events if isinstance(e, SlaCrossed)]
    assert [(e.percent, e.due_at, e.supervisors) for e in alerts] == [
        (50, riyadh(12, 10), ("SUP",)),
        (75, riyadh(12, 10), ("SUP",)),
        (100, riyadh(12, 10), ("SUP",)),
    ]


def test_an_acceptance_carried_out_weeks_later_keeps_its_due_date() -> None:
    item = in_state(State.CLAIMED)
    item.decide(ALI, Decision.ACCEPT, "", REASONS["completed"], riyadh(5, 10), CALENDAR)
    assert item.due_at == riyadh(6, 10)
    item.mark_processed(SARA, "Collected", riyadh(19, 10), CALENDAR)
    assert item.due_at == riyadh(6, 10)
    assert item.percent_used(CALENDAR, riyadh(19, 10)) == 50
    assert [e.due_at for e in item.events if isinstance(e, StatusChanged)][-1] == riyadh(6, 10)


def test_the_sla_clock_stops_when_the_beneficiary_withdraws() -> None:
    item = in_state(State.QUEUED)
    item.withdraw(reason="Solved at the office", now=riyadh(5, 10))
    assert item.percent_used(CALENDAR, riyadh(28, 10)) == 50


def test_a_cancellation_stamped_before_the_clock_resumed_stops_it_where_it_resumed() -> None:
    # Intake's replicas stamp the beneficiary's actions, each by its own clock: a cancellation
    # taken a moment after the appeal may carry an earlier instant than the appeal's.
    item = in_state(State.CLAIMED)
    unclear = REASONS["documents-unclear"]
    item.decide(ALI, Decision.REJECT, "The photo is unclear", unclear, riyadh(5, 10), CALENDAR)
    appealed_at = riyadh(7, 10)
    assert item.appeal(reason="The photo is fine", now=appealed_at, calendar=CALENDAR)
    item.withdraw(reason="Solved at the office", now=appealed_at - timedelta(seconds=1))
    assert item.state is State.WITHDRAWN
    assert item.clock.paused_since == appealed_at
    # The appeal's own clock, stopped where it started: none of its time used.
    assert item.percent_used(CALENDAR, riyadh(28, 10)) == 0


# --- bad input ------------------------------------------------------------------------------


def refused(action: Callable[[], object]) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        action()
    return caught.value.violations


def test_a_rejection_needs_a_reason_code_and_a_message() -> None:
    item = in_state(State.CLAIMED)
    unclear = REASONS["documents-unclear"]
    no_reason = refused(
        lambda: item.decide(ALI, Decision.REJECT, "The photo is unclear", None, START, CALENDAR)
    )
    assert set(no_reason) == {"reason_code"}
    for message in ("", "   ", "Too short", "\u200b" * 10, "\u200f \u2800" * 5, "مَرْفُوضٌ لِنَقْصٍ"):

        def reject(m: str = message) -> None:
            item.decide(ALI, Decision.REJECT, m, unclear, START, CALENDAR)

        assert set(refused(reject)) == {"message"}
    wrong_kind = refused(
        lambda: item.decide(ALI, Decision.ACCEPT, "", unclear, START, CALENDAR)  # reject-only
    )
    assert set(wrong_kind) == {"reason_code"}
    completed = REASONS["completed"]
    accept_only = refused(
        lambda: item.decide(
            ALI, Decision.REJECT, "The photo is unclear", completed, START, CALENDAR
        )
    )
    assert set(accept_only) == {"reason_code"}
    assert (item.state, item.events) == (State.CLAIMED, [])
    # Letters enough, whatever marks and direction marks come with them.
    item.decide(ALI, Decision.REJECT, "\u200fالصُّورَةُ غَيْرُ وَاضِحَةٍ", unclear, START, CALENDAR)
    assert item.decision_message == "\u200fالصُّورَةُ غَيْرُ وَاضِحَةٍ"


def test_an_acceptance_needs_neither_reason_nor_message() -> None:
    item = in_state(State.CLAIMED)
    item.decide(ALI, Decision.ACCEPT, "", None, START, CALENDAR)
    assert (item.state, item.decision, item.reason_code) == (State.DECIDED, Decision.ACCEPT, "")


def test_a_rejection_carries_its_reason_in_both_languages() -> None:
    item = in_state(State.CLAIMED)
    unclear = REASONS["documents-unclear"]
    item.decide(ALI, Decision.REJECT, "  The photo is unclear  ", unclear, START, CALENDAR)
    (event,) = item.events
    assert isinstance(event, StatusChanged)
    assert (event.status, event.message, event.reason) == (
        Status.REJECTED,
        "The photo is unclear",
        unclear,
    )
    assert (unclear.ar, unclear.en) == (
        "المرفقات غير واضحة أو غير مقروءة",
        "The attachments are unclear or unreadable",
    )
    assert (item.reason_code, item.decision_message) == (
        "documents-unclear",
        "The photo is unclear",
    )


def test_an_information_request_lists_one_to_twenty_things() -> None:
    item = in_state(State.CLAIMED)
    respond_by = CALENDAR.add_working_days(START, 5)
    empty = refused(
        lambda: item.request_information(ALI, (), "Please add", respond_by, START, CALENDAR)
    )
    assert set(empty) == {"missing"}
    many = (PHOTO,) * (MAX_MISSING + 1)
    too_many = refused(
        lambda: item.request_information(ALI, many, "Please add", respond_by, START, CALENDAR)
    )
    assert set(too_many) == {"missing"}
    item.request_information(ALI, (PHOTO,) * MAX_MISSING, "", respond_by, START, CALENDAR)
    assert item.missing == (PHOTO,) * MAX_MISSING


def test_a_transfer_goes_elsewhere_with_a_reason() -> None:
    item = in_state(State.CLAIMED)
    same = refused(
        lambda: item.transfer(ALI, "passports", "Misfiled", START, CALENDAR, catalog_version=6)
    )
    assert set(same) == {"department_code"}
    for reason in ("", "  \n ", "\u200b\u2060\u3164"):

        def transfer(r: str = reason) -> None:
            item.transfer(ALI, "visas", r, START, CALENDAR, catalog_version=6)

        assert refused(transfer) == {"reason": "required"}
    assert (item.state, item.events) == (State.CLAIMED, [])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "required"),
        (" \t", "required"),
        ("\u200b\u200f\ufeff", "required"),
        ("x" * (MAX_MESSAGE + 1), f"at most {MAX_MESSAGE} characters"),
        ("ring \x07 the bell", "control characters are not allowed"),
        ("\x1b[2Jcleared", "control characters are not allowed"),
        ("nul \x00 byte", "control characters are not allowed"),
    ],
)
def test_notes_and_messages_are_refused_when_empty_huge_or_with_control_characters(
    text: str, problem: str
) -> None:
    item = in_state(State.CLAIMED)
    assert refused(lambda: item.note(ALI, text, START, LEASE)) == {"text": problem}
    assert refused(lambda: item.message(ALI, text, START, LEASE, CALENDAR)) == {"text": problem}
    assert item.events == []


def test_notes_keep_lines_and_tabs_and_arabic() -> None:
    item = in_state(State.CLAIMED)
    item.note(ALI, "الصورة غير واضحة\n\tراجع السجل", START, LEASE)
    assert item.new_history[-1].note == "الصورة غير واضحة\n\tراجع السجل"


def test_the_missing_list_names_each_bad_entry_by_position() -> None:
    with pytest.raises(InvalidArgument) as caught:
        missing_items(
            [
                ("document", "personal_photo", "A recent photo"),
                ("photo", "", "x" * 501),
                ("field", "n" * 101, " "),
                ("other", "\u200b", "\u2800\u200f"),
            ]
        )
    assert caught.value.violations == {
        "missing[1].kind": "'document', 'field' or 'other'",
        "missing[1].name": "required, at most 100 plain characters",
        "missing[1].description": "required, at most 500 plain characters",
        "missing[2].name": "required, at most 100 plain characters",
        "missing[2].description": "required, at most 500 plain characters",
        "missing[3].name": "required, at most 100 plain characters",
        "missing[3].description": "required, at most 500 plain characters",
    }
    assert missing_items([("other", " passport_copy ", " A copy ")]) == (
        Missing("other", "passport_copy", "A copy"),
    )


def test_the_missing_list_refuses_control_characters() -> None:
    with pytest.raises(InvalidArgument) as caught:
        missing_items([("document", "photo\x00", "Add \x1b[2J a photo")])
    assert set(caught.value.violations) == {"missing[0].name", "missing[0].description"}


# --- the lease ------------------------------------------------------------------------------


def test_a_claim_holds_the_item_for_the_lease() -> None:
    item = scheduled(new_item())
    item.claim(ALI, START, LEASE)
    assert (item.state, item.assignee, item.claimed_until) == (
        State.CLAIMED,
        "E100",
        START + LEASE,
    )
    assert [(h.actor, h.action) for h in item.new_history] == [
        ("routing", "queued"),
        ("E100", "claimed"),
    ]


@pytest.mark.parametrize("action", ["claim", "note", "message"])
def test_each_action_of_the_holder_renews_the_lease(action: str) -> None:
    item = in_state(State.CLAIMED)
    later = START + timedelta(minutes=20)
    ACTIONS[action](item, ALI, later)
    assert item.claimed_until == later + LEASE
    assert not item.lapse(START + LEASE)
    assert item.lapse(later + LEASE)


def test_a_colleagues_note_does_not_renew_the_holders_lease() -> None:
    item = in_state(State.CLAIMED)
    item.note(SARA, "Seen it too", START + timedelta(minutes=20), LEASE)
    assert item.claimed_until == START + LEASE


def test_a_claim_lapses_only_once_its_lease_has_run_out() -> None:
    item = in_state(State.CLAIMED)
    expiry = START + LEASE
    assert not item.lapse(expiry - timedelta(microseconds=1))
    assert (item.state, item.assignee) == (State.CLAIMED, "E100")
    with pytest.raises(FailedPrecondition):
        item.claim(SARA, expiry - timedelta(microseconds=1), LEASE)
    assert item.lapse(expiry)
    assert (item.state, item.assignee, item.claimed_until) == (State.QUEUED, "", None)
    assert [(h.actor, h.action, h.note) for h in item.new_history] == [
        ("system", "claim_lapsed", "E100")
    ]
    assert not item.lapse(expiry + LEASE)
    # Back in the queue: a colleague takes it, and the beneficiary hears nothing new.
    item.claim(SARA, expiry + timedelta(minutes=1), LEASE)
    assert (item.state, item.assignee) == (State.CLAIMED, "E200")
    assert item.claimed_until == expiry + timedelta(minutes=1) + LEASE
    assert item.events == []
    # The former holder can no longer act on it.
    with pytest.raises(FailedPrecondition, match="E200"):
        item.release(ALI, expiry + timedelta(minutes=2), LEASE)


def test_a_release_puts_it_back_for_anyone() -> None:
    item = in_state(State.CLAIMED)
    item.release(ALI, START + timedelta(minutes=1), LEASE)
    assert (item.state, item.assignee, item.claimed_until) == (State.QUEUED, "", None)
    item.claim(SARA, START + timedelta(minutes=2), LEASE)
    assert item.assignee == "E200"


def test_a_finished_item_holds_no_lease() -> None:
    for state in (State.DECIDED, State.WAITING, State.TRANSFERRED, State.WITHDRAWN):
        item = in_state(state)
        assert item.claimed_until is None
        assert not item.lapse(LATER)


# --- information requests and the paused clock -------------------------------------------


def test_an_information_request_pauses_the_clock_and_names_what_is_missing() -> None:
    item = in_state(State.CLAIMED)
    assert item.due_at == riyadh(6, 10)  # two working days: Tuesday 10:00
    asked_at = riyadh(5, 10)  # Monday 10:00, 7 of the 14 working hours used
    respond_by = CALENDAR.add_working_days(asked_at, 5)
    assert respond_by == riyadh(12, 10)
    item.request_information(ALI, (PHOTO,), " Please add a photo ", respond_by, asked_at, CALENDAR)
    assert (item.state, item.assignee, item.last_holder, item.claimed_until) == (
        State.WAITING,
        "",
        "E100",
        None,
    )
    assert (item.missing, item.respond_by, item.clock.paused_since) == (
        (PHOTO,),
        respond_by,
        asked_at,
    )
    assert item.sla_next_at is None
    (event,) = item.events
    assert isinstance(event, StatusChanged)
    assert (event.status, event.actor, event.message, event.missing, event.respond_by) == (
        Status.NEEDS_MORE_INFO,
        "E100",
        "Please add a photo",
        (PHOTO,),
        respond_by,
    )
    assert event.internal_note == ""
    # While it waits, time does not count against the office.
    assert item.percent_used(CALENDAR, riyadh(8, 12)) == 50


def test_the_due_date_moves_out_by_exactly_the_working_time_waited() -> None:
    item = in_state(State.CLAIMED)
    due_before = item.due_at
    assert due_before is not None
    asked_at, answered_at = riyadh(5, 10), riyadh(7, 9)  # Monday 10:00 to Wednesday 09:00
    item.request_information(
        ALI, (PHOTO,), "", CALENDAR.add_working_days(asked_at, 5), asked_at, CALENDAR
    )
    item.answered(
        message="Added", holder_available=True, now=answered_at, lease=LEASE, calendar=CALENDAR
    )
    waited = CALENDAR.elapsed(asked_at, answered_at)
    assert waited == timedelta(hours=13)  # 4.5 on Monday, 7 on Tuesday, 1.5 on Wednesday
    assert item.due_at == riyadh(8, 9)  # Thursday 09:00
    assert CALENDAR.elapsed(due_before, item.due_at) == waited
    assert item.clock.pauses == ((asked_at, answered_at),)
    assert not item.clock.paused
    assert item.percent_used(CALENDAR, answered_at) == 50


def test_an_answer_returns_the_item_to_the_reviewer_who_asked() -> None:
    item = in_state(State.WAITING)
    at = riyadh(5, 9)
    assert item.answered(
        message="Here it is", holder_available=True, now=at, lease=LEASE, calendar=CALENDAR
    )
    assert (item.state, item.assignee, item.claimed_until) == (State.CLAIMED, "E100", at + LEASE)
    assert (item.missing, item.respond_by) == ((), None)
    assert statuses(item) == [Status.RETURNED_BY_APPLICANT]
    assert not any(e.reopened for e in item.events if isinstance(e, StatusChanged))
    assert [(h.actor, h.action, h.note) for h in item.new_history] == [
        ("applicant", "answered", "Here it is"),
        ("E100", "returned_to_holder", ""),
    ]
    # The holder goes on at once.
    item.decide(ALI, Decision.ACCEPT, "", None, at, CALENDAR)
    assert item.state is State.DECIDED


def test_an_answers_notice_promises_the_due_date_only_while_it_is_ahead() -> None:
    """Notify tells the beneficiary the due date as "Expected completion": one already passed
    (the office is late) is left out, and review keeps it for its alerts."""
    waited = in_state(State.WAITING)
    at = riyadh(5, 9)
    waited.answered(message="Here", holder_available=True, now=at, lease=LEASE, calendar=CALENDAR)
    (told,) = [e for e in waited.events if isinstance(e, StatusChanged)]
    assert told.due_at == waited.due_at
    assert told.due_at is not None
    assert told.due_at > at

    late = scheduled(new_item())  # due Tuesday 6 January 10:00
    late.claim(ALI, riyadh(6, 11), LEASE)
    respond_by = CALENDAR.add_working_days(riyadh(6, 11), 5)
    late.request_information(ALI, (PHOTO,), "Please add", respond_by, riyadh(6, 11), CALENDAR)
    late.answered(
        message="Here", holder_available=True, now=riyadh(7, 10), lease=LEASE, calendar=CALENDAR
    )
    (told,) = [
        e
        for e in late.events
        if isinstance(e, StatusChanged) and e.status is Status.RETURNED_BY_APPLICANT
    ]
    assert told.due_at is None
    assert late.due_at == riyadh(6, 10)


def test_an_answer_goes_to_the_queue_when_the_reviewer_cannot_take_it() -> None:
    item = in_state(State.WAITING)
    at = riyadh(5, 9)
    assert item.answered(
        message="Here it is", holder_available=False, now=at, lease=LEASE, calendar=CALENDAR
    )
    assert (item.state, item.assignee, item.claimed_until) == (State.QUEUED, "", None)
    assert statuses(item) == [Status.RETURNED_BY_APPLICANT]
    assert [(h.actor, h.action) for h in item.new_history] == [
        ("applicant", "answered"),
        ("system", "returned_to_queue"),
    ]
    settled(item)
    item.claim(SARA, at, LEASE)
    assert statuses(item) == [Status.UNDER_REVIEW]


def test_a_name_an_answer_corrects_replaces_the_old_one_and_the_subjects_stay() -> None:
    item = in_state(State.WAITING)
    item.fields = {"correct_name_en": "Mohamed Alkahtany", "passport_number": "A1234567"}
    item.names = names_of(("محمد القحطاني", "Mohd Alqahtani"), item.fields)
    assert item.names == ("محمد القحطاني", "Mohd Alqahtani", "Mohamed Alkahtany")
    item.answered(
        message="Corrected",
        holder_available=True,
        now=riyadh(5, 9),
        lease=LEASE,
        calendar=CALENDAR,
        fields={"correct_name_en": " Mohammed Alqahtani ", "passport_number": "A7654321"},
    )
    assert item.names == ("محمد القحطاني", "Mohd Alqahtani", "Mohammed Alqahtani")
    assert item.renamed_from == ("محمد القحطاني", "Mohd Alqahtani", "Mohamed Alkahtany")
    # Fields that hold no name leave the names be.
    item.renamed_from, corrected = None, item.names
    item.request_information(ALI, (PHOTO,), "", riyadh(12, 9), riyadh(5, 10), CALENDAR)
    item.answered(
        message="Again",
        holder_available=True,
        now=riyadh(6, 9),
        lease=LEASE,
        calendar=CALENDAR,
        fields={"passport_number": "A1111111"},
    )
    assert (item.renamed_from, item.names) == (None, corrected)


def test_an_expired_deadline_closes_the_request() -> None:
    item = in_state(State.WAITING)
    respond_by = item.respond_by
    assert respond_by is not None
    # An answer given by the deadline may still be on its way: the sweep waits for it.
    assert not item.expire(respond_by + ANSWER_IN_FLIGHT - timedelta(seconds=1), CALENDAR)
    assert item.state is State.WAITING
    assert item.expire(respond_by + ANSWER_IN_FLIGHT, CALENDAR)
    assert (item.state, item.sla_next_at) == (State.CLOSED, None)
    (event,) = item.events
    assert isinstance(event, StatusChanged)
    assert (event.status, event.actor) == (Status.CLOSED, "system")
    # The deadline it closed at: a cancellation made by it was in time (intake keeps it).
    assert event.respond_by == respond_by
    # Why, in each language apart: the beneficiary reads it in theirs alone.
    assert (event.message, event.reason) == ("", NO_ANSWER)
    assert (NO_ANSWER.code, NO_ANSWER.ar) == (
        "no-answer",
        "لم تصل المعلومات المطلوبة في الموعد المحدد",
    )
    assert [(h.actor, h.action) for h in item.new_history] == [("system", "closed")]
    assert not item.expire(respond_by + timedelta(days=1), CALENDAR)


def test_an_answer_given_after_the_deadline_is_ignored() -> None:
    item = in_state(State.CLOSED)
    assert item.respond_by is not None
    before = copy.deepcopy(item)
    assert not item.answered(
        message="Late",
        holder_available=True,
        now=LATER,
        lease=LEASE,
        calendar=CALENDAR,
        answered_at=item.respond_by + timedelta(seconds=1),
    )
    assert item == before
    assert (item.events, item.new_history) == ([], [])


@pytest.mark.parametrize("holder_available", [True, False])
def test_an_answer_given_by_the_deadline_reopens_a_request_closed_before_it_came(
    holder_available: bool,
) -> None:
    item = in_state(State.CLOSED)
    respond_by = item.respond_by
    assert respond_by is not None
    assert item.clock.paused
    assert item.answered(
        message="Added the photo",
        holder_available=holder_available,
        now=LATER,
        lease=LEASE,
        calendar=CALENDAR,
        answered_at=respond_by,
    )
    assert (item.state, item.assignee, item.respond_by, item.missing) == (
        (State.CLAIMED, "E100", None, ()) if holder_available else (State.QUEUED, "", None, ())
    )
    assert not item.clock.paused
    assert item.claimed_until == (LATER + LEASE if holder_available else None)
    assert [(h.at, h.actor, h.action) for h in item.new_history] == [
        (respond_by, "applicant", "answered"),
        (LATER, "system", "reopened"),
        (
            (LATER, "E100", "returned_to_holder")
            if holder_available
            else (LATER, "system", "returned_to_queue")
        ),
    ]
    (event,) = item.events
    assert isinstance(event, StatusChanged)
    assert (event.status, event.actor, event.reopened) == (
        Status.RETURNED_BY_APPLICANT,
        "applicant",
        True,
    )


# --- SLA marks --------------------------------------------------------------------------

# A two-working-day SLA from Sunday 10:00 (14 working hours): 50 % falls on Monday 10:00,
# 75 % on Monday 13:30 and 100 % on Tuesday 10:00.
MARK_50, MARK_75, MARK_100 = riyadh(5, 10), riyadh(5, 13, 30), riyadh(6, 10)
SUPERVISORS = ("E900", "E901")


def alerts(item: WorkItem) -> list[tuple[int, datetime, tuple[str, ...]]]:
    return [(e.percent, e.at, e.supervisors) for e in item.events if isinstance(e, SlaCrossed)]


def test_sla_marks_fall_on_working_time() -> None:
    item = scheduled(new_item())
    assert (item.due_at, item.sla_next_at) == (MARK_100, MARK_50)


def test_each_mark_is_alerted_once_in_order_and_only_the_breach_names_supervisors() -> None:
    """Held by a reviewer, the warnings are theirs; the breach escalates."""
    item = scheduled(new_item())
    item.claim(ALI, START, timedelta(days=30))
    settled(item)
    tick = timedelta(microseconds=1)
    for at in (MARK_50 - tick, MARK_50, MARK_50 + tick, MARK_75, MARK_75, MARK_100, LATER):
        item.check_sla(CALENDAR, at, SUPERVISORS)
    assert alerts(item) == [
        (50, MARK_50, ()),
        (75, MARK_75, ()),
        (100, MARK_100, SUPERVISORS),
    ]
    assert all(e.due_at == MARK_100 for e in item.events if isinstance(e, SlaCrossed))
    assert (item.sla_alerted, item.sla_next_at) == (100, None)
    assert [(h.action, h.note, h.internal) for h in item.new_history] == [
        ("sla_warning", "50%", True),
        ("sla_warning", "75%", True),
        ("sla_breached", "100%", True),
    ]


def test_a_warning_for_an_item_no_one_holds_names_the_supervisors() -> None:
    item = scheduled(new_item())
    for at in (MARK_50, MARK_75):
        item.check_sla(CALENDAR, at, SUPERVISORS)
    assert alerts(item) == [(50, MARK_50, SUPERVISORS), (75, MARK_75, SUPERVISORS)]


def test_marks_passed_at_once_raise_one_alert_for_the_highest() -> None:
    item = scheduled(new_item())
    assert item.check_sla(CALENDAR, riyadh(5, 14), SUPERVISORS) == 75
    assert item.sla_next_at == MARK_100
    assert item.check_sla(CALENDAR, LATER, SUPERVISORS) == 100
    assert [p for p, _, _ in alerts(item)] == [75, 100]
    late = scheduled(new_item())
    assert late.check_sla(CALENDAR, LATER, SUPERVISORS) == 100
    assert alerts(late) == [(100, LATER, SUPERVISORS)]
    assert late.check_sla(CALENDAR, LATER + timedelta(days=1), SUPERVISORS) is None


def test_an_item_submitted_long_ago_is_breached_on_arrival() -> None:
    item = new_item(at=riyadh(12, 10), submitted_at=START)
    item.schedule(CALENDAR, riyadh(12, 10))
    assert item.sla_next_at == MARK_50
    assert item.check_sla(CALENDAR, riyadh(12, 10), SUPERVISORS) == 100
    assert [p for p, _, _ in alerts(item)] == [100]


def test_no_alert_while_waiting_on_the_applicant_and_marks_move_with_the_pause() -> None:
    item = in_state(State.CLAIMED)
    asked_at = riyadh(4, 12)  # Sunday 12:00: 2 of 14 hours used
    item.request_information(
        ALI, (PHOTO,), "", CALENDAR.add_working_days(asked_at, 5), asked_at, CALENDAR
    )
    settled(item)
    for at in (MARK_50, MARK_75, MARK_100, riyadh(7, 12)):
        assert item.check_sla(CALENDAR, at, SUPERVISORS) is None
    assert alerts(item) == []
    answered_at = riyadh(8, 12)  # Thursday 12:00
    item.answered(
        message="Added", holder_available=True, now=answered_at, lease=LEASE, calendar=CALENDAR
    )
    # 5 of the 7 hours to the 50 % mark remain: Thursday 12:00-14:30, then Sunday 07:30-10:00.
    assert item.sla_next_at == riyadh(11, 10)
    assert item.check_sla(CALENDAR, riyadh(11, 9, 59), SUPERVISORS) is None
    assert item.check_sla(CALENDAR, riyadh(11, 10), SUPERVISORS) == 50


@pytest.mark.parametrize("state", [State.DECIDED, State.WITHDRAWN, State.CLOSED])
def test_a_finished_item_raises_no_alert(state: State) -> None:
    item = in_state(state)
    assert item.sla_next_at is None
    assert item.check_sla(CALENDAR, LATER, SUPERVISORS) is None
    assert alerts(item) == []


def test_the_clock_keeps_running_in_a_transfer() -> None:
    item = in_state(State.TRANSFERRED)
    assert item.sla_next_at == MARK_50
    item.rerouted(department="visas", queue="visas.default", priority=0, now=riyadh(5, 8))
    item.schedule(CALENDAR, riyadh(5, 8))
    assert item.check_sla(CALENDAR, MARK_50, SUPERVISORS) == 50


# --- follow-ups and withdrawals ------------------------------------------------------------


def test_follow_ups_are_recorded_and_leave_the_priority_to_routing() -> None:
    item = scheduled(new_item())
    item.followed_up(message="Any news?", now=riyadh(7, 9))
    item.followed_up(message="Still waiting", now=riyadh(8, 9))
    assert item.priority == 0
    assert [(h.actor, h.action, h.note) for h in item.new_history[1:]] == [
        ("applicant", "followed_up", "Any news?"),
        ("applicant", "followed_up", "Still waiting"),
    ]


def test_routing_raises_an_open_items_priority_where_it_is_and_never_lowers_it() -> None:
    item = scheduled(new_item())
    item.rerouted(department=item.department, queue=item.queue, priority=15, now=riyadh(8, 9))
    item.rerouted(department=item.department, queue=item.queue, priority=10, now=riyadh(8, 10))
    # Another department's decision is a transfer's, and this item was not transferred.
    item.rerouted(department="visas", queue="visas.default", priority=30, now=riyadh(8, 11))
    assert (item.priority, item.state, item.queue) == (15, State.QUEUED, new_item().queue)
    assert item.position < scheduled(new_item()).position
    assert [(h.actor, h.action, h.note) for h in item.new_history[1:]] == [
        ("routing", "prioritised", "priority 15"),
    ]


def test_a_priority_decided_before_the_transfer_leaves_it_on_its_way() -> None:
    # Routing raised the priority in the first department before it heard of the transfer.
    item = in_state(State.TRANSFERRED)
    first = item.department
    item.rerouted(department=first, queue=f"{first}.default", priority=15, now=riyadh(8, 9))
    assert (item.state, item.department, item.priority) == (State.TRANSFERRED, first, 15)
    item.rerouted(department="visas", queue="visas.default", priority=0, now=riyadh(8, 10))
    assert (item.state, item.queue, item.priority) == (State.QUEUED, "visas.default", 15)


@pytest.mark.parametrize("state", sorted(set(State) - set(UNFINISHED)))
def test_a_finished_items_priority_stays(state: State) -> None:
    item = in_state(state)
    before = item.priority
    item.rerouted(department=item.department, queue=item.queue, priority=99, now=riyadh(8, 9))
    assert item.priority == before


@pytest.mark.parametrize("state", UNFINISHED)
def test_the_beneficiary_may_withdraw_an_unfinished_request(state: State) -> None:
    item = in_state(state)
    item.withdraw(reason="Solved at the office", now=riyadh(5, 9))
    assert (item.state, item.assignee, item.claimed_until, item.sla_next_at) == (
        State.WITHDRAWN,
        "",
        None,
        None,
    )
    assert [(h.actor, h.action, h.note) for h in item.new_history] == [
        ("applicant", "cancelled", "Solved at the office")
    ]
    with pytest.raises(FailedPrecondition):
        item.claim(ALI, riyadh(5, 10), LEASE)


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        (State.DECIDED, Status.ACCEPTED),
        (State.PROCESSED, Status.PROCESSED),
        (State.CLOSED, Status.CLOSED),
    ],
)
def test_a_finished_request_keeps_its_outcome_when_withdrawn(state: State, outcome: Status) -> None:
    item = in_state(state)
    item.new_history.clear()
    item.withdraw(reason="Too late", now=LATER)
    assert item.state is state
    assert [(h.at, h.actor, h.action, h.note) for h in item.new_history] == [
        (LATER, "applicant", "cancel_too_late", "Too late")
    ]
    # The beneficiary, told the request was cancelled, is told the outcome stands.
    (event,) = item.events
    assert isinstance(event, StatusChanged)
    assert (event.status, event.at, event.cancel_too_late, event.reopened) == (
        outcome,
        LATER,
        True,
        False,
    )


def test_a_cancellation_made_by_the_deadline_wins_over_a_closure_that_overtook_it() -> None:
    """The beneficiary cancelled while the request waited on them, before its deadline; the
    sweep closed it before the cancellation reached review. The beneficiary's act stands:
    withdrawn, the closure replaced by the cancellation in what the beneficiary is told."""
    item = in_state(State.CLOSED)
    respond_by = item.respond_by
    assert respond_by is not None
    item.new_history.clear()
    cancelled_at = respond_by - timedelta(hours=2)
    item.withdraw(reason="Solved at the office", now=cancelled_at)
    assert (item.state, item.sla_next_at) == (State.WITHDRAWN, None)
    assert [(h.at, h.actor, h.action, h.note) for h in item.new_history] == [
        (cancelled_at, "applicant", "cancelled", "Solved at the office")
    ]
    (event,) = item.events
    assert isinstance(event, StatusChanged)
    assert (event.status, event.at, event.cancel_too_late) == (
        Status.CANCELLED,
        cancelled_at,
        False,
    )
    # An answer given by the deadline, arriving after, reopens nothing.
    assert not item.answered(
        message="Added",
        holder_available=True,
        now=LATER,
        lease=LEASE,
        calendar=CALENDAR,
        answered_at=respond_by,
    )
    # A cancellation made after the deadline came too late: the closure stands.
    late = in_state(State.CLOSED)
    late.withdraw(reason="Solved", now=respond_by + timedelta(seconds=1))
    assert late.state is State.CLOSED
    (told,) = late.events
    assert isinstance(told, StatusChanged)
    assert (told.status, told.cancel_too_late) == (Status.CLOSED, True)


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (State.CLAIMED, "cancelled"),
        (State.WAITING, "cancelled"),
        (State.DECIDED, "cancel_too_late"),
        (State.PROCESSED, "cancel_too_late"),
    ],
)
def test_the_offices_cancellation_is_recorded_as_the_systems(state: State, action: str) -> None:
    """Intake cancelled the request for its account (the person off its record, another
    account filing for them): not the applicant's doing, in its history or what is published."""
    item = in_state(state)
    item.new_history.clear()
    item.withdraw(reason="the person is no longer on the record", now=LATER, by_office=True)
    assert [(h.actor, h.action) for h in item.new_history] == [("system", action)]
    assert [e.actor for e in item.events if isinstance(e, StatusChanged)] == (
        ["system"] if action == "cancel_too_late" else []
    )


def test_the_offices_cancellation_a_closure_overtook_is_restated_as_the_systems() -> None:
    """Made by the deadline, it arrived after the sweep closed the request: withdrawn, and the
    cancellation restated, as the system's."""
    closed = in_state(State.CLOSED)
    assert closed.respond_by is not None
    closed.new_history.clear()
    closed.withdraw(reason="off the record", now=closed.respond_by, by_office=True)
    assert [(h.actor, h.action) for h in closed.new_history] == [("system", "cancelled")]
    assert [(e.actor, e.status) for e in closed.events if isinstance(e, StatusChanged)] == [
        ("system", Status.CANCELLED)
    ]


def test_a_withdrawn_request_is_withdrawn_once() -> None:
    item = in_state(State.QUEUED)
    item.withdraw(reason="Solved at the office", now=START)
    item.new_history.clear()
    item.withdraw(reason="Again", now=LATER)
    assert item.state is State.WITHDRAWN
    assert item.new_history == []


# --- the public and the internal parts ----------------------------------------------------


def test_a_transfer_keeps_its_reason_internal() -> None:
    item = in_state(State.CLAIMED)
    item.transfer(
        ALI, "visas", "A visa question, not a passport one", START, CALENDAR, catalog_version=7
    )
    (event,) = item.events
    assert isinstance(event, StatusChanged)
    assert (event.status, event.message, event.transfer_to, event.internal_note) == (
        Status.TRANSFERRED,
        "",
        "visas",
        "A visa question, not a passport one",
    )
    assert (item.state, item.assignee, item.department) == (State.TRANSFERRED, "", "passports")
    assert [(h.action, h.note, h.internal) for h in item.new_history] == [
        ("transferred", "→ visas", False),
        ("transferred_reason", "A visa question, not a passport one", True),
    ]
    wire = events_pb2.Envelope.FromString(to_event(event).payload).request_status_changed
    # The catalog it checked visas against: a routing on an older one waits for it.
    assert (wire.status, wire.message, wire.transfer_to_department, wire.catalog_version) == (
        common_pb2.REQUEST_STATUS_TRANSFERRED,
        "",
        "visas",
        7,
    )
    assert (wire.internal.note, wire.internal.department_code) == (
        "A visa question, not a passport one",
        "passports",
    )


def test_a_rerouted_item_joins_its_new_queue_keeping_the_higher_priority() -> None:
    item = in_state(State.TRANSFERRED)
    item.priority = 2
    item.rerouted(department="visas", queue="visas.default", priority=1, now=riyadh(5, 8))
    assert (item.state, item.department, item.queue, item.priority, item.queued_at) == (
        State.QUEUED,
        "visas",
        "visas.default",
        2,
        riyadh(5, 8),
    )
    with pytest.raises(NotFound):
        item.claim(ALI, riyadh(5, 9), LEASE)
    item.claim(VISAS_ONLY, riyadh(5, 9), LEASE)
    assert item.assignee == "E300"


def test_a_routing_older_than_one_applied_moves_the_item_no_more() -> None:
    # In visas by routing's third decision, and transferred on from there: its second
    # decision, placing it elsewhere, replayed from the dead letters (or late), is no order.
    item = in_state(State.TRANSFERRED)
    item.rerouted(
        department="visas", queue="visas.default", priority=0, now=riyadh(5, 8), sequence=3
    )
    item.claim(VISAS_ONLY, riyadh(5, 9), LEASE)
    item.transfer(
        VISAS_ONLY, "residents", "A residence question", riyadh(5, 9), CALENDAR, catalog_version=6
    )
    settled(item)
    for sequence in (2, 3):
        item.rerouted(
            department="reports",
            queue="reports.default",
            priority=9,
            now=riyadh(5, 10),
            sequence=sequence,
        )
    assert (item.state, item.department, item.priority, item.routed_sequence) == (
        State.TRANSFERRED,
        "visas",
        0,
        3,
    )
    assert item.new_history == []
    # The next decision applies; so does one from before routing counted them (0).
    item.rerouted(
        department="residents",
        queue="residents.default",
        priority=0,
        now=riyadh(5, 11),
        sequence=4,
    )
    assert (item.state, item.department, item.routed_sequence) == (State.QUEUED, "residents", 4)
    item.rerouted(department="residents", queue="residents.default", priority=5, now=riyadh(5, 12))
    assert (item.priority, item.routed_sequence) == (5, 4)


def test_a_transferred_item_moves_on_the_decision_answering_its_transfer_whatever_its_count() -> (
    None
):
    # Routed to visas by routing's decision 3, answering review's transfer.
    item = in_state(State.TRANSFERRED)
    earlier = item.status_sequence
    assert item.rerouted(
        department="visas",
        queue="visas.default",
        priority=0,
        now=riyadh(5, 8),
        sequence=3,
        transfer_sequence=earlier,
    )
    item.claim(VISAS_ONLY, riyadh(5, 9), LEASE)
    item.transfer(
        VISAS_ONLY, "residents", "A residence question", riyadh(5, 9), CALENDAR, catalog_version=6
    )
    transfer = item.status_sequence
    settled(item)
    # Routing's database put back to a backup and replayed: its count starts again, lower or
    # higher. Its submission's decision (to reports, before any transfer) moves nothing.
    for sequence in (1, 7):
        assert not item.rerouted(
            department="reports",
            queue="reports.default",
            priority=9,
            now=riyadh(5, 10),
            sequence=sequence,
        )
    assert (item.state, item.department, item.priority) == (State.TRANSFERRED, "visas", 0)
    # A raise where it is, numbered lower than one applied, still raises it.
    assert item.rerouted(
        department="visas",
        queue="visas.default",
        priority=4,
        now=riyadh(5, 10),
        sequence=2,
        transfer_sequence=earlier,
    )
    # The decision answering this transfer, numbered 2 now, moves it.
    assert item.rerouted(
        department="residents",
        queue="residents.default",
        priority=0,
        now=riyadh(5, 11),
        sequence=2,
        transfer_sequence=transfer,
    )
    assert (item.state, item.department, item.priority) == (State.QUEUED, "residents", 4)
    assert (item.routed_transfer, item.routed_sequence) == (transfer, 2)
    assert [(h.action, h.note) for h in item.new_history] == [
        ("prioritised", "priority 4"),
        ("queued", "residents.default"),
    ]


def test_a_note_is_internal_and_publishes_nothing() -> None:
    item = in_state(State.CLAIMED)
    item.note(ALI, "Called the registry", START, LEASE)
    assert item.events == []
    assert [(h.action, h.note, h.internal) for h in item.new_history] == [
        ("note", "Called the registry", True)
    ]


def test_a_message_is_public_and_keeps_the_current_status() -> None:
    item = in_state(State.CLAIMED)
    item.message(ALI, "We are checking your record", START, LEASE, CALENDAR)
    (event,) = item.events
    assert isinstance(event, StatusChanged)
    assert (event.status, event.message, event.internal_note) == (
        Status.UNDER_REVIEW,
        "We are checking your record",
        "",
    )
    assert [(h.action, h.note, h.internal) for h in item.new_history] == [
        ("message", "We are checking your record", False)
    ]


@pytest.mark.parametrize(
    "make",
    [
        lambda i: i.claim(ALI, START, LEASE),
        lambda i: (
            i.claim(ALI, START, LEASE),
            i.decide(ALI, Decision.ACCEPT, "", None, START, CALENDAR),
        ),
    ],
    ids=["claim", "accept"],
)
def test_status_events_carry_no_internal_note_unless_transferred(
    make: Callable[[WorkItem], object],
) -> None:
    item = scheduled(new_item())
    make(item)
    assert [e.internal_note for e in item.events if isinstance(e, StatusChanged)] != []
    assert {e.internal_note for e in item.events if isinstance(e, StatusChanged)} == {""}


def test_sla_alerts_go_to_their_own_topic() -> None:
    item = scheduled(new_item())
    item.claim(ALI, START, LEASE)
    settled(item)
    item.check_sla(CALENDAR, LATER, SUPERVISORS)
    (alert,) = item.events
    outgoing = to_event(alert)
    assert outgoing.topic == SLA_ALERTS
    wire = events_pb2.Envelope.FromString(outgoing.payload).sla_alert
    assert (wire.percent, wire.assignee_id, list(wire.supervisor_ids)) == (
        100,
        "E100",
        ["E900", "E901"],
    )
    assert wire.due_at.ToDatetime(tzinfo=UTC) == MARK_100
    claimed = scheduled(new_item())
    claimed.claim(ALI, START, LEASE)
    assert to_event(claimed.events[0]).topic == REQUEST_STATUS_CHANGED


def test_each_status_change_carries_the_next_sequence_of_its_request() -> None:
    item = scheduled(new_item())
    item.claim(ALI, START, LEASE)
    item.request_information(
        ALI, (PHOTO,), "Please add", CALENDAR.add_working_days(START, 5), START, CALENDAR
    )
    item.check_sla(CALENDAR, LATER, SUPERVISORS)
    item.withdraw(reason="Solved", now=LATER)
    changes = [to_event(e) for e in item.events if isinstance(e, StatusChanged)]
    wire = [events_pb2.Envelope.FromString(c.payload).request_status_changed for c in changes]
    assert [(w.status, w.sequence) for w in wire] == [
        (common_pb2.REQUEST_STATUS_UNDER_REVIEW, 1),
        (common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO, 2),
    ]
    assert item.status_sequence == 2
    # Restated for a cancellation that came too late: a change of its own, the next one.
    decided = in_state(State.DECIDED)
    assert decided.status_sequence == 2
    decided.withdraw(reason="Too late", now=LATER)
    (restated,) = decided.events
    assert isinstance(restated, StatusChanged)
    assert (restated.cancel_too_late, restated.sequence, decided.status_sequence) == (True, 3, 3)


# --- generated sequences ---------------------------------------------------------------------
# Hypothesis' stateful testing: reviewers' actions, the beneficiary's events stamped by intake's
# clock (up to 2 s off review's), the sweep and time passing, in any order. An action is either
# refused with a caller's error and changes nothing, or leaves the item consistent: a move the
# state machine allows, a history and events that only grow, an SLA clock that runs exactly
# while the office owes the request an answer.

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
reviewers = st.sampled_from((ALI, SARA, VISAS_ONLY))


class ItemLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.item = scheduled(new_item())
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
        appeal_of, before = self.item.appeal_of, self.item.state
        if accept:
            decision, text, reason = Decision.ACCEPT, "Done", REASONS["completed"]
        else:
            decision, text, reason = (
                Decision.REJECT,
                "The photo is unclear",
                REASONS["documents-unclear"],
            )
        self.act(lambda: self.item.decide(who, decision, text, reason, self.now, CALENDAR))
        if before is State.CLAIMED and self.item.state is State.DECIDED and appeal_of:
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
        self.act(
            lambda: self.item.transfer(
                who, department, "Misfiled", self.now, CALENDAR, catalog_version=6
            )
        )

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
            if self.item.appeal(reason="Please look again", now=at, calendar=CALENDAR):
                # The appeal's own clock: its marks rise again from none.
                self.alerted = 0
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


def test_a_reviewer_s_text_with_windows_line_ends_is_taken_with_newlines() -> None:
    """A message pasted from a file written on Windows: its line ends are not controls."""
    item = in_state(State.CLAIMED)
    item.decide(
        ALI, Decision.ACCEPT, "Renewed.\r\nCollect it at the office.", None, START, CALENDAR
    )
    (event,) = [e for e in item.events if isinstance(e, StatusChanged)]
    assert event.message == "Renewed.\nCollect it at the office."
    (missing,) = missing_items([("other", "receipt", "The receipt\r\nof the payment")])
    assert missing.description == "The receipt\nof the payment"


def test_a_decision_sent_again_is_told_the_request_is_decided_already() -> None:
    """Its reply lost, the reviewer sends the decision again: "claim it first" would send them
    to a claim that is refused too."""
    item = in_state(State.CLAIMED)
    item.decide(ALI, Decision.ACCEPT, "Done", None, START, CALENDAR)
    with pytest.raises(FailedPrecondition) as caught:
        item.decide(ALI, Decision.ACCEPT, "Done", None, START, CALENDAR)
    assert str(caught.value).endswith("is decided already")
    waiting = in_state(State.QUEUED)
    with pytest.raises(FailedPrecondition, match="is queued; claim it first"):
        waiting.decide(ALI, Decision.ACCEPT, "Done", None, START, CALENDAR)


def test_a_message_sent_again_at_once_is_not_sent_twice() -> None:
    """The reviewer runs `message` again after a timeout: the beneficiary is texted once."""
    item = in_state(State.CLAIMED)
    item.message(ALI, "Please bring the original", START, LEASE, CALENDAR)
    sent = [h for h in item.new_history if h.action == "message"]
    item.events.clear()
    item.message(
        ALI, "Please bring the original ", START + timedelta(minutes=1), LEASE, CALENDAR, sent
    )
    assert item.events == []
    # Past the window, or other words, it is a message of its own.
    later = START + MESSAGE_RESENT + timedelta(seconds=1)
    item.message(ALI, "Please bring the original", later, LEASE, CALENDAR, sent)
    item.message(ALI, "And the copy", START + timedelta(minutes=2), LEASE, CALENDAR, sent)
    assert [e.message for e in item.events if isinstance(e, StatusChanged)] == [
        "Please bring the original",
        "And the copy",
    ]
