"""The review API's values as the office reads and types them: states, decisions, kinds of
query, SLA states and instants."""

from __future__ import annotations

import enum

from google.protobuf.timestamp_pb2 import Timestamp
from rich.text import Text
from tawasul.common.v1 import common_pb2
from tawasul.review.v1 import review_pb2
from tawasul_calendar import RIYADH

from tawasul_review_cli.terminal import clean, line, value

_STATE = {
    review_pb2.WORK_ITEM_STATE_QUEUED: "queued",
    review_pb2.WORK_ITEM_STATE_CLAIMED: "claimed",
    review_pb2.WORK_ITEM_STATE_DECIDED: "decided",
    review_pb2.WORK_ITEM_STATE_WITHDRAWN: "withdrawn",
    review_pb2.WORK_ITEM_STATE_WAITING_ON_APPLICANT: "waiting on applicant",
    review_pb2.WORK_ITEM_STATE_TRANSFERRED: "transferred",
    review_pb2.WORK_ITEM_STATE_CLOSED: "closed",
    review_pb2.WORK_ITEM_STATE_PROCESSED: "processed",
}
_DECISION = {review_pb2.DECISION_ACCEPT: "accepted", review_pb2.DECISION_REJECT: "rejected"}


class StateName(enum.StrEnum):
    queued = "queued"
    claimed = "claimed"
    decided = "decided"
    withdrawn = "withdrawn"
    waiting = "waiting"
    transferred = "transferred"
    closed = "closed"
    processed = "processed"


STATE_TO_WIRE = {
    StateName.queued: review_pb2.WORK_ITEM_STATE_QUEUED,
    StateName.claimed: review_pb2.WORK_ITEM_STATE_CLAIMED,
    StateName.decided: review_pb2.WORK_ITEM_STATE_DECIDED,
    StateName.withdrawn: review_pb2.WORK_ITEM_STATE_WITHDRAWN,
    StateName.waiting: review_pb2.WORK_ITEM_STATE_WAITING_ON_APPLICANT,
    StateName.transferred: review_pb2.WORK_ITEM_STATE_TRANSFERRED,
    StateName.closed: review_pb2.WORK_ITEM_STATE_CLOSED,
    StateName.processed: review_pb2.WORK_ITEM_STATE_PROCESSED,
}


class KindName(enum.StrEnum):
    number = "number"
    id = "id"
    mobile = "mobile"
    text = "text"


KIND_TO_WIRE = {
    KindName.number: review_pb2.SEARCH_KIND_REQUEST_NUMBER,
    KindName.id: review_pb2.SEARCH_KIND_PERSON_ID,
    KindName.mobile: review_pb2.SEARCH_KIND_MOBILE,
    KindName.text: review_pb2.SEARCH_KIND_TEXT,
}
KIND_SHOWN = {wire: name.value for name, wire in KIND_TO_WIRE.items()}


class Language(enum.StrEnum):
    """What the service's messages are printed in: Arabic by default (SPEC §2), or English."""

    ar = "ar"
    en = "en"


class SlaName(enum.StrEnum):
    on_track = "on-track"
    due_soon = "due-soon"
    breached = "breached"


SLA_TO_WIRE = {
    SlaName.on_track: review_pb2.SLA_STATE_ON_TRACK,
    SlaName.due_soon: review_pb2.SLA_STATE_DUE_SOON,
    SlaName.breached: review_pb2.SLA_STATE_BREACHED,
}


def riyadh_time(stamp: Timestamp) -> str:
    """An instant in Riyadh time, as the office reads it."""
    return stamp.ToDatetime(tzinfo=RIYADH).strftime("%Y-%m-%d %H:%M")


def state_text(item: review_pb2.WorkItem) -> str:
    state = _STATE.get(item.state, "unknown")
    if item.state == review_pb2.WORK_ITEM_STATE_DECIDED and item.decision in _DECISION:
        state = _DECISION[item.decision]
    return state


def title_line(item: review_pb2.WorkItem) -> Text:
    return line(value(item.request_number, "bold"), "  ", clean(item.request_id))


def missing_line(entry: common_pb2.MissingItem) -> Text:
    return line("  - ", clean(entry.kind), " ", clean(entry.name), ": ", value(entry.description))
