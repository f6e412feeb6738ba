"""PostgreSQL-backed repository and unit of work for intake."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Self

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tawasul_platform.uow import Messaging, SqlUnitOfWork

from tawasul_intake.adapters import tables
from tawasul_intake.adapters.events import to_event
from tawasul_intake.app.ports import ConcurrentSubmission
from tawasul_intake.domain.model import Contact, Locale, Request, Status

SERVICE = "intake"


def _row(request: Request) -> dict[str, Any]:
    return {
        "id": request.id,
        "number": request.number,
        "applicant_id": request.applicant_id,
        "idempotency_key": request.idempotency_key,
        "sub_service_code": request.sub_service_code,
        "description": request.description,
        "document_ids": [str(d) for d in request.document_ids],
        "contact": {
            "mobile": request.contact.mobile,
            "email": request.contact.email,
            "locale": request.contact.locale.value,
        },
        "status": request.status.value,
        "decision_message": request.decision_message,
        "submitted_at": request.submitted_at,
        "updated_at": request.updated_at,
    }


def _request(row: Row[Any]) -> Request:
    contact = row.contact
    return Request(
        id=row.id,
        number=row.number,
        applicant_id=row.applicant_id,
        idempotency_key=row.idempotency_key,
        sub_service_code=row.sub_service_code,
        description=row.description,
        document_ids=tuple(uuid.UUID(d) for d in row.document_ids),
        contact=Contact(
            mobile=contact["mobile"], email=contact["email"], locale=Locale(contact["locale"])
        ),
        status=Status(row.status),
        decision_message=row.decision_message,
        submitted_at=row.submitted_at,
        updated_at=row.updated_at,
    )


class SqlRequestRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: dict[uuid.UUID, Request] = {}
        self._new: set[uuid.UUID] = set()

    async def add(self, request: Request) -> None:
        self.seen[request.id] = request
        self._new.add(request.id)

    async def get(self, request_id: uuid.UUID) -> Request | None:
        return await self._one(tables.requests.c.id == request_id)

    async def get_by_number(self, number: str) -> Request | None:
        return await self._one(tables.requests.c.number == number)

    async def get_by_idempotency_key(self, applicant_id: str, key: str) -> Request | None:
        t = tables.requests.c
        return await self._one((t.applicant_id == applicant_id) & (t.idempotency_key == key))

    async def next_number(self) -> str:
        sequence = await self._session.scalar(tables.request_number_seq.next_value().select())
        return f"TW{datetime.now(UTC):%y}{sequence:08d}"

    async def flush(self) -> None:
        t = tables.requests
        for request in self.seen.values():
            if request.id in self._new:
                await self._session.execute(insert(t).values(_row(request)))
            else:
                await self._session.execute(
                    update(t)
                    .where(t.c.id == request.id)
                    .values(
                        status=request.status.value,
                        decision_message=request.decision_message,
                        updated_at=request.updated_at,
                    )
                )
        self._new.clear()

    async def _one(self, where: Any) -> Request | None:
        row = (await self._session.execute(select(tables.requests).where(where))).first()
        if row is None:
            return None
        return self.seen.setdefault(row.id, _request(row))


class IntakeUnitOfWork(SqlUnitOfWork):
    requests: SqlRequestRepository

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessions, Messaging(SERVICE, tables.outbox, tables.inbox))

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.requests = SqlRequestRepository(self.session)
        return self

    async def commit(self) -> None:
        try:
            await self.requests.flush()
            for request in self.requests.seen.values():
                for event in request.events:
                    self.publish(to_event(event))
                request.events.clear()
            await super().commit()
        except IntegrityError as exc:
            if "requests_idempotency" in str(exc.orig):
                raise ConcurrentSubmission from exc
            raise
