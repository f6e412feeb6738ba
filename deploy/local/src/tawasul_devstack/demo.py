"""`tawasul-stack demo`: one request's whole journey through the running stack, step by step."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from email.message import EmailMessage
from pathlib import Path

from tawasul.common.v1 import common_pb2
from tawasul.notify.v1 import notify_pb2
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role

from tawasul_devstack import pki
from tawasul_devstack.journey import (
    PASSPORT_PHOTO_FIELDS,
    Clients,
    eventually,
    new_citizen,
    sample_pdf,
)
from tawasul_devstack.stack import StackConfig

MOBILE = "+966551234567"
REVIEWER = "E1001"
DEPARTMENT = "passports"


def _say(step: str, text: str) -> None:
    print(f"[{step}] {text}", flush=True)


def _review_cli(config: StackConfig, token: str, *args: str) -> str:
    """Runs the reviewers' CLI as a reviewer would, echoing its output."""
    command = [str(Path(sys.executable).with_name("tawasul-review-cli")), *args]
    env = {
        **os.environ,
        "TAWASUL_REVIEW_ADDRESS": config.grpc_address("review"),
        "TAWASUL_REVIEWER_TOKEN": token,
        **config.tls_env(pki.REVIEW_CLI),
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)
    print(f"    $ tawasul-review-cli {' '.join(args)}")
    for line in (done.stdout + done.stderr).splitlines():
        print(f"    {line}")
    if done.returncode:
        raise RuntimeError(f"tawasul-review-cli {args[0]} failed")
    return done.stdout


async def journey(config: StackConfig) -> None:
    async with Clients(config) as clients:
        # A new citizen each run: a person may have one open request per sub-service.
        citizen_id = new_citizen()
        citizen = clients.token(citizen_id, Role.CITIZEN)
        reviewer = clients.token(REVIEWER, Role.REVIEWER, frozenset({DEPARTMENT}))
        pdf = sample_pdf("Passport renewal receipt 4471")

        document = await clients.upload(
            citizen,
            "receipt.pdf",
            pdf,
            sub_service="passports.issue-renewal-problem",
            kind="supporting_document",
        )
        _say(
            "1 docs",
            f"uploaded {document.filename} as {document.document_kind}: {document.size_bytes}"
            f" bytes, detected {document.content_type}, id {document.document_id}",
        )

        request = await clients.submit(
            citizen,
            key=str(uuid.uuid4()),
            sub_service="passports.issue-renewal-problem",
            description="The photo does not appear when renewing passport; receipt attached",
            documents=[document.document_id],
            mobile=MOBILE,
            email=f"{citizen_id}@example.sa",
            fields={"national_id": citizen_id, **PASSPORT_PHOTO_FIELDS},
        )
        _say("2 intake", f"request number {request.request_number} (id {request.request_id})")
        expected = request.expected_completion
        _say("2 intake", f"department: {request.department_name.en} / {request.department_name.ar}")
        _say("2 intake", f"expected completion: {expected.text_en}")
        _say("2 intake", f"الموعد المتوقع للإنجاز: {expected.text_ar}")

        async def in_queue() -> bool | None:
            items = await clients.queue(reviewer, DEPARTMENT)
            return True if any(i.request_id == request.request_id for i in items) else None

        await eventually(in_queue, what="the request in its queue")
        _say("3 routing", f"routed to department queue '{DEPARTMENT}'")

        _say("4 review", "the reviewer works the queue with the review CLI:")
        _review_cli(config, reviewer, "queue", DEPARTMENT)
        _review_cli(config, reviewer, "claim", request.request_id)
        shown = _review_cli(config, reviewer, "show", request.request_id)
        url = next(line.strip() for line in shown.splitlines() if line.strip().startswith("http"))
        downloaded = await clients.http.get(url)
        same = downloaded.status_code == 200 and downloaded.content == pdf
        _say("4 review", f"attachment link downloads the same bytes: {same}")
        _review_cli(config, reviewer, "accept", request.request_id, "--message", "Photo fixed")

        async def accepted() -> common_pb2.RequestStatus.ValueType | None:
            tracked = await clients.track(citizen, request.request_number)
            return tracked.status if tracked.status == common_pb2.REQUEST_STATUS_ACCEPTED else None

        await eventually(accepted, what="the accepted status in the tracking view")
        _say("5 intake", f"tracking view of {request.request_number}: accepted")

        async def decision_sms() -> list[dict[str, str]] | None:
            return await clients.sms_to(MOBILE, request.request_number, count=3)

        for message in await eventually(decision_sms, what="the SMS"):
            _say("6 notify", f"SMS to {message['to']}: {message['text']}")

        def mails() -> list[EmailMessage] | None:
            found = [m for m in clients.emails_received() if m["To"] == f"{citizen_id}@example.sa"]
            return found if len(found) >= 3 else None

        for mail in await eventually(lambda: asyncio.to_thread(mails), what="the e-mails"):
            _say("6 notify", f"e-mail to {mail['To']}: {mail['Subject']}")
        inbox = await clients.notify.ListInbox(
            notify_pb2.ListInboxRequest(),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(citizen),
        )
        for item in reversed(inbox.messages):
            _say("6 notify", f"in-app ({item.kind}): {item.text}")
        if not same:
            raise RuntimeError("the attachment did not download intact")


def main(config: StackConfig | None = None) -> int:
    config = config or StackConfig.from_env()
    asyncio.run(journey(config))
    print("demo complete", flush=True)
    print(
        f"channels' HTTP gateway: {config.gateway_url} (API under /api/v1, described at "
        f"{config.gateway_url}/openapi.json; development sign-in: GET /dev/people, "
        'POST /dev/sign-in {"id": "1000000008"})',
        flush=True,
    )
    if os.environ.get("TAWASUL_TRACE_CONSOLE", "").lower() == "true":
        print(
            f"traces: each process's spans are JSON lines among its logs in "
            f"{config.state_dir / 'logs'} (the filing's trace id joins them)",
            flush=True,
        )
    return 0
