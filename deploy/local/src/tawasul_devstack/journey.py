"""Client-side steps of a request's journey, shared by the demo and the end-to-end tests."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.message import EmailMessage
from types import TracebackType
from typing import Self, TypeVar

import grpc
import httpx
from tawasul.common.v1 import common_pb2
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul.notify.v1 import notify_pb2_grpc
from tawasul.review.v1 import review_pb2, review_pb2_grpc
from tawasul.routing.v1 import routing_pb2_grpc
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role
from tawasul_platform.tls import open_channel

from tawasul_devstack import pki, smtp_server
from tawasul_devstack.config import REVIEW_ADMIN, StackConfig

T = TypeVar("T")
CHUNK = 256 * 1024
# SubmitRequest is retried with its key on these, as a channel would (Clients.submit), within
# SUBMIT_WITHIN seconds of the first attempt: time for a restarted intake to come back.
SUBMIT_RETRIED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
SUBMIT_ATTEMPTS = 3
SUBMIT_WITHIN = 30.0
# What passports.issue-renewal-problem asks of a citizen filing for themself.
PASSPORT_PHOTO_FIELDS = {"request_type": "renewal", "problem": "photo_not_shown"}


# Consecutive numbers from a random start: no two calls in one process meet (random draws
# from these 10^7 met by the birthday bound, about one test session in five, and the second
# request of one person for one sub-service is refused), and two processes meet only if their
# starts fall within the few thousand numbers each uses.
_next_citizen = itertools.count(secrets.randbelow(10**7))
_next_resident = itertools.count(secrets.randbelow(10**7))


def new_citizen() -> str:
    """A national ID no one else uses: the development registry's synthetic citizens ("19…")."""
    return _with_check_digit(f"19{next(_next_citizen) % 10**7:07d}")


def new_resident() -> str:
    """An iqama number no one else uses: the development registry's synthetic residents
    ("28…"), for the sub-services whose form names a resident (a visa's holder, say)."""
    return _with_check_digit(f"28{next(_next_resident) % 10**7:07d}")


def _with_check_digit(body: str) -> str:
    for check in "0123456789":
        if _luhn_valid(body + check):
            return body + check
    raise RuntimeError("unreachable: every body has one Luhn check digit")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def sample_pdf(text: str, *, comment: bytes = b"") -> bytes:
    """A small, valid one-page PDF showing `text`, with `comment` as a line after its header
    (tests pad a file to a size with it, or hide a test signature in it)."""
    content = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n" + (b"%" + comment + b"\n" if comment else b""))
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 30.0, what: str = "condition"
) -> T:
    """Polls `probe` until it returns a value; the system is asynchronous between services."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


class Clients:
    """gRPC stubs for every service of one stack, plus tokens, the SMS gateway's log and
    faults, and the e-mail the stack's SMTP server took in.

    Its channels are mutual TLS with the certificate of `peer` (CN): pki.CLIENT by default; a
    test of a service-only RPC may call as a service instead (e.g. peer="intake").
    """

    def __init__(self, config: StackConfig, *, peer: str = pki.CLIENT) -> None:
        self.config = config
        tls = config.tls(peer)
        self._channels = {
            name: open_channel(config.grpc_address(name), tls)
            for name in ("docs", "intake", "routing", "review", "notify")
        }
        self.docs = docs_pb2_grpc.DocsServiceStub(self._channels["docs"])
        self.intake = intake_pb2_grpc.IntakeServiceStub(self._channels["intake"])
        self.routing = routing_pb2_grpc.RoutingServiceStub(self._channels["routing"])
        self.review = review_pb2_grpc.ReviewServiceStub(self._channels["review"])
        self.review_admin = review_pb2_grpc.ReviewAdminServiceStub(self._channels["review"])
        self.notify = notify_pb2_grpc.NotifyServiceStub(self._channels["notify"])
        self.http = httpx.AsyncClient(timeout=DEFAULT_DEADLINE_SECONDS)
        # Per request, not on the client: self.http also fetches presigned links from MinIO.
        self._sms_auth = httpx.BasicAuth(config.sms_gateway_user, config.sms_gateway_password)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for channel in self._channels.values():
            await channel.close()
        await self.http.aclose()

    def channel(self, service: str) -> grpc.aio.Channel:
        """The channel to a service, for stubs the attributes above do not cover."""
        return self._channels[service]

    def token(self, subject: str, role: Role, departments: frozenset[str] = frozenset()) -> str:
        """What the identity provider (Nafath/Absher, or the employee directory) would issue."""
        return self.config.identity.token(subject, role, departments)

    async def appoint_supervisor(self, reviewer_id: str, department: str) -> None:
        """The stack's administrator makes `reviewer_id` a supervisor of `department`."""
        await self.review_admin.PutReviewer(
            review_pb2.PutReviewerRequest(
                reviewer=review_pb2.Reviewer(
                    reviewer_id=reviewer_id,
                    departments=[department],
                    languages=["ar", "en"],
                    capacity=10,
                    available=True,
                    supervises=[department],
                )
            ),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(self.token(REVIEW_ADMIN, Role.REVIEWER)),
        )

    async def upload(
        self,
        token: str,
        filename: str,
        data: bytes,
        *,
        content_type: str = "application/pdf",
        deadline: float = DEFAULT_DEADLINE_SECONDS,
        declare_size: bool = True,
        sub_service: str = "",
        kind: str = "",
    ) -> docs_pb2.Document:
        """Uploads `data`, declaring its size unless told not to (as a channel that streams a
        body of unknown length does), as the sub-service's `kind` of document when given."""

        async def parts() -> AsyncIterator[docs_pb2.UploadDocumentRequest]:
            yield docs_pb2.UploadDocumentRequest(
                metadata=docs_pb2.DocumentMetadata(
                    filename=filename,
                    declared_content_type=content_type,
                    size_bytes=len(data) if declare_size else 0,
                    sub_service_code=sub_service,
                    document_kind=kind,
                )
            )
            for start in range(0, len(data), CHUNK):
                yield docs_pb2.UploadDocumentRequest(chunk=data[start : start + CHUNK])

        answer = await self.docs.UploadDocument(parts(), timeout=deadline, metadata=bearer(token))
        return answer.document

    async def submit(
        self,
        token: str,
        *,
        key: str,
        sub_service: str,
        description: str,
        documents: list[str],
        mobile: str,
        locale: str = "ar",
        email: str = "",
        fields: dict[str, str] | None = None,
        subject_id: str = "",
        cites: str = "",
    ) -> intake_pb2.Request:
        message = intake_pb2.SubmitRequestRequest(
            idempotency_key=key,
            sub_service_code=sub_service,
            description=description,
            document_ids=documents,
            contact=common_pb2.Contact(mobile=mobile, email=email, locale=locale),
            fields=fields or {},
            subject_id=subject_id,
            cites_request_number=cites,
        )
        until = time.monotonic() + SUBMIT_WITHIN
        attempt = 1
        while True:
            left = until - time.monotonic()
            try:
                # A retry waits for the channel to be ready again, up to what is left: without,
                # an intake being restarted fails each at once (the channel between its
                # reconnection attempts), and every attempt goes within milliseconds.
                answer = await self.intake.SubmitRequest(
                    message,
                    timeout=DEFAULT_DEADLINE_SECONDS if attempt == 1 else left,
                    metadata=bearer(token),
                    wait_for_ready=attempt > 1,
                )
            except grpc.aio.AioRpcError as error:
                # As a channel retries: the same key makes it safe (intake answers a replayed
                # key with the request it made), and a just-started intake may miss a first
                # deadline on a busy machine.
                if (
                    attempt == SUBMIT_ATTEMPTS
                    or error.code() not in SUBMIT_RETRIED
                    or until - time.monotonic() <= 0
                ):
                    raise
                attempt += 1
                continue
            return answer.request

    async def track(self, token: str, number: str) -> intake_pb2.Request:
        answer = await self.intake.GetRequest(
            intake_pb2.GetRequestRequest(request_number=number),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(token),
        )
        return answer.request

    async def queue(self, token: str, department: str) -> list[review_pb2.WorkItem]:
        """Every open item of the department's queue, page after page."""
        items: list[review_pb2.WorkItem] = []
        page_token = ""
        while True:
            answer = await self.review.ListQueue(
                review_pb2.ListQueueRequest(
                    department_code=department, page_size=200, page_token=page_token
                ),
                timeout=DEFAULT_DEADLINE_SECONDS,
                metadata=bearer(token),
            )
            items.extend(answer.items)
            page_token = answer.next_page_token
            if not page_token:
                return items

    async def sms_received(self) -> list[dict[str, str]]:
        answer = await self.http.get(
            f"{self.config.sms_gateway_url}/v1/messages", auth=self._sms_auth
        )
        answer.raise_for_status()
        messages: list[dict[str, str]] = answer.json()
        return messages

    async def sms_faults(
        self,
        numbers: dict[str, int],
        everyone: int | None = None,
        slow: dict[str, float] | None = None,
    ) -> None:
        """Makes the gateway answer these HTTP statuses to SMS for `numbers` (or to every SMS),
        recording none of them, and answer `slow` numbers' SMS only after their delay, until
        the next call or clear_sms_faults."""
        answer = await self.http.put(
            f"{self.config.sms_gateway_url}/v1/faults",
            json={"numbers": numbers, "everyone": everyone, "slow": slow or {}},
            auth=self._sms_auth,
        )
        answer.raise_for_status()

    async def clear_sms_faults(self) -> None:
        answer = await self.http.delete(
            f"{self.config.sms_gateway_url}/v1/faults", auth=self._sms_auth
        )
        answer.raise_for_status()

    def emails_received(self) -> list[EmailMessage]:
        """Every e-mail the stack's SMTP server stored, oldest first."""
        return smtp_server.received(self.config.smtp_maildir)

    async def sms_to(self, mobile: str, containing: str, count: int) -> list[dict[str, str]] | None:
        """The SMS sent to `mobile` mentioning `containing`, once there are `count` of them."""
        found = [
            m for m in await self.sms_received() if m["to"] == mobile and containing in m["text"]
        ]
        return found if len(found) >= count else None
