"""Who may call what, tried for real: every RPC of every service × ten kinds of caller.

The expected column sets below are the access policy; the test fails when the stack disagrees,
when a service offers an RPC this table does not list, and when docs/authorization.md is not
the table it produces. "Allowed" means the call got past authentication and authorization
(its answer may still be INVALID_ARGUMENT or FAILED_PRECONDITION); "refused" means
UNAUTHENTICATED, PERMISSION_DENIED, or NOT_FOUND for what is someone else's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tawasul.docs.v1 import docs_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul.notify.v1 import notify_pb2
from tawasul.review.v1 import review_pb2
from tawasul.routing.v1 import routing_pb2
from tawasul_devstack.identity import DevIdentity
from tawasul_devstack.journey import Clients, eventually, new_citizen, sample_pdf
from tawasul_devstack.stack import SERVICES, Stack
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role

from tests.e2e.direct import sql

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "authorization.md"
TIMEOUT = DEFAULT_DEADLINE_SECONDS
# Only this module files corrections, so the department's queue holds only its requests.
DEPARTMENT = "corrections"
SUB_SERVICE = "corrections.name-or-birth-date"
ESTABLISHMENT_ID = "7000000005"

CALLERS = (
    "owner",
    "other citizen",
    "establishment",
    "reviewer",
    "other department",
    "supervisor",
    "no token",
    "expired",
    "wrong issuer",
    "wrong audience",
)
EVERYONE = frozenset(CALLERS)
BENEFICIARIES = frozenset({"owner", "other citizen", "establishment"})
OWNER = frozenset({"owner"})
STAFF = frozenset({"reviewer", "other department", "supervisor"})
DEPARTMENT_STAFF = frozenset({"reviewer", "supervisor"})
SUPERVISOR = frozenset({"supervisor"})
READERS = frozenset({"owner", "reviewer", "supervisor"})
SIGNED_IN = BENEFICIARIES | STAFF
NOBODY: frozenset[str] = frozenset()
AUTH_REFUSALS = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
# NOT_FOUND is a refusal of what is someone else's; a public call's NOT_FOUND (tracking that
# matches nothing) is its ordinary answer.
REFUSED = {*AUTH_REFUSALS, grpc.StatusCode.NOT_FOUND}


@dataclass
class World:
    """What the calls refer to: one request of the owner's in the department, with a
    document; another to cancel."""

    clients: Clients
    owner_id: str
    number: str
    request_id: str
    document_id: str
    cancel_number: str


def _upload_parts() -> Iterator[docs_pb2.UploadDocumentRequest]:
    yield docs_pb2.UploadDocumentRequest(
        metadata=docs_pb2.DocumentMetadata(
            filename="matrix.pdf", declared_content_type="application/pdf"
        )
    )
    yield docs_pb2.UploadDocumentRequest(chunk=sample_pdf("matrix"))


INTAKE = "tawasul.intake.v1.IntakeService"
DOCS = "tawasul.docs.v1.DocsService"
NOTIFY = "tawasul.notify.v1.NotifyService"
ROUTING = "tawasul.routing.v1.RoutingService"
REVIEW = "tawasul.review.v1.ReviewService"
ADMIN = "tawasul.review.v1.ReviewAdminService"
# Which of Clients' stubs serves each service.
STUBS = {
    INTAKE: "intake",
    DOCS: "docs",
    NOTIFY: "notify",
    ROUTING: "routing",
    REVIEW: "review",
    ADMIN: "review_admin",
}

# Per RPC: its request about the world, and who gets through. Order matters where a call
# changes the world (the claim before the release).
MATRIX: dict[str, tuple[Callable[[World], Any], frozenset[str]]] = {
    f"{INTAKE}/GetCatalog": (lambda w: intake_pb2.GetCatalogRequest(), EVERYONE),
    f"{INTAKE}/StartTracking": (
        lambda w: intake_pb2.StartTrackingRequest(),
        EVERYONE,
    ),
    f"{INTAKE}/TrackRequest": (
        lambda w: intake_pb2.TrackRequestRequest(),
        EVERYONE,
    ),
    f"{INTAKE}/SubmitRequest": (
        lambda w: intake_pb2.SubmitRequestRequest(),
        BENEFICIARIES,
    ),
    f"{INTAKE}/GetRequest": (
        lambda w: intake_pb2.GetRequestRequest(request_number=w.number),
        OWNER,
    ),
    f"{INTAKE}/ListMyRequests": (
        lambda w: intake_pb2.ListMyRequestsRequest(),
        BENEFICIARIES,
    ),
    f"{INTAKE}/FollowUp": (
        lambda w: intake_pb2.FollowUpRequest(request_number=w.number, message="Any news?"),
        OWNER,
    ),
    f"{INTAKE}/RespondToInfoRequest": (
        lambda w: intake_pb2.RespondToInfoRequestRequest(
            request_number=w.number, message="Attached."
        ),
        OWNER,
    ),
    f"{INTAKE}/AppealRejection": (
        lambda w: intake_pb2.AppealRejectionRequest(
            request_number=w.number, reason="The documents are right."
        ),
        OWNER,
    ),
    f"{INTAKE}/CancelRequest": (
        lambda w: intake_pb2.CancelRequestRequest(
            request_number=w.cancel_number, reason="Filed twice"
        ),
        OWNER,
    ),
    f"{DOCS}/UploadDocument": (
        lambda w: _upload_parts(),
        BENEFICIARIES,
    ),
    f"{DOCS}/GetDocument": (
        lambda w: docs_pb2.GetDocumentRequest(document_id=w.document_id),
        READERS,
    ),
    f"{DOCS}/GetDownloadUrl": (
        lambda w: docs_pb2.GetDownloadUrlRequest(document_id=w.document_id),
        READERS,
    ),
    f"{NOTIFY}/ListDeliveries": (
        lambda w: notify_pb2.ListDeliveriesRequest(request_id=w.request_id),
        READERS,
    ),
    f"{NOTIFY}/SendOneTimeCode": (
        lambda w: notify_pb2.SendOneTimeCodeRequest(
            request_id=w.request_id, mobile="0551234567", code="123456", valid_minutes=5
        ),
        NOBODY,
    ),
    f"{NOTIFY}/ListInbox": (
        lambda w: notify_pb2.ListInboxRequest(),
        SIGNED_IN,
    ),
    f"{NOTIFY}/MarkInboxRead": (
        lambda w: notify_pb2.MarkInboxReadRequest(),
        SIGNED_IN,
    ),
    f"{NOTIFY}/PreviewTemplate": (
        lambda w: notify_pb2.PreviewTemplateRequest(kind="submitted", channel="sms"),
        STAFF,
    ),
    f"{ROUTING}/GetDecision": (
        lambda w: routing_pb2.GetDecisionRequest(request_id=w.request_id),
        DEPARTMENT_STAFF,
    ),
    f"{ROUTING}/ExplainRoute": (
        lambda w: routing_pb2.ExplainRouteRequest(sub_service_code=SUB_SERVICE),
        STAFF,
    ),
    f"{REVIEW}/ListQueue": (
        lambda w: review_pb2.ListQueueRequest(department_code=DEPARTMENT),
        DEPARTMENT_STAFF,
    ),
    f"{REVIEW}/GetWorkItem": (
        lambda w: review_pb2.GetWorkItemRequest(request_id=w.request_id),
        DEPARTMENT_STAFF,
    ),
    f"{REVIEW}/GetCase": (
        lambda w: review_pb2.GetCaseRequest(request_id=w.request_id),
        DEPARTMENT_STAFF,
    ),
    f"{REVIEW}/ListReasons": (lambda w: review_pb2.ListReasonsRequest(), STAFF),
    f"{REVIEW}/ClaimNext": (
        lambda w: review_pb2.ClaimNextRequest(department_code=DEPARTMENT),
        DEPARTMENT_STAFF,
    ),
    f"{REVIEW}/ClaimRequest": (
        lambda w: review_pb2.ClaimRequestRequest(request_id=w.request_id),
        DEPARTMENT_STAFF,
    ),
    f"{REVIEW}/AddNote": (
        lambda w: review_pb2.AddNoteRequest(request_id=w.request_id, text="Checked the ID."),
        DEPARTMENT_STAFF,
    ),
    f"{REVIEW}/MessageApplicant": (
        lambda w: review_pb2.MessageApplicantRequest(request_id=w.request_id, text="We are on it."),
        DEPARTMENT_STAFF,
    ),
    f"{REVIEW}/RequestInformation": (
        lambda w: review_pb2.RequestInformationRequest(request_id=w.request_id),
        DEPARTMENT_STAFF,
    ),
    f"{REVIEW}/DecideRequest": (
        lambda w: review_pb2.DecideRequestRequest(
            request_id=w.request_id,
            decision=review_pb2.DECISION_ACCEPT,
            message="Corrected in the records.",
        ),
        DEPARTMENT_STAFF,
    ),
    f"{REVIEW}/TransferRequest": (
        lambda w: review_pb2.TransferRequestRequest(
            request_id=w.request_id, department_code="visas", reason="A visa matter"
        ),
        DEPARTMENT_STAFF,
    ),
    f"{REVIEW}/ReleaseRequest": (
        lambda w: review_pb2.ReleaseRequestRequest(request_id=w.request_id),
        DEPARTMENT_STAFF,
    ),
    f"{REVIEW}/MarkProcessed": (
        lambda w: review_pb2.MarkProcessedRequest(request_id=w.request_id),
        DEPARTMENT_STAFF,
    ),
    f"{REVIEW}/GetBacklog": (
        lambda w: review_pb2.GetBacklogRequest(department_code=DEPARTMENT),
        SUPERVISOR,
    ),
    f"{REVIEW}/Reassign": (
        lambda w: review_pb2.ReassignRequest(request_id=w.request_id, reviewer_id="E7001"),
        SUPERVISOR,
    ),
    f"{REVIEW}/ListQualityChecks": (
        lambda w: review_pb2.ListQualityChecksRequest(department_code=DEPARTMENT),
        SUPERVISOR,
    ),
    f"{REVIEW}/CompleteQualityCheck": (
        lambda w: review_pb2.CompleteQualityCheckRequest(request_id=w.request_id, verdict="agree"),
        DEPARTMENT_STAFF,
    ),
    f"{REVIEW}/SearchRequests": (
        lambda w: review_pb2.SearchRequestsRequest(department_code=DEPARTMENT),
        DEPARTMENT_STAFF,
    ),
    f"{ADMIN}/ListReviewers": (
        lambda w: review_pb2.ListReviewersRequest(department_code=DEPARTMENT),
        DEPARTMENT_STAFF,
    ),
    f"{ADMIN}/PutReviewer": (
        lambda w: review_pb2.PutReviewerRequest(
            reviewer=review_pb2.Reviewer(
                reviewer_id="E7009",
                departments=[DEPARTMENT],
                languages=["ar"],
                capacity=5,
                available=True,
            )
        ),
        SUPERVISOR,
    ),
    # The reviewer the supervisor's PutReviewer just stored in the department.
    f"{ADMIN}/GetReviewer": (
        lambda w: review_pb2.GetReviewerRequest(reviewer_id="E7009"),
        DEPARTMENT_STAFF,
    ),
    f"{ADMIN}/SetAvailability": (
        lambda w: review_pb2.SetAvailabilityRequest(reviewer_id="E7009", available=True),
        SUPERVISOR,
    ),
    f"{ADMIN}/PutQueueSettings": (
        lambda w: review_pb2.PutQueueSettingsRequest(
            settings=review_pb2.QueueSettings(
                queue=f"{DEPARTMENT}.general", mode=review_pb2.ASSIGNMENT_MODE_PULL
            )
        ),
        SUPERVISOR,
    ),
}


def _tokens(clients: Clients, owner_id: str) -> dict[str, str | None]:
    """A token per kind of caller but the flawed ones (`_flawed`)."""
    return {
        "owner": clients.token(owner_id, Role.CITIZEN),
        "other citizen": clients.token(new_citizen(), Role.CITIZEN),
        "establishment": clients.token(ESTABLISHMENT_ID, Role.ESTABLISHMENT),
        "reviewer": clients.token("E7001", Role.REVIEWER, frozenset({DEPARTMENT})),
        "other department": clients.token("E7002", Role.REVIEWER, frozenset({"visas"})),
        "supervisor": clients.token("S7001", Role.REVIEWER, frozenset({DEPARTMENT})),
        "no token": None,
    }


def _flawed(identity: DevIdentity, impostor: DevIdentity, staff: bool) -> dict[str, str]:
    """Tokens for someone the call would admit, each with one flaw."""
    subject, role, departments = (
        ("E7001", Role.REVIEWER, [DEPARTMENT]) if staff else (new_citizen(), Role.CITIZEN, [])
    )
    return {
        "expired": identity.token(
            subject, role, departments, now=time.time() - 7200, ttl_seconds=3600
        ),
        "wrong issuer": impostor.token(
            subject, role, departments, overrides={"iss": "https://sso.impostor.example"}
        ),
        "wrong audience": identity.token(
            subject, role, departments, overrides={"aud": ["tawasul-elsewhere"]}
        ),
    }


async def _world(stack: Stack, clients: Clients) -> World:
    owner_id = new_citizen()
    owner = clients.token(owner_id, Role.CITIZEN)
    reviewer = clients.token("E7001", Role.REVIEWER, frozenset({DEPARTMENT}))
    await clients.appoint_supervisor("S7001", DEPARTMENT)
    document = await clients.upload(
        owner, "id.pdf", sample_pdf("national ID"), sub_service=SUB_SERVICE, kind="passport_copy"
    )

    async def file(documents: list[str]) -> intake_pb2.Request:
        return await clients.submit(
            owner,
            key=str(uuid.uuid4()),
            sub_service=SUB_SERVICE,
            description="My name is spelt wrongly in the passports records",
            documents=documents,
            mobile="0551234567",
            fields={
                "id_number": owner_id,
                "correction": "name",
                "correct_name_ar": "محمد",
                "correct_name_en": "Mohammed",
            },
        )

    request = await file([document.document_id])
    cancel = await clients.submit(
        owner,
        key=str(uuid.uuid4()),
        sub_service="reports.general-inquiry",
        description="Which office handles name corrections?",
        documents=[],
        mobile="0551234567",
    )

    async def ready() -> bool | None:
        try:
            await clients.review.GetWorkItem(
                review_pb2.GetWorkItemRequest(request_id=request.request_id),
                timeout=TIMEOUT,
                metadata=bearer(reviewer),
            )
            await clients.docs.GetDocument(
                docs_pb2.GetDocumentRequest(document_id=document.document_id),
                timeout=TIMEOUT,
                metadata=bearer(reviewer),
            )
            await clients.notify.ListDeliveries(
                notify_pb2.ListDeliveriesRequest(request_id=request.request_id),
                timeout=TIMEOUT,
                metadata=bearer(reviewer),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return True

    await eventually(ready, what="the request queued, its document granted and its deliveries")
    # As if another reviewer's decision had been sampled for quality review.
    await sql(
        stack,
        "review",
        "INSERT INTO quality_checks (request_id, request_number, department, decision,"
        " decided_by, sampled_at) VALUES (:id, :number, :department, 'accept', 'E7005', now())",
        id=uuid.UUID(request.request_id),
        number=request.request_number,
        department=DEPARTMENT,
    )
    return World(
        clients,
        owner_id,
        request.request_number,
        request.request_id,
        document.document_id,
        cancel.request_number,
    )


async def _outcome(rpc: str, world: World, token: str | None) -> tuple[str, str]:
    service, method = rpc.split("/")
    call = getattr(getattr(world.clients, STUBS[service]), method)
    try:
        await call(MATRIX[rpc][0](world), timeout=TIMEOUT, metadata=bearer(token) if token else ())
    except grpc.aio.AioRpcError as error:
        return error.code().name, error.details() or ""
    return "OK", ""


WHO = {
    EVERYONE: "anyone, no sign-in",
    BENEFICIARIES: "beneficiaries",
    OWNER: "its applicant",
    READERS: "its applicant; its department's staff",
    STAFF: "staff",
    SIGNED_IN: "anyone signed in (their own)",
    DEPARTMENT_STAFF: "its department's staff",
    SUPERVISOR: "its department's supervisor",
    NOBODY: "the intake service (client certificate)",
}


def _refused(rpc: str, code: str) -> bool:
    refusals = AUTH_REFUSALS if MATRIX[rpc][1] == EVERYONE else REFUSED
    return code != "OK" and grpc.StatusCode[code] in refusals


def render(observed: dict[str, dict[str, str]]) -> str:
    lines = [
        "# Who may call what",
        "",
        "Generated by `tests/e2e/test_authorization.py` against the real stack (TLS on, tokens",
        "from the development identity providers); do not edit by hand. ✓ got past",
        "authentication and authorization (its answer may still be a validation error); ✗",
        "refused, with its code. Each service's rule is in its `entrypoints/grpc.py` (`ACCESS`);",
        "which request, document or queue is whose, the service's handlers decide. The flawed",
        "tokens (expired, wrong issuer, wrong audience) are each made for a caller the RPC",
        'admits. "Its applicant" is the account that filed the request; one that filed it for',
        "a worker or a dependent may appeal, answer and follow it up only while that person is",
        "on its record (PERMISSION_DENIED once they left it); viewing and cancelling stay open.",
        "",
        "| RPC | who | " + " | ".join(CALLERS) + " |",
        "|---|---|" + "---|" * len(CALLERS),
    ]
    for rpc, by_caller in observed.items():
        cells = []
        for caller in CALLERS:
            code = by_caller[caller]
            cells.append(f"✗ {code}" if _refused(rpc, code) else "✓")
        who = WHO[MATRIX[rpc][1]]
        if rpc.startswith(ADMIN):
            # Review's administrators (TAWASUL_REVIEW_ADMINS) manage reviewers and queues anywhere.
            who += "; an administrator"
        lines.append(f"| `{rpc}` | {who} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


async def _listed_rpcs(clients: Clients) -> set[str]:
    """Every RPC each service offers, from its reflection service."""
    found: set[str] = set()
    for service in SERVICES:
        stub = reflection_pb2_grpc.ServerReflectionStub(clients.channel(service))
        answers = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=TIMEOUT
        )
        async for answer in answers:
            for listed in answer.list_services_response.service:
                if listed.name.startswith("tawasul."):
                    methods = descriptor_pool.Default().FindServiceByName(listed.name).methods
                    found.update(f"{listed.name}/{m.name}" for m in methods)
    return found


async def test_every_rpc_answers_each_kind_of_caller_as_its_rule_says(
    stack: Stack, clients: Clients, tmp_path: Path
) -> None:
    assert await _listed_rpcs(clients) == set(MATRIX), "an RPC without a row in MATRIX"
    world = await _world(stack, clients)
    impostor = DevIdentity(tmp_path / "impostor")
    tokens = _tokens(clients, world.owner_id)
    observed: dict[str, dict[str, str]] = {}
    mismatches: list[str] = []
    for rpc, (_, allowed) in MATRIX.items():
        flawed = _flawed(stack.config.identity, impostor, staff=not allowed & BENEFICIARIES)
        observed[rpc] = {}
        for caller in CALLERS:
            token = flawed[caller] if caller in flawed else tokens[caller]
            code, details = await _outcome(rpc, world, token)
            observed[rpc][caller] = code
            if _refused(rpc, code) == (caller in allowed):
                mismatches.append(f"{rpc} as {caller}: {code} {details}")
    assert not mismatches, "\n".join(mismatches)
    table = render(observed)
    if not DOC.exists() or DOC.read_text() != table:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(table)
        pytest.fail(f"{DOC.relative_to(ROOT)} was not the current table: rewritten, commit it")
