"""Processes die under load: nothing is lost, nothing is applied twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from tawasul.common.v1 import common_pb2
from tawasul.docs.v1 import docs_pb2
from tawasul.events.v1 import events_pb2
from tawasul_devstack.journey import CHUNK, Clients, eventually, new_citizen, sample_pdf
from tawasul_devstack.offsets import Offsets
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.grpc import bearer
from tawasul_platform.identity import Role

from tests.e2e.chaos import (
    Load,
    assert_exactly_once,
    kill_behind,
    rows,
    settled_counts,
    sigkill,
    start,
    unsent,
)
from tests.e2e.direct import object_keys, scalar, sql
from tests.e2e.topics import publish, records

pytestmark = pytest.mark.chaos

CITIZEN = "1000000008"
# Services that consume request.submitted, and their consumer groups.
CONSUMERS = ("routing", "notify")
GROUPS = ("routing", "docs", "notify-events")
# Held back until the broker is dead: submissions it takes while down, however quick the rest.
HELD = 20
MIB = 1024 * 1024


async def test_killing_intake_mid_stream_files_each_request_once(
    stack: Stack, clients: Clients
) -> None:
    async with Load(stack) as load:
        dead_letters = await _dead_letters(stack)
        try:
            task = await load.started()
            await load.until(lambda: load.submitting > 0, task, "a submission in flight")
            # No await between the look and the kill: these calls were in flight when it died.
            in_flight = load.submitting
            killed = await sigkill(stack, "intake")
            (killed_at,) = await rows(stack, "intake", "SELECT now()")
        finally:
            await start(stack, "intake")
        await task
    # Retried keys whose request was stored before the kill: the dead process committed them
    # and never answered; the retry was answered with that same request.
    landed = await rows(
        stack,
        "intake",
        "SELECT count(*) FROM requests WHERE idempotency_key = ANY(:keys) AND submitted_at < :t",
        keys=[f.key for f in load.filed if f.submit_failures],
        t=killed_at[0],
    )
    print(
        f"{killed}; {in_flight} submissions in flight; {landed[0][0]} committed, unanswered"
        f" and retried; retried: {load.failures()}"
    )
    assert in_flight > 0
    # The calls it dropped, and those made while it was down, failed UNAVAILABLE; the client
    # sent them again under the same idempotency key and each was filed once.
    assert load.failures()[grpc.StatusCode.UNAVAILABLE] > 0
    assert any(f.submit_failures for f in load.filed)
    counts = await settled_counts(stack, load, clients.sms_received)
    assert_exactly_once(counts, load)
    assert await _dead_letters(stack) == dead_letters


CONSUMER_KILLS = {
    # Routing decides each submitted request's queue and announces it through its outbox.
    "routing": ((topics.REQUEST_SUBMITTED, "routing"),),
    # Review turns each routed request into a work item; claims announce "under review".
    "review": ((topics.REQUEST_ROUTED, "review"),),
    # Notify records each submitted and status-changed event's SMS and in-app message, and
    # sends the SMS from its table.
    "notify": tuple(
        (topic, "notify-events")
        for topic in (topics.REQUEST_SUBMITTED, topics.REQUEST_STATUS_CHANGED)
    ),
}


@pytest.mark.parametrize("service", sorted(CONSUMER_KILLS))
async def test_killing_a_consumer_mid_stream_loses_and_duplicates_nothing(
    stack: Stack, clients: Clients, service: str
) -> None:
    async with Load(stack) as load:
        dead_letters = await _dead_letters(stack)
        holding = None
        if service == "notify":
            # Every eighth mobile's SMS takes the gateway a second: notify is killed while it
            # waits, its delivery recorded pending, and on restart must not send it again.
            slow = {f.e164: 1.0 for f in load.filed[::8]}
            await clients.sms_faults({}, slow=slow)

            async def holding() -> bool:
                return await _pending_deliveries(stack) > 0

        try:
            async with Offsets(stack.config.kafka_bootstrap) as offsets:
                task = await load.started()
                behind = await kill_behind(
                    stack, service, CONSUMER_KILLS[service], task, offsets, holding=holding
                )
            pending = await _pending_deliveries(stack)
        finally:
            await start(stack, service)
            await clients.clear_sms_faults()
        await task
    print(f"{behind}; pending deliveries: {pending}; retried: {load.failures()}")
    # Records already on its topics when it died, which it had not committed.
    assert sum(behind.uncommitted.values()) > 0
    if service == "notify":
        # And messages it was sending: recorded pending, not settled when it died.
        assert pending > 0
    if service == "review":
        # Claims sent while it was down failed UNAVAILABLE and were sent again.
        assert load.failures()[grpc.StatusCode.UNAVAILABLE] > 0
    counts = await settled_counts(stack, load, clients.sms_received)
    assert_exactly_once(counts, load)
    assert await _dead_letters(stack) == dead_letters


async def test_a_broker_restart_mid_stream_loses_and_duplicates_nothing(
    stack: Stack, clients: Clients
) -> None:
    async with Load(stack, held=HELD) as load:
        dead_letters = await _dead_letters(stack)
        try:
            task = await load.started()
            killed = await sigkill(stack, "kafka")
            # The outbox keeps intake answering: the state change commits, its event waits.
            taken = load.submitted
            load.release()
            await load.until(lambda: load.submitted >= taken + 5, task, "submissions taken")
            waiting = await unsent(stack, "intake")
        finally:
            await start(stack, "kafka")
        await task
    print(f"{killed}; {waiting} events waiting in intake's outbox; retried: {load.failures()}")
    assert waiting >= 5
    counts = await settled_counts(stack, load, clients.sms_received)
    assert_exactly_once(counts, load)
    assert await _dead_letters(stack) == dead_letters


async def test_a_database_crash_mid_stream_loses_and_duplicates_nothing(
    stack: Stack, clients: Clients
) -> None:
    """PostgreSQL crashes under every service at once while submissions and claims flow: the
    calls it cuts fail UNAVAILABLE and are sent again, every relay and consumer waits it out."""
    async with Load(stack, held=HELD) as load:
        dead_letters = await _dead_letters(stack)
        try:
            task = await load.started()
            await load.until(lambda: load.submitting > 0, task, "a submission in flight")
            in_flight = load.submitting
            await asyncio.to_thread(stack.stop_service, "postgres", signal.SIGKILL)
            assert stack.pid("postgres") is None
            # The held submissions are sent to services whose database is gone.
            load.release()
            failed = sum(load.failures().values())
            await load.until(
                lambda: sum(load.failures().values()) >= failed + 5, task, "calls refused"
            )
        finally:
            await asyncio.to_thread(stack.start_service, "postgres")
        await task
    print(f"{in_flight} submissions in flight at the crash; retried: {load.failures()}")
    assert load.failures()[grpc.StatusCode.UNAVAILABLE] >= 5
    counts = await settled_counts(stack, load, clients.sms_received)
    assert_exactly_once(counts, load)
    assert await _dead_letters(stack) == dead_letters


async def _dead_letters(stack: Stack) -> int:
    async with Offsets(stack.config.kafka_bootstrap) as offsets:
        return await offsets.dead_letters()


async def _pending_deliveries(stack: Stack) -> int:
    found = await rows(stack, "notify", "SELECT count(*) FROM deliveries WHERE status = 'pending'")
    return int(found[0][0])


async def test_uploads_while_object_storage_is_down_are_unavailable(
    stack: Stack, clients: Clients
) -> None:
    citizen_id = new_citizen()
    citizen = clients.token(citizen_id, Role.CITIZEN)
    pdf = sample_pdf("scan")
    stored_before = await asyncio.to_thread(object_keys, stack)
    await asyncio.to_thread(stack.stop_service, "minio", signal.SIGKILL)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await clients.upload(citizen, "scan.pdf", pdf)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
    finally:
        await asyncio.to_thread(stack.start_service, "minio")
    # Nothing half-written: no row, no object.
    owned = "SELECT count(*) FROM documents WHERE owner_id = :owner"
    assert await scalar(stack, "docs", owned, owner=citizen_id) == 0
    assert await asyncio.to_thread(object_keys, stack) == stored_before
    stored = await clients.upload(citizen, "scan.pdf", pdf)
    assert stored.size_bytes == len(pdf)
    assert await scalar(stack, "docs", owned, owner=citizen_id) == 1


async def test_killing_docs_mid_upload_leaves_no_spooled_file_object_or_row(
    stack: Stack, clients: Clients
) -> None:
    citizen_id = new_citizen()
    citizen = clients.token(citizen_id, Role.CITIZEN)
    pdf = sample_pdf("held", comment=b"x" * (8 * MIB))
    sent = 6 * MIB  # of its 8 MiB: the rest never comes
    spool = stack.config.spool_dir("docs")
    stored_before = await asyncio.to_thread(object_keys, stack)

    async def parts() -> AsyncIterator[docs_pb2.UploadDocumentRequest]:
        metadata = docs_pb2.DocumentMetadata(
            filename="held.pdf", declared_content_type="application/pdf", size_bytes=len(pdf)
        )
        yield docs_pb2.UploadDocumentRequest(metadata=metadata)
        for at in range(0, sent, CHUNK):
            yield docs_pb2.UploadDocumentRequest(chunk=pdf[at : at + CHUNK])
        await asyncio.Event().wait()

    call = clients.docs.UploadDocument(parts(), timeout=60, metadata=bearer(citizen))
    answer = asyncio.ensure_future(call)
    try:
        docs = stack.pid("docs")
        assert docs is not None

        async def spooled() -> int | None:
            sizes = [size for _, size in _spooled(docs, spool)]
            return sizes[0] if sizes == [sent] else None

        # docs holds the upload's bytes so far in its spool directory, in a file with no name.
        await eventually(spooled, within=30, what=f"docs holding {sent} bytes in {spool}")
        killed = await sigkill(stack, "docs")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(answer, 30)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
        # Killed with the file open, nothing left behind for a restart to clean up: in
        # Kubernetes the spool directory outlives the container.
        assert await asyncio.to_thread(os.listdir, spool) == []
    finally:
        answer.cancel()
        await start(stack, "docs")
    print(f"{killed} holding {sent} bytes of an upload")
    owned = "SELECT count(*) FROM documents WHERE owner_id = :owner"
    assert await scalar(stack, "docs", owned, owner=citizen_id) == 0
    assert await asyncio.to_thread(object_keys, stack) - stored_before == set()
    # The channel sends it again to the new process, which takes it whole.
    stored = await clients.upload(citizen, "held.pdf", pdf)
    assert stored.size_bytes == len(pdf)
    assert await scalar(stack, "docs", owned, owner=citizen_id) == 1
    assert await asyncio.to_thread(object_keys, stack) - stored_before == {
        f"documents/{stored.document_id}"
    }


async def test_killing_docs_between_storing_an_upload_and_its_row_leaves_no_orphan_object(
    stack: Stack, clients: Clients
) -> None:
    """Stored whole in the bucket, its row not committed yet (the checks' last parse runs in
    between): the object was recorded to delete before it was stored, and goes once due."""
    for attempt in range(10):
        citizen_id = new_citizen()
        citizen = clients.token(citizen_id, Role.CITIZEN)
        pdf = sample_pdf(f"stored {attempt}", comment=b"x" * (8 * MIB))
        stored_before = await asyncio.to_thread(object_keys, stack)
        answer = asyncio.ensure_future(clients.upload(citizen, "stored.pdf", pdf))
        docs = stack.pid("docs")
        assert docs is not None
        new: set[str] = set()
        while not new and not answer.done():
            new = await asyncio.to_thread(object_keys, stack) - stored_before
        if new:
            # Frozen at once: is its row still to come?
            os.killpg(docs, signal.SIGSTOP)
        owned = "SELECT count(*) FROM documents WHERE owner_id = :owner"
        if new and await scalar(stack, "docs", owned, owner=citizen_id) == 0:
            break
        os.killpg(docs, signal.SIGCONT)
        await answer  # the row was quicker: stored whole, and another try
    else:
        raise AssertionError("docs committed every upload's row before it could be seen stored")
    try:
        killed = await sigkill(stack, "docs")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(answer, 30)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
    finally:
        await start(stack, "docs")
    (key,) = new
    print(f"{killed} with {key} stored and no row, at attempt {attempt}")
    assert await scalar(stack, "docs", owned, owner=citizen_id) == 0
    # Not due before the upload's time (and a margin) is past: its row may yet commit.
    due = "SELECT not_before > now() FROM object_deletions WHERE key = :key"
    assert await scalar(stack, "docs", due, key=key) is True
    await sql(
        stack, "docs", "UPDATE object_deletions SET not_before = now() WHERE key = :key", key=key
    )

    async def deleted() -> bool | None:
        gone = key not in await asyncio.to_thread(object_keys, stack)
        recorded = await scalar(
            stack, "docs", "SELECT count(*) FROM object_deletions WHERE key = :key", key=key
        )
        return True if gone and recorded == 0 else None

    await eventually(deleted, within=60, what=f"{key} deleted by the sweep and forgotten")


async def test_killing_docs_while_an_upload_waits_for_its_scan_leaves_it_to_the_rescan(
    stack: Stack, clients: Clients
) -> None:
    """Its row committed in quarantine, its verdict not yet come: after the restart the rescan
    loop scans it, and it is clean where it was stored, the one object of its one row."""
    citizen_id = new_citizen()
    citizen = clients.token(citizen_id, Role.CITIZEN)
    stored_before = await asyncio.to_thread(object_keys, stack)
    clamd = stack.pid("clamd")
    assert clamd is not None
    # A scanner that has taken the bytes and does not answer yet.
    os.killpg(clamd, signal.SIGSTOP)
    try:
        answer = asyncio.ensure_future(clients.upload(citizen, "scan.pdf", sample_pdf("scan")))
        waiting = "SELECT count(*) FROM documents WHERE owner_id = :owner AND state = :state"

        async def quarantined() -> bool | None:
            found = await scalar(stack, "docs", waiting, owner=citizen_id, state="quarantined")
            return True if found == 1 else None

        await eventually(quarantined, within=30, what="the upload's row waiting for its verdict")
        killed = await sigkill(stack, "docs")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(answer, 30)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
    finally:
        os.killpg(clamd, signal.SIGCONT)
        await start(stack, "docs")
    print(f"{killed} while document of {citizen_id} waited for its scan")

    async def clean() -> bool | None:
        found = await scalar(stack, "docs", waiting, owner=citizen_id, state="clean")
        return True if found == 1 else None

    # The rescan loop leaves an upload's own scan 30 s before it takes the document up.
    await eventually(clean, within=120, what="the document scanned clean after the restart")
    owned = "SELECT id FROM documents WHERE owner_id = :owner"
    document_id = await scalar(stack, "docs", owned, owner=citizen_id)
    stored = await asyncio.to_thread(object_keys, stack)
    assert stored - stored_before == {f"documents/{document_id}"}


def _spooled(pid: int, directory: Path) -> list[tuple[str, int]]:
    """The files a process holds open in `directory`: /proc's name for each, and its size."""
    held = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed while listed
            target = os.readlink(fd)
            if target.startswith(f"{directory}/"):
                held.append((target, fd.stat().st_size))
    return held


async def test_a_database_outage_is_waited_out_not_dead_lettered(
    stack: Stack, clients: Clients
) -> None:
    request_id = str(uuid.uuid4())
    submitted = events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="tawasul.requests.submitted",
        schema_version=1,
        request_id=request_id,
        producer="test",
        request_submitted=events_pb2.RequestSubmitted(
            request_id=request_id,
            # A number of this run's own: a request number is unique in review's queues.
            request_number=f"TW269{secrets.randbelow(10**7):07d}",
            sub_service_code="reports.general-inquiry",
            department_code="reports",
            description="Submitted while the database was down",
            applicant_id=CITIZEN,
            contact=common_pb2.Contact(mobile="+966551234567", locale="ar"),
        ),
    )
    await asyncio.to_thread(stack.stop_service, "postgres", signal.SIGKILL)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await clients.track(clients.token(CITIZEN, Role.CITIZEN), "TW482913578")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        await publish(
            stack.config.kafka_bootstrap,
            topics.REQUEST_SUBMITTED,
            submitted.SerializeToString(),
            key=request_id.encode(),
        )

        # Each consumer fails on the event as many times as a broken handler may (four attempts)
        # before it would be dead-lettered; an outage must instead keep it waiting.
        async def waited_out() -> bool | None:
            waits = f"event {submitted.event_id} waits for a dependency"
            logs = [stack.log_path(name).read_text(errors="replace") for name in CONSUMERS]
            return True if all(log.count(waits) >= 4 for log in logs) else None

        await eventually(waited_out, within=60, what="both consumers waiting out the outage")
    finally:
        await asyncio.to_thread(stack.start_service, "postgres")

    reviewer = clients.token("E3003", Role.REVIEWER, frozenset({"reports"}))

    async def queued() -> bool | None:
        items = await clients.queue(reviewer, "reports")
        return True if any(i.request_id == request_id for i in items) else None

    await eventually(queued, within=90, what="the event applied after the outage")
    for group in GROUPS:
        parked = await records(
            stack.config.kafka_bootstrap,
            topics.dead_letter_topic(topics.REQUEST_SUBMITTED, group),
            {request_id},
            at_least=0,
            within=2,
        )
        assert parked == [], group
