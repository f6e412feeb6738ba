"""The request as intake knows it: what the beneficiary submitted and its tracking status."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tawasul_platform.catalog import Catalog
from tawasul_platform.errors import InvalidArgument, PermissionDenied
from tawasul_platform.identity import Principal, Role

from tawasul_intake.domain.identity import id_number_problem, normalize_mobile

MIN_DESCRIPTION = 20
MAX_DESCRIPTION = 4000
MAX_DOCUMENTS = 10
MAX_IDEMPOTENCY_KEY = 100


class Status(StrEnum):
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Locale(StrEnum):
    AR = "ar"
    EN = "en"


@dataclass(frozen=True)
class Contact:
    mobile: str
    email: str = ""
    locale: Locale = Locale.AR


@dataclass(frozen=True)
class Submission:
    """A validated new request, before it has a number."""

    applicant_id: str
    idempotency_key: str
    sub_service_code: str
    description: str
    document_ids: tuple[uuid.UUID, ...]
    contact: Contact


@dataclass
class Request:
    id: uuid.UUID
    number: str
    applicant_id: str
    idempotency_key: str
    sub_service_code: str
    description: str
    document_ids: tuple[uuid.UUID, ...]
    contact: Contact
    status: Status
    submitted_at: datetime
    updated_at: datetime
    decision_message: str = ""
    events: list[RequestSubmitted] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def submit(
        cls, submission: Submission, *, id: uuid.UUID, number: str, now: datetime
    ) -> Request:
        request = cls(
            id=id,
            number=number,
            applicant_id=submission.applicant_id,
            idempotency_key=submission.idempotency_key,
            sub_service_code=submission.sub_service_code,
            description=submission.description,
            document_ids=submission.document_ids,
            contact=submission.contact,
            status=Status.SUBMITTED,
            submitted_at=now,
            updated_at=now,
        )
        request.events.append(RequestSubmitted(request=request))
        return request

    def track(self, status: Status, message: str, at: datetime) -> None:
        """Mirrors a status change decided by review into the tracking view."""
        self.status = status
        self.updated_at = at
        if status in (Status.ACCEPTED, Status.REJECTED):
            self.decision_message = message


@dataclass(frozen=True)
class RequestSubmitted:
    request: Request


_IDENTITY_PREFIX = {Role.CITIZEN: "1", Role.RESIDENT: "2"}


def validate_submission(
    *,
    caller: Principal,
    catalog: Catalog,
    idempotency_key: str,
    sub_service_code: str,
    description: str,
    document_ids: list[str],
    mobile: str,
    email: str,
    locale: str,
) -> Submission:
    """Checks everything the beneficiary typed; reports every bad field at once."""
    if not caller.is_beneficiary:
        raise PermissionDenied("only beneficiaries submit requests")
    problems: dict[str, str] = {}
    prefix = _IDENTITY_PREFIX.get(caller.role)
    if prefix and (problem := id_number_problem(caller.subject, first_digit=prefix)):
        problems["applicant_id"] = f"the account's ID number {problem}"
    key = idempotency_key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        problems["idempotency_key"] = f"required, at most {MAX_IDEMPOTENCY_KEY} characters"
    sub_service = catalog.sub_services.get(sub_service_code)
    if sub_service is None:
        problems["sub_service_code"] = f"unknown sub-service {sub_service_code!r}"
    elif caller.role not in sub_service.filers:
        problems["sub_service_code"] = f"a {caller.role.value} cannot file {sub_service_code!r}"
    text = " ".join(description.split())
    if len(text) < MIN_DESCRIPTION:
        problems["description"] = (
            f"describe the problem precisely, at least {MIN_DESCRIPTION} characters"
        )
    elif len(text) > MAX_DESCRIPTION:
        problems["description"] = f"at most {MAX_DESCRIPTION} characters"
    documents: list[uuid.UUID] = []
    if len(document_ids) > MAX_DOCUMENTS:
        problems["document_ids"] = f"at most {MAX_DOCUMENTS} documents"
    for index, raw in enumerate(document_ids):
        try:
            documents.append(uuid.UUID(raw))
        except ValueError:
            problems[f"document_ids[{index}]"] = "not a document id"
    normalized = normalize_mobile(mobile)
    if normalized is None:
        problems["contact.mobile"] = "a Saudi mobile number, 05XXXXXXXX or +9665XXXXXXXX"
    if email and ("@" not in email or len(email) > 254):
        problems["contact.email"] = "not an e-mail address"
    if locale not in ("", *Locale):
        problems["contact.locale"] = "'ar' or 'en'"
    if problems:
        raise InvalidArgument(problems)
    return Submission(
        applicant_id=caller.subject,
        idempotency_key=key,
        sub_service_code=sub_service_code,
        description=text,
        document_ids=tuple(dict.fromkeys(documents)),
        contact=Contact(mobile=normalized or "", email=email, locale=Locale(locale or "ar")),
    )
