"""Intake's use cases."""

from __future__ import annotations

import uuid
from datetime import datetime

from tawasul_platform.errors import AlreadyExists, InvalidArgument, NotFound
from tawasul_platform.identity import Principal

from tawasul_intake.app.ports import ConcurrentSubmission, Documents, UnitOfWork
from tawasul_intake.domain.model import Request, Status, Submission

CONSUMER = "intake"


def _same(request: Request, submission: Submission) -> bool:
    return (
        request.sub_service_code == submission.sub_service_code
        and request.description == submission.description
        and request.document_ids == submission.document_ids
    )


async def _by_key(uow: UnitOfWork, submission: Submission) -> Request | None:
    existing = await uow.requests.get_by_idempotency_key(
        submission.applicant_id, submission.idempotency_key
    )
    if existing is not None and not _same(existing, submission):
        raise AlreadyExists(
            "this idempotency key was used for a different request", existing=existing.number
        )
    return existing


async def submit_request(
    *,
    uow: UnitOfWork,
    documents: Documents,
    token: str,
    submission: Submission,
    now: datetime,
) -> Request:
    """Stores a new request and its `submitted` event; a retried key returns the first one.

    Every attached document must have been uploaded by the same account (`token` is the
    beneficiary's own, forwarded to docs).
    """
    missing = await documents.missing(submission.document_ids, token)
    if missing:
        raise InvalidArgument(
            {
                f"document_ids[{i}]": "no such document uploaded by this account"
                for i, d in enumerate(submission.document_ids)
                if d in missing
            }
        )
    async with uow:
        existing = await _by_key(uow, submission)
        if existing is not None:
            return existing
        request = Request.submit(
            submission, id=uuid.uuid4(), number=await uow.requests.next_number(), now=now
        )
        await uow.requests.add(request)
        try:
            await uow.commit()
        except ConcurrentSubmission:
            pass
        else:
            return request
    async with uow:
        existing = await _by_key(uow, submission)
        if existing is None:
            raise RuntimeError("idempotency key conflict without a stored request")
        return existing


async def get_request(*, uow: UnitOfWork, caller: Principal, number: str) -> Request:
    """The tracking view; another account's request is reported as not found."""
    async with uow:
        request = await uow.requests.get_by_number(number.strip().upper())
    if request is None or request.applicant_id != caller.subject:
        raise NotFound(f"no request {number!r} for this account")
    return request


async def track_status(
    *,
    uow: UnitOfWork,
    event_id: str,
    request_id: uuid.UUID,
    status: Status,
    message: str,
    at: datetime,
) -> None:
    """Applies a status change published by review to the tracking view, once."""
    async with uow:
        if not await uow.claim_event(CONSUMER, event_id):
            return
        request = await uow.requests.get(request_id)
        if request is None:
            raise NotFound(f"status change for unknown request {request_id}")
        request.track(status, message, at)
        await uow.commit()
