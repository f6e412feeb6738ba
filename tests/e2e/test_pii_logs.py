"""No service writes what identifies a person into its logs.

An upload, a submission, a refused submission, a reviewer opening the case and tracking
without login by one-time code all run with canary values (a name, a national ID, a mobile,
an e-mail); then every log file the stack's services wrote is read, and no canary may be in
any of them.
Logs are shipped, kept and read far more widely than the databases that may hold these.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
from tawasul.intake.v1 import intake_pb2
from tawasul.notify.v1 import notify_pb2
from tawasul.review.v1 import review_pb2
from tawasul_devstack.journey import Clients, eventually, new_citizen, sample_pdf
from tawasul_devstack.stack import GATEWAY_PROCESS, SERVICES, Stack
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role

TIMEOUT = DEFAULT_DEADLINE_SECONDS
SUB_SERVICE = "corrections.name-or-birth-date"


# The five services and the channels' gateway in front of them.
LOGGED = (*SERVICES, GATEWAY_PROCESS)


def _service_logs(stack: Stack) -> dict[Path, str]:
    """Every log file of the services and the gateway: their process logs and migrations'."""
    found = {stack.log_path(name) for name in LOGGED}
    logs_dir = stack.log_path(SERVICES[0]).parent
    found |= {p for p in logs_dir.glob("*.log") if p.name.split("-")[0].split(".")[0] in LOGGED}
    return {p: p.read_text("utf-8", errors="replace") for p in sorted(found) if p.exists()}


async def _sms_failed(clients: Clients, token: str, request_id: str) -> bool | None:
    try:
        answer = await clients.notify.ListDeliveries(
            notify_pb2.ListDeliveriesRequest(request_id=request_id),
            timeout=TIMEOUT,
            metadata=bearer(token),
        )
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:  # notify has not read the request yet
            return None
        raise
    failed = notify_pb2.DELIVERY_STATUS_FAILED
    return (
        True if any(d.channel == "sms" and d.status == failed for d in answer.deliveries) else None
    )


async def test_no_canary_reaches_any_service_log(clients: Clients, stack: Stack) -> None:
    national_id = new_citizen()
    # A valid mobile of a random subscriber: 052 is no mobile range and parts of 057 are not
    # either, so the operator prefix is drawn from ranges valid throughout.
    local = f"5{secrets.choice('0345689')}{secrets.randbelow(10**7):07d}"
    mobile, e164 = "0" + local, "+966" + local
    # A name takes its script's letters only (no digits): a random tag in each.
    tag = "".join(secrets.choice(string.ascii_lowercase) for _ in range(12))
    tag_ar = "".join(secrets.choice("بتثجحخسشصضطظعغفقكلمن") for _ in range(10))
    name_ar, name_en = f"كناري اختبار {tag_ar}", f"Canary Tester {tag}"
    email = f"canary.{tag}@example.sa"
    citizen = clients.token(national_id, Role.CITIZEN)
    fields = {
        "id_number": national_id,
        "correction": "name",
        "correct_name_ar": name_ar,
        "correct_name_en": name_en,
    }
    # People name their files after themselves.
    passport = await clients.upload(
        citizen,
        f"{name_en} passport.pdf",
        sample_pdf("passport"),
        sub_service=SUB_SERVICE,
        kind="passport_copy",
    )
    # The gateway refuses the submission's SMS, and its answer names the number: the failure
    # path is where values slip into logs.
    await clients.sms_faults({e164: 400})
    try:
        request = await clients.submit(
            citizen,
            key=str(uuid.uuid4()),
            sub_service=SUB_SERVICE,
            description=f"My name is written wrongly in the passports records, it is {name_en}",
            documents=[passport.document_id],
            mobile=mobile,
            email=email,
            fields=fields,
        )
        await eventually(
            lambda: _sms_failed(clients, citizen, request.request_id),
            what="the refused SMS recorded failed",
        )
    finally:
        await clients.clear_sms_faults()

    # Refused input is as personal as accepted input.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.submit(
            citizen,
            key=str(uuid.uuid4()),
            sub_service=SUB_SERVICE,
            description=f"Again for {name_en}\x00 with a NUL in it, which is refused at the door",
            documents=[passport.document_id],
            mobile=mobile,
            email=email,
            fields=fields,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # Routing, review and notify each take the request in, and a reviewer opens it.
    reviewer = clients.token("E9001", Role.REVIEWER, frozenset({"corrections"}))

    async def opened() -> review_pb2.WorkItem | None:
        try:
            answer = await clients.review.GetWorkItem(
                review_pb2.GetWorkItemRequest(request_id=request.request_id),
                timeout=TIMEOUT,
                metadata=bearer(reviewer),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return answer.item

    await eventually(opened, what="the request in review")

    # Tracking without login: the details and the one-time code pass intake and notify.
    await clients.intake.StartTracking(
        intake_pb2.StartTrackingRequest(
            request_number=request.request_number, id_number=national_id, mobile=mobile
        ),
        timeout=TIMEOUT,
    )

    async def one_time_code() -> str | None:
        texts = [m["text"] for m in await clients.sms_received() if m["to"] == e164]
        codes = [found.group(0) for t in texts if (found := re.search(r"\b[0-9]{6}\b", t))]
        return codes[-1] if codes else None

    code = await eventually(one_time_code, what="the one-time code by SMS")
    tracked = await clients.intake.TrackRequest(
        intake_pb2.TrackRequestRequest(
            request_number=request.request_number,
            id_number=national_id,
            mobile=mobile,
            code=code,
        ),
        timeout=TIMEOUT,
    )
    assert tracked.request.request_number == request.request_number

    # The same through the gateway, as the web page does: tracking, then a refused submission.
    async with httpx.AsyncClient(base_url=stack.config.gateway_url, timeout=TIMEOUT) as http:
        details = {
            "request_number": request.request_number,
            "id_number": national_id,
            "mobile": mobile,
        }
        started = await http.post("/api/v1/tracking/start", json=details)
        assert started.status_code == 200, started.text
        wrong = await http.post("/api/v1/tracking/track", json={**details, "code": "000000"})
        assert wrong.status_code in (404, 429), wrong.text
        refused = await http.post(
            "/api/v1/requests",
            headers={"Authorization": f"Bearer {citizen}"},
            json={
                "idempotency_key": str(uuid.uuid4()),
                "sub_service_code": SUB_SERVICE,
                "description": f"Short {name_en}",
                "contact": {"mobile": f"{mobile}x", "email": email},
                "fields": {**fields, "id_number": f"{national_id}9"},
            },
        )
        assert refused.status_code == 400, refused.text

    # Long random values, looked for anywhere; the six-digit code only as a number of its own,
    # so that a log's ids and timestamps cannot match it by chance (a timestamp's microseconds
    # follow a point: "16:29:10.643294Z" once matched a code of 643294).
    canaries = {
        "national ID": re.escape(national_id),
        "mobile": re.escape(local),  # inside every written form: 05…, +9665…, 009665…
        "Arabic name": re.escape(name_ar),
        "English name": re.escape(name_en),
        "name's tag": re.escape(tag),  # the name however escaped or cut
        "Arabic name's tag": re.escape(tag_ar),
        "e-mail": re.escape(email),
        "one-time code": rf"(?<![0-9A-Fa-f.]){code}(?![0-9A-Fa-f])",
    }
    logs = _service_logs(stack)
    assert {p.stem for p in logs} >= set(LOGGED)
    # Searched as written and as the JSON lines' values decode: an escape ("\u0643", "\"")
    # must not hide a value from the search.
    leaks = [
        f"{path.name}: {what}"
        for path, text in logs.items()
        for what, pattern in canaries.items()
        if re.search(pattern, text) or re.search(pattern, _decoded(text))
    ]
    assert leaks == []
    for path, text in logs.items():
        _assert_json_lines(path, text)


def _log_lines(text: str) -> list[str]:
    """A log's lines but the "=== <time> <command>" line each start of the process writes."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("=== ")]


def _decoded(text: str) -> str:
    values: list[str] = []
    for line in _log_lines(text):
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            values.extend(str(v) for v in parsed.values())
    return "\n".join(values)


# What every line of a service or the gateway holds (tawasul_platform.logs).
LINE_FIELDS = {"timestamp", "level", "service", "logger", "event"}


def _assert_json_lines(path: Path, text: str) -> None:
    """A process's own lines are JSON objects with the services' fields; gRPC's C core and a
    dying interpreter write to stderr past logging, and those lines are left as they are."""
    parsed = [json.loads(line) for line in _log_lines(text) if line.startswith("{")]
    assert parsed, path.name
    service = path.name.split("-")[0].split(".")[0]
    for line in parsed:
        assert set(line) >= LINE_FIELDS, (path.name, line)
        assert line["service"] == service, (path.name, line)
