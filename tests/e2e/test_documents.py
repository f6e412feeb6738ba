"""Documents on the real stack: files checked for what they really are, ClamAV's verdict,
quarantine while the scanner is down, the size limits, memory under concurrent uploads, and
presigned links that expire."""

from __future__ import annotations

import asyncio
import io
import signal
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from minio.error import S3Error
from PIL import Image
from pypdf import PdfWriter
from pypdf.actions import JavaScript
from tawasul.docs.v1 import docs_pb2
from tawasul.events.v1 import events_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul.notify.v1 import notify_pb2
from tawasul.review.v1 import review_pb2
from tawasul.routing.v1 import routing_pb2
from tawasul_devstack.config import REVIEW_ADMIN
from tawasul_devstack.journey import (
    PASSPORT_PHOTO_FIELDS,
    Clients,
    eventually,
    new_citizen,
    sample_pdf,
)
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer, field_violations
from tawasul_platform.identity import Role

from tests.e2e.direct import bucket_client, sql
from tests.e2e.topics import envelopes, records

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
LIMIT = 10 * 1024 * 1024  # the largest any sub-service allows (and the general limit)
SLOW = 60.0
SLOTS = 8  # docs' max_concurrent_uploads


def padded_pdf(size: int) -> bytes:
    """A valid PDF of exactly `size` bytes: its comment takes up the rest."""
    filler = 0
    while len(pdf := sample_pdf("padding", comment=b"x" * filler)) != size:
        filler += size - len(pdf)
    return pdf


def javascript_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_open_action(JavaScript("app.alert('hello');"))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def eicar_pdf() -> bytes:
    return sample_pdf("scan", comment=EICAR)


def noisy_jpeg(megabytes: float) -> bytes:
    side = int((megabytes * 1024 * 1024 / 3) ** 0.5 * 1.2)
    image = Image.effect_noise((side, side), 120).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=100)
    return out.getvalue()


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


async def test_files_are_judged_by_what_they_really_are(clients: Clients) -> None:
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    refused = {
        "program.pdf": (b"MZ\x90\x00" + b"\x00" * 200, "application/pdf"),
        "script.pdf": (javascript_pdf(), "application/pdf"),
        "page.pdf": (b"<!doctype html><html>" + sample_pdf("x"), "application/pdf"),
        "empty.pdf": (b"", "application/pdf"),
        "cut.pdf": (sample_pdf("cut")[:-40], "application/pdf"),
        "photo.jpg": (sample_pdf("not a photo"), "image/jpeg"),
    }
    for name, (data, declared) in refused.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await clients.upload(citizen, name, data, content_type=declared)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert set(field_violations(caught.value)) <= {"content", "declared_content_type"}, name
    stored = await clients.upload(citizen, "scan.exe", sample_pdf("a real scan"))
    assert (stored.content_type, stored.filename, stored.state) == (
        "application/pdf",
        "scan.pdf",
        docs_pb2.DOCUMENT_STATE_CLEAN,
    )


async def test_an_infected_file_is_never_readable_nor_attachable(clients: Clients) -> None:
    citizen_id = new_citizen()
    citizen = clients.token(citizen_id, Role.CITIZEN)
    infected = await clients.upload(citizen, "eicar.pdf", eicar_pdf())
    assert infected.state == docs_pb2.DOCUMENT_STATE_INFECTED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.docs.GetDownloadUrl(
            docs_pb2.GetDownloadUrlRequest(document_id=infected.document_id),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(citizen),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.submit(
            citizen,
            key=str(uuid.uuid4()),
            sub_service="reports.general-inquiry",
            description="My transaction stalled at payment; the screenshot is attached",
            documents=[infected.document_id],
            mobile="0551234567",
        )
    assert field_violations(caught.value) == {"document_ids[0]": "refused by the malware scan"}


async def test_with_the_scanner_down_uploads_wait_in_quarantine(
    stack: Stack, clients: Clients
) -> None:
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    reviewer = clients.token("E7001", Role.REVIEWER, frozenset({"reports"}))
    await asyncio.to_thread(stack.stop_service, "clamd", signal.SIGKILL)
    try:
        waiting = await clients.upload(citizen, "scan.pdf", sample_pdf("while clamd is down"))
        assert waiting.state == docs_pb2.DOCUMENT_STATE_QUARANTINED
        for who in (citizen, reviewer):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await clients.docs.GetDownloadUrl(
                    docs_pb2.GetDownloadUrlRequest(document_id=waiting.document_id),
                    timeout=DEFAULT_DEADLINE_SECONDS,
                    metadata=bearer(who),
                )
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await asyncio.to_thread(stack.start_service, "clamd")

    async def clean() -> docs_pb2.Document | None:
        answer = await clients.docs.GetDocument(
            docs_pb2.GetDocumentRequest(document_id=waiting.document_id),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(citizen),
        )
        doc = answer.document
        return doc if doc.state == docs_pb2.DOCUMENT_STATE_CLEAN else None

    await eventually(clean, within=60, what="the quarantined document scanned once clamd is back")


async def test_the_size_limit_and_twenty_concurrent_uploads_in_bounded_memory(
    stack: Stack, clients: Clients
) -> None:
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    at_limit = await clients.upload(citizen, "big.pdf", padded_pdf(LIMIT), deadline=SLOW)
    assert at_limit.size_bytes == LIMIT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.upload(citizen, "bigger.pdf", padded_pdf(LIMIT + 1), deadline=SLOW)
    assert set(field_violations(caught.value)) == {"size"}

    photo = await asyncio.to_thread(noisy_jpeg, 9.5)
    assert len(photo) <= LIMIT
    pid = stack.pid("docs")
    assert pid is not None
    # Resets the process's peak resident size, so the peak read after is these uploads' own.
    await asyncio.to_thread(Path(f"/proc/{pid}/clear_refs").write_text, "5")
    before = rss_kib(pid, "VmRSS")
    owners = [clients.token(new_citizen(), Role.CITIZEN) for _ in range(20)]
    stored = await asyncio.gather(
        *(
            clients.upload(
                owner, f"photo-{n}.jpg", photo, content_type="image/jpeg", deadline=SLOW * 2
            )
            for n, owner in enumerate(owners)
        )
    )
    peak = rss_kib(pid, "VmHWM")

    async def all_clean() -> bool | None:
        # On a loaded machine clamd may give no verdict in its time: that document stays in
        # quarantine (fail closed) until the rescan loop clears it.
        for owner, document in zip(owners, stored, strict=True):
            if document.state != docs_pb2.DOCUMENT_STATE_CLEAN:
                now = await clients.docs.GetDocument(
                    docs_pb2.GetDocumentRequest(document_id=document.document_id),
                    timeout=DEFAULT_DEADLINE_SECONDS,
                    metadata=bearer(owner),
                )
                if now.document.state != docs_pb2.DOCUMENT_STATE_CLEAN:
                    return None
        return True

    await eventually(all_clean, within=120, what="every photo scanned clean")
    # The bound is per slot, not per file or per upload: docs takes 8 uploads at a time (the
    # rest wait under gRPC's flow control) and each holds at most a 5 MiB part of S3's
    # multipart upload, the SDK's copies of it, 256 KiB of chunks on their way to the spool
    # and the 1 MiB reads of the checks and the scanner: about 24 MiB.
    grown_mib = (peak - before) / 1024
    assert grown_mib < SLOTS * 24, f"docs grew by {grown_mib:.0f} MiB"


async def test_a_presigned_link_expires(clients: Clients) -> None:
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    data = sample_pdf("expiring")
    document = await clients.upload(citizen, "expiring.pdf", data)
    link = await clients.docs.GetDownloadUrl(
        docs_pb2.GetDownloadUrlRequest(document_id=document.document_id),
        timeout=DEFAULT_DEADLINE_SECONDS,
        metadata=bearer(citizen),
    )
    fetched = await clients.http.get(link.url)
    assert (fetched.status_code, fetched.content) == (200, data)
    # Stored before it was checked, served as what the checks found it to be.
    assert fetched.headers["content-type"] == "application/pdf"
    assert fetched.headers["content-disposition"].startswith('attachment; filename="expiring.pdf"')
    lifetime = link.expires_at.ToDatetime() - link.document.created_at.ToDatetime()
    assert lifetime.total_seconds() < 60

    async def refused() -> int | None:
        status = (await clients.http.get(link.url)).status_code
        return status if status == 403 else None

    assert await eventually(refused, within=60, what="the link to expire") == 403


async def passport_problem(
    clients: Clients, citizen_id: str, document_id: str
) -> intake_pb2.Request:
    """A citizen's passport renewal problem, with its receipt attached."""
    return await clients.submit(
        clients.token(citizen_id, Role.CITIZEN),
        key=str(uuid.uuid4()),
        sub_service="passports.issue-renewal-problem",
        description="The photo does not appear when renewing my passport; receipt attached",
        documents=[document_id],
        mobile="0551234567",
        fields={"national_id": citizen_id, **PASSPORT_PHOTO_FIELDS},
    )


async def test_only_the_requests_department_reads_its_documents(clients: Clients) -> None:
    citizen_id = new_citizen()
    citizen = clients.token(citizen_id, Role.CITIZEN)
    passports = clients.token("E7002", Role.REVIEWER, frozenset({"passports"}))
    visas = clients.token("E7003", Role.REVIEWER, frozenset({"visas"}))
    document = await clients.upload(citizen, "receipt.pdf", sample_pdf("receipt"))
    await passport_problem(clients, citizen_id, document.document_id)

    async def readable() -> docs_pb2.GetDownloadUrlResponse | None:
        try:
            return await clients.docs.GetDownloadUrl(
                docs_pb2.GetDownloadUrlRequest(document_id=document.document_id),
                timeout=DEFAULT_DEADLINE_SECONDS,
                metadata=bearer(passports),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    link = await eventually(readable, what="the passports department reading the attachment")
    assert link.document.document_id == document.document_id
    for outsider in (visas, clients.token(new_citizen(), Role.CITIZEN)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await clients.docs.GetDownloadUrl(
                docs_pb2.GetDownloadUrlRequest(document_id=document.document_id),
                timeout=DEFAULT_DEADLINE_SECONDS,
                metadata=bearer(outsider),
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_department_a_reviewers_record_takes_away_is_closed_in_every_service(
    clients: Clients,
) -> None:
    """Identity grants a reviewer passports and visas; review's administrator keeps them in
    visas only. Docs, notify and routing, which check staff access themselves, close passports
    to them as review does, and open it again when the record gives it back."""
    citizen_id = new_citizen()
    citizen = clients.token(citizen_id, Role.CITIZEN)
    reviewer_id = f"E-{uuid.uuid4().hex[:12]}"
    reviewer = clients.token(reviewer_id, Role.REVIEWER, frozenset({"passports", "visas"}))
    document = await clients.upload(citizen, "receipt.pdf", sample_pdf("receipt"))
    request = await passport_problem(clients, citizen_id, document.document_id)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "docs": lambda: clients.docs.GetDownloadUrl(
            docs_pb2.GetDownloadUrlRequest(document_id=document.document_id),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(reviewer),
        ),
        "notify": lambda: clients.notify.ListDeliveries(
            notify_pb2.ListDeliveriesRequest(request_id=request.request_id),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(reviewer),
        ),
        "routing": lambda: clients.routing.GetDecision(
            routing_pb2.GetDecisionRequest(request_id=request.request_id),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(reviewer),
        ),
        "review": lambda: clients.review.GetCase(
            review_pb2.GetCaseRequest(request_id=request.request_id),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(reviewer),
        ),
    }

    async def answers() -> dict[str, str]:
        found = {}
        for service, call in calls.items():
            try:
                await call()
                found[service] = "OK"
            except grpc.aio.AioRpcError as error:
                found[service] = error.code().name
        return found

    def all_answer(code: str) -> Callable[[], Awaitable[dict[str, str] | None]]:
        async def probe() -> dict[str, str] | None:
            found = await answers()
            return found if set(found.values()) == {code} else None

        return probe

    await eventually(all_answer("OK"), what="the reviewer reading the request everywhere")
    for departments in (["visas"], ["passports", "visas"]):
        await keep_reviewer_in(clients, reviewer_id, departments)
        code = "OK" if "passports" in departments else "NOT_FOUND"
        seen = await eventually(all_answer(code), what=f"every service answering {code}")
        assert seen == {"docs": code, "notify": code, "routing": code, "review": code}


async def test_a_docs_database_put_back_to_a_backup_gets_reviewers_records_again_at_start(
    stack: Stack, clients: Clients
) -> None:
    """Review's administrator keeps a reviewer out of passports; docs' database is then put
    back to a backup from before that record (its row gone). Until docs restarts it lets the
    reviewer in again; at its start it reads review's records from their start and shuts
    them out once more."""
    citizen_id = new_citizen()
    citizen = clients.token(citizen_id, Role.CITIZEN)
    reviewer_id = f"E-{uuid.uuid4().hex[:12]}"
    reviewer = clients.token(reviewer_id, Role.REVIEWER, frozenset({"passports", "visas"}))
    document = await clients.upload(citizen, "receipt.pdf", sample_pdf("receipt"))
    await passport_problem(clients, citizen_id, document.document_id)

    def docs_answers(code: str) -> Callable[[], Awaitable[str | None]]:
        async def probe() -> str | None:
            try:
                await clients.docs.GetDownloadUrl(
                    docs_pb2.GetDownloadUrlRequest(document_id=document.document_id),
                    timeout=DEFAULT_DEADLINE_SECONDS,
                    metadata=bearer(reviewer),
                )
                found = "OK"
            except grpc.aio.AioRpcError as error:
                found = error.code().name
            return found if found == code else None

        return probe

    await eventually(docs_answers("OK"), what="docs letting the reviewer read the document")
    await keep_reviewer_in(clients, reviewer_id, ["visas"])
    await eventually(docs_answers("NOT_FOUND"), what="docs keeping the reviewer out")
    await sql(stack, "docs", "DELETE FROM staff_records WHERE reviewer_id = :r", r=reviewer_id)
    await eventually(docs_answers("OK"), what="the restored database letting the reviewer in")
    await asyncio.to_thread(stack.stop_service, "docs")
    await asyncio.to_thread(stack.start_service, "docs")
    await eventually(docs_answers("NOT_FOUND"), what="docs keeping the reviewer out again")


async def keep_reviewer_in(clients: Clients, reviewer_id: str, departments: list[str]) -> None:
    """Review's administrator records the reviewer in `departments` alone (PutReviewer)."""
    await clients.review_admin.PutReviewer(
        review_pb2.PutReviewerRequest(
            reviewer=review_pb2.Reviewer(
                reviewer_id=reviewer_id,
                departments=departments,
                languages=["ar"],
                capacity=10,
                available=True,
            )
        ),
        timeout=DEFAULT_DEADLINE_SECONDS,
        metadata=bearer(clients.token(REVIEW_ADMIN, Role.REVIEWER)),
    )


async def test_documents_are_encrypted_at_rest(stack: Stack, clients: Clients) -> None:
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    marker = f"plain-text-marker-{uuid.uuid4()}".encode()
    document = await clients.upload(citizen, "secret.pdf", sample_pdf("secret", comment=marker))
    assert document.state == docs_pb2.DOCUMENT_STATE_CLEAN
    cfg = stack.config
    minio = bucket_client(stack)
    key = f"documents/{document.document_id}"
    stat = await asyncio.to_thread(minio.stat_object, cfg.s3_bucket, key)
    assert (stat.metadata or {}).get("x-amz-server-side-encryption") == "AES256"
    response = await asyncio.to_thread(minio.get_object, cfg.s3_bucket, key)
    try:
        assert marker in response.read()
    finally:
        response.close()
        response.release_conn()
    on_disk = cfg.state_dir / "minio" / cfg.s3_bucket / key
    files = [p for p in on_disk.rglob("*") if p.is_file()]
    assert files, f"no files under {on_disk}"
    assert not [p for p in files if marker in p.read_bytes()]


async def test_a_documents_life_is_published_on_its_topic(stack: Stack, clients: Clients) -> None:
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    attached = await clients.upload(citizen, "receipt.pdf", sample_pdf("receipt"))
    infected = await clients.upload(citizen, "eicar.pdf", eicar_pdf())
    request = await clients.submit(
        citizen,
        key=str(uuid.uuid4()),
        sub_service="reports.general-inquiry",
        description="My transaction stalled at payment; the receipt is attached",
        documents=[attached.document_id],
        mobile="0551234567",
    )
    ids = {attached.document_id, infected.document_id}
    found = await records(stack.config.kafka_bootstrap, topics.DOCUMENT_EVENTS, ids, at_least=5)
    steps: dict[str, list[tuple[int, str]]] = {}
    for record in found:
        changed = events_pb2.Envelope.FromString(record.value or b"").document_changed
        assert record.key == changed.document_id.encode()
        steps.setdefault(changed.document_id, []).append((changed.change, changed.request_id))
    assert steps == {
        attached.document_id: [
            (events_pb2.DOCUMENT_CHANGE_STORED, ""),
            (events_pb2.DOCUMENT_CHANGE_CLEAN, ""),
            (events_pb2.DOCUMENT_CHANGE_ATTACHED, request.request_id),
        ],
        infected.document_id: [
            (events_pb2.DOCUMENT_CHANGE_STORED, ""),
            (events_pb2.DOCUMENT_CHANGE_INFECTED, ""),
        ],
    }


async def test_a_document_never_attached_expires_object_and_row(
    stack: Stack, clients: Clients
) -> None:
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    document = await clients.upload(citizen, "forgotten.pdf", sample_pdf("forgotten"))
    cfg = stack.config
    minio = bucket_client(stack)
    key = f"documents/{document.document_id}"
    await asyncio.to_thread(minio.stat_object, cfg.s3_bucket, key)
    # Four days pass for this document (docs keeps unattached ones 72 hours).
    await sql(
        stack,
        "docs",
        "UPDATE documents SET created_at = created_at - interval '4 days' WHERE id = :id",
        id=uuid.UUID(document.document_id),
    )

    async def gone() -> bool | None:
        try:
            await clients.docs.GetDocument(
                docs_pb2.GetDocumentRequest(document_id=document.document_id),
                timeout=DEFAULT_DEADLINE_SECONDS,
                metadata=bearer(citizen),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return True
            raise
        return None

    await eventually(gone, within=30, what="the unattached document to expire")
    with pytest.raises(S3Error) as missing:
        await asyncio.to_thread(minio.stat_object, cfg.s3_bucket, key)
    assert missing.value.code == "NoSuchKey"
    found = await envelopes(
        cfg.kafka_bootstrap, topics.DOCUMENT_EVENTS, {document.document_id}, at_least=3
    )
    assert [e.document_changed.change for e in found] == [
        events_pb2.DOCUMENT_CHANGE_STORED,
        events_pb2.DOCUMENT_CHANGE_CLEAN,
        events_pb2.DOCUMENT_CHANGE_REMOVED,
    ]
