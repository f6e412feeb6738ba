"""ReviewService and ReviewAdminService over gRPC: wire messages to use cases and back."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from tawasul.common.v1 import common_pb2
from tawasul.review.v1 import review_pb2, review_pb2_grpc
from tawasul_platform.authz import STAFF, Rule, bearer_token
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.events import timestamp
from tawasul_platform.grpc import caller
from tawasul_platform.i18n import CHARACTERS, Bilingual

from tawasul_review.app import handlers
from tawasul_review.app.ports import Attachment, Documents, QueueFilter, UnitOfWork
from tawasul_review.domain.assignment import Mode
from tawasul_review.domain.model import (
    Decision,
    HistoryEntry,
    QueuePosition,
    State,
    WorkItem,
    idempotency_key,
    missing_items,
)
from tawasul_review.domain.quality import QualityCheck, QualityPosition
from tawasul_review.domain.reviewers import Reviewer, reviewer_id
from tawasul_review.domain.search import Kind, SearchPosition, SlaState

Context = grpc.aio.ServicerContext[Any, Any]

# Employees only; which queues, cases and reviewers each may touch (their departments, a
# supervisor's or an administrator's powers) the handlers decide from review's directory.
ACCESS: dict[str, Rule] = {
    "ListQueue": STAFF,
    "ClaimNext": STAFF,
    "ClaimRequest": STAFF,
    "GetWorkItem": STAFF,
    "GetCase": STAFF,
    "DecideRequest": STAFF,
    "AddNote": STAFF,
    "MessageApplicant": STAFF,
    "RequestInformation": STAFF,
    "TransferRequest": STAFF,
    "ReleaseRequest": STAFF,
    "MarkProcessed": STAFF,
    "ListReasons": STAFF,
    "GetBacklog": STAFF,
    "Reassign": STAFF,
    "ListQualityChecks": STAFF,
    "CompleteQualityCheck": STAFF,
    "SearchRequests": STAFF,
}
ADMIN_ACCESS: dict[str, Rule] = {
    "PutReviewer": STAFF,
    "ListReviewers": STAFF,
    "GetReviewer": STAFF,
    "SetAvailability": STAFF,
    "PutQueueSettings": STAFF,
}

_STATE = {
    State.QUEUED: review_pb2.WORK_ITEM_STATE_QUEUED,
    State.CLAIMED: review_pb2.WORK_ITEM_STATE_CLAIMED,
    State.DECIDED: review_pb2.WORK_ITEM_STATE_DECIDED,
    State.WITHDRAWN: review_pb2.WORK_ITEM_STATE_WITHDRAWN,
    State.WAITING: review_pb2.WORK_ITEM_STATE_WAITING_ON_APPLICANT,
    State.TRANSFERRED: review_pb2.WORK_ITEM_STATE_TRANSFERRED,
    State.CLOSED: review_pb2.WORK_ITEM_STATE_CLOSED,
    State.PROCESSED: review_pb2.WORK_ITEM_STATE_PROCESSED,
}
_STATE_FROM_WIRE = {wire: state for state, wire in _STATE.items()}
_DECISION_TO_WIRE = {
    Decision.ACCEPT: review_pb2.DECISION_ACCEPT,
    Decision.REJECT: review_pb2.DECISION_REJECT,
}
_DECISION_FROM_WIRE = {wire: decision for decision, wire in _DECISION_TO_WIRE.items()}
_MODE_TO_WIRE = {
    Mode.PULL: review_pb2.ASSIGNMENT_MODE_PULL,
    Mode.ROUND_ROBIN: review_pb2.ASSIGNMENT_MODE_ROUND_ROBIN,
    Mode.LEAST_LOADED: review_pb2.ASSIGNMENT_MODE_LEAST_LOADED,
}
_MODE_FROM_WIRE = {wire: mode for mode, wire in _MODE_TO_WIRE.items()}
_KIND_TO_WIRE = {
    Kind.NUMBER: review_pb2.SEARCH_KIND_REQUEST_NUMBER,
    Kind.PERSON_ID: review_pb2.SEARCH_KIND_PERSON_ID,
    Kind.MOBILE: review_pb2.SEARCH_KIND_MOBILE,
    Kind.TEXT: review_pb2.SEARCH_KIND_TEXT,
}
_KIND_FROM_WIRE = {wire: kind for kind, wire in _KIND_TO_WIRE.items()}
_SLA_FROM_WIRE = {
    review_pb2.SLA_STATE_ON_TRACK: SlaState.ON_TRACK,
    review_pb2.SLA_STATE_DUE_SOON: SlaState.DUE_SOON,
    review_pb2.SLA_STATE_BREACHED: SlaState.BREACHED,
}


_CODE = re.compile(r"[A-Za-z0-9_.:-]*")
# Queue positions from page tokens stay within what the columns hold.
_RANK_LIMIT = 1_000_000
_EARLIEST, _LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
_NOT_A_TOKEN = Bilingual("not a token this service issued", "ليس رمزًا أصدرته هذه الخدمة")
_NEGATIVE = Bilingual("must not be negative", "يجب ألا يكون سالبًا")
_NOT_A_STATE = Bilingual("not a work item state", "ليست حالة من حالات الطلب في المراجعة")


def _code(name: str, raw: str, limit: int = 100) -> str:
    """A department, queue, sub-service or employee id: a short code, never free text."""
    if len(raw) > limit or not _CODE.fullmatch(raw):
        raise InvalidArgument(
            {
                name: Bilingual(
                    f"letters, digits and . _ : - only, at most {limit}",
                    f"حروف لاتينية وأرقام و . _ : - فقط، {CHARACTERS.count(limit).ar} على الأكثر",
                )
            }
        )
    return raw


def _request_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw[:45])
    except ValueError as exc:
        raise InvalidArgument(
            {"request_id": Bilingual("not a request id", "ليس معرّف طلب")}
        ) from exc


def _page_token(position: QueuePosition) -> str:
    raw = json.dumps([position.rank, position.queued_at.isoformat(), position.request_number])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _position(token: str) -> QueuePosition:
    refused = InvalidArgument({"page_token": _NOT_A_TOKEN})
    try:
        rank, queued_at, number = json.loads(base64.urlsafe_b64decode(token[:500].encode()))
        # The token held a JSON integer; int() would also read "٣" or 2.5.
        if type(rank) is not int:
            raise refused
        position = QueuePosition(rank, datetime.fromisoformat(queued_at), str(number))
        at = position.queued_at.astimezone(UTC)
    except (ValueError, TypeError, OverflowError) as exc:
        raise refused from exc
    if (
        position.queued_at.tzinfo is None
        or not -_RANK_LIMIT <= position.rank <= _RANK_LIMIT
        or not _EARLIEST <= at < _LATEST
        or not _CODE.fullmatch(position.request_number)
        or len(position.request_number) > 20
    ):
        raise refused
    return position


def _search_token(position: SearchPosition) -> str:
    raw = json.dumps([position.submitted_at.isoformat(), position.request_number])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _search_position(token: str) -> SearchPosition:
    refused = InvalidArgument({"page_token": _NOT_A_TOKEN})
    try:
        submitted_at, number = json.loads(base64.urlsafe_b64decode(token[:500].encode()))
        position = SearchPosition(datetime.fromisoformat(submitted_at), str(number))
        at = position.submitted_at.astimezone(UTC)
    except (ValueError, TypeError, OverflowError) as exc:
        raise refused from exc
    if (
        position.submitted_at.tzinfo is None
        or not _EARLIEST <= at < _LATEST
        or not _CODE.fullmatch(position.request_number)
        or len(position.request_number) > 20
    ):
        raise refused
    return position


def _quality_token(position: QualityPosition) -> str:
    raw = json.dumps([position.sampled_at.isoformat(), str(position.request_id)])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _quality_position(token: str) -> QualityPosition:
    refused = InvalidArgument({"page_token": _NOT_A_TOKEN})
    try:
        sampled_at, request_id = json.loads(base64.urlsafe_b64decode(token[:500].encode()))
        position = QualityPosition(datetime.fromisoformat(sampled_at), uuid.UUID(request_id))
        at = position.sampled_at.astimezone(UTC)
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise refused from exc
    if position.sampled_at.tzinfo is None or not _EARLIEST <= at < _LATEST:
        raise refused
    return position


def _instant(name: str, stamp: Any, present: bool) -> datetime | None:
    if not present:
        return None
    try:
        at: datetime = stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument({name: Bilingual("not a valid time", "ليس وقتًا صحيحًا")}) from exc
    if not _EARLIEST <= at < _LATEST:
        raise InvalidArgument({name: Bilingual("between 2000 and 2100", "بين عامَي 2000 و2100")})
    return at


class ReviewServicer(review_pb2_grpc.ReviewServiceServicer):
    def __init__(
        self,
        *,
        uow: Callable[[], UnitOfWork],
        documents: Documents,
        policy: handlers.Policy,
        now: Callable[[], datetime],
    ) -> None:
        self._uow = uow
        self._documents = documents
        self._policy = policy
        self._now = now

    def to_wire(self, item: WorkItem) -> review_pb2.WorkItem:
        wire = review_pb2.WorkItem(
            request_id=str(item.request_id),
            request_number=item.request_number,
            department_code=item.department,
            sub_service_code=item.sub_service_code,
            description=item.description,
            state=_STATE[item.state],
            assignee_id=item.assignee,
            decision=(
                _DECISION_TO_WIRE[item.decision]
                if item.decision
                else review_pb2.DECISION_UNSPECIFIED
            ),
            queued_at=timestamp(item.queued_at),
            document_ids=list(item.document_ids),
            priority=item.priority,
            reason_code=item.reason_code,
            missing=[
                common_pb2.MissingItem(kind=m.kind, name=m.name, description=m.description)
                for m in item.missing
            ],
            sla_percent_used=item.percent_used(self._policy.calendar, self._now()),
            submitted_at=timestamp(item.clock.started_at),
            appeal_of_reviewer_id=item.appeal_of,
            subject_id=item.subject_id,
            subject_names=list(item.names),
            fields=item.fields,
            cites_request_number=item.cites_request_number,
        )
        if item.due_at is not None:
            wire.due_at.CopyFrom(timestamp(item.due_at))
        if item.claimed_until is not None:
            wire.claimed_until.CopyFrom(timestamp(item.claimed_until))
        if item.respond_by is not None:
            wire.respond_by.CopyFrom(timestamp(item.respond_by))
        return wire

    async def ListQueue(
        self, request: review_pb2.ListQueueRequest, context: Context
    ) -> review_pb2.ListQueueResponse:
        if request.page_size < 0:
            raise InvalidArgument({"page_size": _NEGATIVE})
        state = None
        if request.state:
            state = _STATE_FROM_WIRE.get(request.state)
            if state is None:
                raise InvalidArgument({"state": _NOT_A_STATE})
        items, following = await handlers.list_queue(
            uow=self._uow(),
            reviewer=caller(),
            department=_code("department_code", request.department_code, 50),
            limit=request.page_size,
            after=_position(request.page_token) if request.page_token else None,
            filters=QueueFilter(
                sub_service_code=_code("sub_service_code", request.sub_service_code),
                assignee=_code("assignee_id", request.assignee_id, 50),
                state=state,
            ),
        )
        return review_pb2.ListQueueResponse(
            items=[self.to_wire(i) for i in items],
            next_page_token=_page_token(following) if following else "",
        )

    async def ClaimNext(
        self, request: review_pb2.ClaimNextRequest, context: Context
    ) -> review_pb2.ClaimNextResponse:
        item = await handlers.claim_next(
            uow=self._uow(),
            reviewer=caller(),
            department=_code("department_code", request.department_code, 50),
            policy=self._policy,
            now=self._now(),
            key=idempotency_key(request.idempotency_key),
        )
        return review_pb2.ClaimNextResponse(item=self.to_wire(item) if item else None)

    async def ClaimRequest(
        self, request: review_pb2.ClaimRequestRequest, context: Context
    ) -> review_pb2.ClaimRequestResponse:
        item = await handlers.claim(
            uow=self._uow(),
            reviewer=caller(),
            request_id=_request_id(request.request_id),
            now=self._now(),
            policy=self._policy,
        )
        return review_pb2.ClaimRequestResponse(item=self.to_wire(item))

    async def GetWorkItem(
        self, request: review_pb2.GetWorkItemRequest, context: Context
    ) -> review_pb2.GetWorkItemResponse:
        item, attachments = await handlers.open_item(
            uow=self._uow(),
            documents=self._documents,
            reviewer=caller(),
            token=bearer_token(context),
            request_id=_request_id(request.request_id),
        )
        return review_pb2.GetWorkItemResponse(
            item=self.to_wire(item),
            attachments=[_attachment(a) for a in attachments or ()],
            documents_unavailable=attachments is None,
        )

    async def GetCase(
        self, request: review_pb2.GetCaseRequest, context: Context
    ) -> review_pb2.GetCaseResponse:
        case = await handlers.open_case(
            uow=self._uow(),
            documents=self._documents,
            reviewer=caller(),
            token=bearer_token(context),
            request_id=_request_id(request.request_id),
        )
        return review_pb2.GetCaseResponse(
            item=self.to_wire(case.item),
            attachments=[_attachment(a) for a in case.attachments or ()],
            history=[_history(h) for h in case.history],
            documents_unavailable=case.attachments is None,
            corrects=self._rejection(case.corrects) if case.corrects else None,
        )

    def _rejection(self, item: WorkItem) -> review_pb2.CitedRejection:
        reason = self._policy.reasons.get(item.reason_code)
        return review_pb2.CitedRejection(
            request_id=str(item.request_id),
            request_number=item.request_number,
            reason_code=item.reason_code,
            reason=common_pb2.LocalizedText(ar=reason.ar, en=reason.en) if reason else None,
            message=item.decision_message,
        )

    async def DecideRequest(
        self, request: review_pb2.DecideRequestRequest, context: Context
    ) -> review_pb2.DecideRequestResponse:
        decision = _DECISION_FROM_WIRE.get(request.decision)
        if decision is None:
            raise InvalidArgument(
                {
                    "decision": Bilingual(
                        "DECISION_ACCEPT or DECISION_REJECT", "DECISION_ACCEPT أو DECISION_REJECT"
                    )
                }
            )
        item = await handlers.decide(
            uow=self._uow(),
            reviewer=caller(),
            request_id=_request_id(request.request_id),
            decision=decision,
            message=request.message,
            reason_code=_code("reason_code", request.reason_code, 50),
            policy=self._policy,
            now=self._now(),
        )
        return review_pb2.DecideRequestResponse(item=self.to_wire(item))

    async def MarkProcessed(
        self, request: review_pb2.MarkProcessedRequest, context: Context
    ) -> review_pb2.MarkProcessedResponse:
        item = await handlers.mark_processed(
            uow=self._uow(),
            reviewer=caller(),
            request_id=_request_id(request.request_id),
            message=request.message,
            policy=self._policy,
            now=self._now(),
        )
        return review_pb2.MarkProcessedResponse(item=self.to_wire(item))

    async def AddNote(
        self, request: review_pb2.AddNoteRequest, context: Context
    ) -> review_pb2.AddNoteResponse:
        item = await handlers.add_note(
            uow=self._uow(),
            reviewer=caller(),
            request_id=_request_id(request.request_id),
            text=request.text,
            policy=self._policy,
            now=self._now(),
        )
        return review_pb2.AddNoteResponse(item=self.to_wire(item))

    async def MessageApplicant(
        self, request: review_pb2.MessageApplicantRequest, context: Context
    ) -> review_pb2.MessageApplicantResponse:
        item = await handlers.message_applicant(
            uow=self._uow(),
            reviewer=caller(),
            request_id=_request_id(request.request_id),
            text=request.text,
            policy=self._policy,
            now=self._now(),
        )
        return review_pb2.MessageApplicantResponse(item=self.to_wire(item))

    async def RequestInformation(
        self, request: review_pb2.RequestInformationRequest, context: Context
    ) -> review_pb2.RequestInformationResponse:
        item = await handlers.request_information(
            uow=self._uow(),
            reviewer=caller(),
            request_id=_request_id(request.request_id),
            missing=missing_items([(m.kind, m.name, m.description) for m in request.missing]),
            message=request.message,
            within_working_days=request.respond_within_working_days,
            policy=self._policy,
            now=self._now(),
        )
        return review_pb2.RequestInformationResponse(item=self.to_wire(item))

    async def TransferRequest(
        self, request: review_pb2.TransferRequestRequest, context: Context
    ) -> review_pb2.TransferRequestResponse:
        item = await handlers.transfer(
            uow=self._uow(),
            reviewer=caller(),
            request_id=_request_id(request.request_id),
            department=_code("department_code", request.department_code, 50),
            reason=request.reason,
            policy=self._policy,
            now=self._now(),
        )
        return review_pb2.TransferRequestResponse(item=self.to_wire(item))

    async def ReleaseRequest(
        self, request: review_pb2.ReleaseRequestRequest, context: Context
    ) -> review_pb2.ReleaseRequestResponse:
        item = await handlers.release(
            uow=self._uow(),
            reviewer=caller(),
            request_id=_request_id(request.request_id),
            policy=self._policy,
            now=self._now(),
        )
        return review_pb2.ReleaseRequestResponse(item=self.to_wire(item))

    async def ListReasons(
        self, request: review_pb2.ListReasonsRequest, context: Context
    ) -> review_pb2.ListReasonsResponse:
        return review_pb2.ListReasonsResponse(
            reasons=[
                review_pb2.Reason(
                    code=r.code,
                    text=common_pb2.LocalizedText(ar=r.ar, en=r.en),
                    decisions=sorted(d.value for d in r.decisions),
                )
                for r in self._policy.reasons.values()
            ]
        )

    async def GetBacklog(
        self, request: review_pb2.GetBacklogRequest, context: Context
    ) -> review_pb2.GetBacklogResponse:
        rows: list[Any] = await handlers.backlog(
            uow=self._uow(),
            reviewer=caller(),
            department=_code("department_code", request.department_code, 50),
            policy=self._policy,
            now=self._now(),
        )
        queues = []
        for row in rows:
            backlog = review_pb2.QueueBacklog(
                queue=row.queue,
                size=row.size,
                due_soon=row.due_soon,
                breached=row.breached,
                waiting_on_applicant=row.waiting,
            )
            if row.oldest is not None:
                backlog.oldest_queued_at.CopyFrom(timestamp(row.oldest))
            queues.append(backlog)
        return review_pb2.GetBacklogResponse(queues=queues)

    async def Reassign(
        self, request: review_pb2.ReassignRequest, context: Context
    ) -> review_pb2.ReassignResponse:
        item = await handlers.reassign(
            uow=self._uow(),
            supervisor=caller(),
            request_id=_request_id(request.request_id),
            reviewer_id=_code("reviewer_id", request.reviewer_id, 50),
            policy=self._policy,
            now=self._now(),
        )
        return review_pb2.ReassignResponse(item=self.to_wire(item))

    async def SearchRequests(
        self, request: review_pb2.SearchRequestsRequest, context: Context
    ) -> review_pb2.SearchRequestsResponse:
        if request.page_size < 0:
            raise InvalidArgument({"page_size": _NEGATIVE})
        kind = None
        if request.kind:
            kind = _KIND_FROM_WIRE.get(request.kind)
            if kind is None:
                raise InvalidArgument({"kind": Bilingual("not a search kind", "ليس نوع بحث")})
        sla = None
        if request.sla_state:
            sla = _SLA_FROM_WIRE.get(request.sla_state)
            if sla is None:
                raise InvalidArgument(
                    {"sla_state": Bilingual("not an SLA state", "ليست حالة من حالات مدة الإنجاز")}
                )
        states = []
        # Each state once; the platform's limits bound the list.
        for index, wire in enumerate(request.states):
            state = _STATE_FROM_WIRE.get(wire)
            if state is None:
                raise InvalidArgument({f"states[{index}]": _NOT_A_STATE})
            states.append(state)
        found = await handlers.search(
            uow=self._uow(),
            reviewer=caller(),
            query=request.query,
            kind=kind,
            filters=handlers.SearchFilters(
                department=_code("department_code", request.department_code, 50),
                sub_service_code=_code("sub_service_code", request.sub_service_code),
                states=tuple(dict.fromkeys(states)),
                submitted_from=_instant(
                    "submitted_from", request.submitted_from, request.HasField("submitted_from")
                ),
                submitted_before=_instant(
                    "submitted_before",
                    request.submitted_before,
                    request.HasField("submitted_before"),
                ),
                sla=sla,
            ),
            limit=request.page_size,
            after=_search_position(request.page_token) if request.page_token else None,
            policy=self._policy,
            now=self._now(),
        )
        return review_pb2.SearchRequestsResponse(
            items=[self.to_wire(i) for i in found.items],
            next_page_token=_search_token(found.following) if found.following else "",
            suggestions=[self.to_wire(i) for i in found.suggestions],
            kind=_KIND_TO_WIRE[found.kind],
        )

    async def ListQualityChecks(
        self, request: review_pb2.ListQualityChecksRequest, context: Context
    ) -> review_pb2.ListQualityChecksResponse:
        if request.page_size < 0:
            raise InvalidArgument({"page_size": _NEGATIVE})
        checks, following = await handlers.quality_checks(
            uow=self._uow(),
            reviewer=caller(),
            department=_code("department_code", request.department_code, 50),
            include_done=request.include_done,
            limit=request.page_size,
            after=_quality_position(request.page_token) if request.page_token else None,
        )
        return review_pb2.ListQualityChecksResponse(
            checks=[_check(c) for c in checks],
            next_page_token=_quality_token(following) if following else "",
        )

    async def CompleteQualityCheck(
        self, request: review_pb2.CompleteQualityCheckRequest, context: Context
    ) -> review_pb2.CompleteQualityCheckResponse:
        check = await handlers.complete_quality_check(
            uow=self._uow(),
            reviewer=caller(),
            request_id=_request_id(request.request_id),
            verdict=request.verdict[:20],
            note=request.note,
            now=self._now(),
        )
        return review_pb2.CompleteQualityCheckResponse(check=_check(check))


class ReviewAdminServicer(review_pb2_grpc.ReviewAdminServiceServicer):
    def __init__(
        self,
        *,
        uow: Callable[[], UnitOfWork],
        policy: handlers.Policy,
        now: Callable[[], datetime],
    ) -> None:
        self._uow = uow
        self._policy = policy
        self._now = now

    async def PutReviewer(
        self, request: review_pb2.PutReviewerRequest, context: Context
    ) -> review_pb2.PutReviewerResponse:
        who = caller()
        r = request.reviewer
        reviewer = Reviewer.create(
            reviewer_id=r.reviewer_id,
            departments=list(r.departments)[:20],
            languages=list(r.languages)[:20],
            capacity=r.capacity,
            available=r.available,
            supervises=list(r.supervises)[:20],
            known_departments=frozenset(self._policy.catalog.departments),
        )
        stored = await handlers.put_reviewer(
            uow=self._uow(), caller=who, reviewer=reviewer, policy=self._policy, now=self._now()
        )
        return review_pb2.PutReviewerResponse(reviewer=_reviewer(stored))

    async def ListReviewers(
        self, request: review_pb2.ListReviewersRequest, context: Context
    ) -> review_pb2.ListReviewersResponse:
        found = await handlers.list_reviewers(
            uow=self._uow(),
            caller=caller(),
            department=_code("department_code", request.department_code, 50),
            policy=self._policy,
        )
        return review_pb2.ListReviewersResponse(reviewers=[_reviewer(r) for r in found])

    async def GetReviewer(
        self, request: review_pb2.GetReviewerRequest, context: Context
    ) -> review_pb2.GetReviewerResponse:
        found = await handlers.get_reviewer(
            uow=self._uow(),
            caller=caller(),
            reviewer_id=reviewer_id(request.reviewer_id),
            policy=self._policy,
        )
        return review_pb2.GetReviewerResponse(reviewer=_reviewer(found))

    async def SetAvailability(
        self, request: review_pb2.SetAvailabilityRequest, context: Context
    ) -> review_pb2.SetAvailabilityResponse:
        updated = await handlers.set_availability(
            uow=self._uow(),
            caller=caller(),
            reviewer_id=_code("reviewer_id", request.reviewer_id, 50),
            available=request.available,
            policy=self._policy,
            now=self._now(),
        )
        return review_pb2.SetAvailabilityResponse(reviewer=_reviewer(updated))

    async def PutQueueSettings(
        self, request: review_pb2.PutQueueSettingsRequest, context: Context
    ) -> review_pb2.PutQueueSettingsResponse:
        mode = _MODE_FROM_WIRE.get(request.settings.mode)
        if mode is None:
            raise InvalidArgument(
                {
                    "settings.mode": Bilingual(
                        "pull, round-robin or least-loaded", "pull أو round-robin أو least-loaded"
                    )
                }
            )
        queue, stored = await handlers.put_queue_settings(
            uow=self._uow(),
            caller=caller(),
            queue=_code("settings.queue", request.settings.queue),
            mode=mode,
            policy=self._policy,
            now=self._now(),
        )
        return review_pb2.PutQueueSettingsResponse(
            settings=review_pb2.QueueSettings(queue=queue, mode=_MODE_TO_WIRE[stored])
        )


def _check(c: QualityCheck) -> review_pb2.QualityCheck:
    return review_pb2.QualityCheck(
        request_id=str(c.request_id),
        request_number=c.request_number,
        department_code=c.department,
        decision=_DECISION_TO_WIRE[c.decision],
        decided_by=c.decided_by,
        sampled_at=timestamp(c.sampled_at),
        checked_by=c.checked_by,
        verdict=c.verdict.value if c.verdict else "",
        note=c.note,
        replaced_decision=(
            _DECISION_TO_WIRE[c.replaced_decision]
            if c.replaced_decision
            else review_pb2.DECISION_UNSPECIFIED
        ),
        replaced_by=c.replaced_by,
    )


def _attachment(a: Attachment) -> review_pb2.Attachment:
    return review_pb2.Attachment(
        document_id=a.document_id,
        filename=a.filename,
        content_type=a.content_type,
        size_bytes=a.size_bytes,
        download_url=a.download_url,
        url_expires_at=timestamp(a.url_expires_at) if a.url_expires_at else None,
        unreadable=a.unreadable,
        document_kind=a.kind,
    )


def _history(h: HistoryEntry) -> review_pb2.HistoryEntry:
    return review_pb2.HistoryEntry(
        at=timestamp(h.at), actor=h.actor, action=h.action, text=h.note, internal=h.internal
    )


def _reviewer(r: Reviewer) -> review_pb2.Reviewer:
    return review_pb2.Reviewer(
        reviewer_id=r.reviewer_id,
        departments=sorted(r.departments),
        languages=sorted(r.languages),
        capacity=r.capacity,
        available=r.available,
        supervises=sorted(r.supervises),
    )
