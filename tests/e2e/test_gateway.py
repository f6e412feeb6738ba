"""The channels' HTTP gateway on the real stack: what a web page, a mobile app and the
establishment portal do, through HTTP only; and the SDK's retried submission."""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from tawasul.common.v1 import common_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul_devstack import pki
from tawasul_devstack.journey import Clients, eventually, new_citizen, sample_pdf
from tawasul_devstack.stack import Stack
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS
from tawasul_platform.identity import Role
from tawasul_platform.request_numbers import new_request_number
from tawasul_sdk import TawasulClient, Tls

from tests.e2e.direct import scalar

# A sample citizen no other end-to-end test files for; the establishment 7000000013 and its
# two sponsored workers; a worker of another establishment (7000000005).
CITIZEN = "1045678909"
ESTABLISHMENT = "7000000013"
OWN_WORKERS = ("2034567897", "2056789015")
FOREIGN_WORKER = "2023456789"


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.config.gateway_url, timeout=30.0) as client:
        yield client


async def sign_in(http: httpx.AsyncClient, person: str) -> dict[str, str]:
    answer = await http.post("/dev/sign-in", json={"id": person})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


async def clean(http: httpx.AsyncClient, headers: dict[str, str], document_id: str) -> None:
    async def probe() -> bool | None:
        answer = await http.get(f"/api/v1/documents/{document_id}", headers=headers)
        state = answer.json()["document"]["state"]
        assert state != "DOCUMENT_STATE_INFECTED"
        return True if state == "DOCUMENT_STATE_CLEAN" else None

    await eventually(probe, what="the document found clean")


async def cancel(http: httpx.AsyncClient, headers: dict[str, str], number: str) -> None:
    answer = await http.post(
        f"/api/v1/requests/{number}/cancel", json={"reason": "end of test"}, headers=headers
    )
    assert answer.status_code in (200, 409), answer.text


async def test_a_citizen_signs_in_uploads_submits_and_follows_the_request(
    http: httpx.AsyncClient,
) -> None:
    people = (await http.get("/dev/people")).json()["people"]
    assert {"id": CITIZEN, "kind": "citizen"}.items() <= next(
        p for p in people if p["id"] == CITIZEN
    ).items()
    headers = await sign_in(http, CITIZEN)

    catalog = (await http.get("/api/v1/catalog", params={"locale": "en"})).json()
    codes = {s["code"] for d in catalog["departments"] for s in d["sub_services"]}
    assert "passports.lost-passport-report" in codes
    assert catalog["locale"] == "en"

    upload = await http.post(
        "/api/v1/documents",
        params={
            "filename": "police-report.pdf",
            "sub_service_code": "passports.lost-passport-report",
            "document_kind": "police_report",
        },
        content=sample_pdf("Police report 2026/118"),
        headers={**headers, "Content-Type": "application/pdf"},
    )
    assert upload.status_code == 201, upload.text
    document = upload.json()["document"]
    assert (document["content_type"], document["owner_id"]) == ("application/pdf", CITIZEN)
    await clean(http, headers, document["document_id"])

    submission: dict[str, Any] = {
        "idempotency_key": str(uuid.uuid4()),
        "sub_service_code": "passports.lost-passport-report",
        "description": "My passport was lost at the airport while travelling to Riyadh last week",
        "document_ids": [document["document_id"]],
        "contact": {"mobile": "0551234567", "locale": "en"},
        "fields": {
            "national_id": CITIZEN,
            "loss_date": "2026-11-20",
            "loss_place": "inside_kingdom",
        },
    }
    bad = await http.post(
        "/api/v1/requests", json={**submission, "description": "lost"}, headers=headers
    )
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"]["code"] == "INVALID_ARGUMENT"
    assert "description" in bad.json()["error"]["fields"]

    created = await http.post("/api/v1/requests", json=submission, headers=headers)
    assert created.status_code == 201, created.text
    request = created.json()["request"]
    number = request["request_number"]
    try:
        assert request["document_ids"] == [document["document_id"]]
        assert request["status"] == "REQUEST_STATUS_SUBMITTED"
        assert request["expected_completion"]["text_en"]

        again = await http.post("/api/v1/requests", json=submission, headers=headers)
        assert again.json()["request"]["request_number"] == number

        listed = (await http.get("/api/v1/requests", headers=headers)).json()
        assert number in [r["request_number"] for r in listed["requests"]]
        got = await http.get(created.headers["location"], headers=headers)
        assert got.json()["request"]["request_number"] == number

        stranger = await sign_in(http, new_citizen())
        hidden = await http.get(f"/api/v1/requests/{number}", headers=stranger)
        assert hidden.status_code == 404
        unsigned = await http.get("/api/v1/requests")
        assert unsigned.status_code == 401

        tracking = await http.post(
            "/api/v1/tracking/start",
            json={"request_number": number, "id_number": CITIZEN, "mobile": "0551234567"},
        )
        assert tracking.status_code == 200, tracking.text
        assert tracking.json()["code_valid_seconds"] > 0
    finally:
        await cancel(http, headers, number)


async def test_bodies_past_the_limits_are_413(http: httpx.AsyncClient) -> None:
    headers = await sign_in(http, new_citizen())
    answer = await http.post(
        "/api/v1/requests",
        content=b'{"description": "' + b"x" * (300 * 1024) + b'"}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    upload = await http.post(
        "/api/v1/documents",
        params={"filename": "big.pdf"},
        content=sample_pdf("big", comment=b"x" * (10 * 1024 * 1024)),
        headers={**headers, "Content-Type": "application/pdf"},
    )
    assert upload.status_code == 413


async def test_an_establishment_files_a_csv_once_and_only_for_its_own_workers(
    http: httpx.AsyncClient,
) -> None:
    headers = await sign_in(http, ESTABLISHMENT)
    marker = uuid.uuid4().hex[:8]
    rows = [
        f"{worker},reports.general-inquiry,Iqama renewal fails with error {marker} for "
        f"this worker,0551234567,Iqama renewal"
        for worker in (*OWN_WORKERS, FOREIGN_WORKER)
    ]
    csv = "subject_id,sub_service_code,description,mobile,field.related_service\n"
    csv += "\n".join(rows) + "\n"
    url = "/api/v1/establishment/requests:bulk"
    csv_headers = {**headers, "Content-Type": "text/csv"}
    first = await http.post(url, content=csv.encode(), headers=csv_headers)
    assert first.status_code == 200, first.text
    body = first.json()
    numbers = [r.get("request_number") for r in body["results"]]
    try:
        assert (body["filed"], body["refused"]) == (2, 1), body
        assert all(numbers[:2])
        refused = body["results"][2]
        assert refused["row"] == 3
        assert refused["error"]["code"] == "PERMISSION_DENIED"
        assert "subject_id" in refused["error"]["fields"]

        again = await http.post(url, content=csv.encode(), headers=csv_headers)
        assert [r.get("request_number") for r in again.json()["results"]] == numbers

        mine = await http.get("/api/v1/requests", params={"page_size": 100}, headers=headers)
        filed = [r for r in mine.json()["requests"] if marker in r["description"]]
        assert sorted(r["request_number"] for r in filed) == sorted(numbers[:2])
        assert {r["subject_id"] for r in filed} == set(OWN_WORKERS)
    finally:
        for number in filter(None, numbers):
            await cancel(http, headers, number)


class LoseFirstSubmitReply(grpc.aio.UnaryUnaryClientInterceptor):
    """Lets the first SubmitRequest reach intake, then answers UNAVAILABLE as if the reply
    had been lost on the way back."""

    def __init__(self) -> None:
        self.lost = 0

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        call = await continuation(details, request)
        method = details.method
        name = method.decode() if isinstance(method, bytes) else str(method)
        if name.endswith("/SubmitRequest") and not self.lost:
            await call
            self.lost += 1
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                details="the reply was lost",
            )
        return call


async def test_the_sdk_retries_a_submission_whose_reply_was_lost_into_one_request(
    stack: Stack, clients: Clients
) -> None:
    config = stack.config
    tls = Tls.from_files(
        cert_file=config.tls_cert_file(), key_file=config.tls_key_file(), ca_file=config.tls_ca_file
    )
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert
    )
    lose = LoseFirstSubmitReply()
    citizen = new_citizen()
    async with TawasulClient(
        intake=grpc.aio.secure_channel(
            config.grpc_address("intake"), credentials, interceptors=[lose]
        ),
        docs=grpc.aio.secure_channel(config.grpc_address("docs"), credentials),
        token=clients.token(citizen, Role.CITIZEN),
        owns_channels=True,
    ) as sdk:
        answer = await sdk.submit_request(
            intake_pb2.SubmitRequestRequest(
                sub_service_code="reports.general-inquiry",
                description="The e-service stops at the payment step with error 4410 each time",
                contact=common_pb2.Contact(mobile="0551234567"),
            )
        )
        assert lose.lost == 1
        mine = [r async for r in sdk.all_my_requests()]
        assert [r.request_number for r in mine] == [answer.request.request_number]
        catalog = await sdk.get_catalog("en")
        assert catalog.version == sdk.catalog_version


async def test_intake_counts_tracking_attempts_per_person_the_gateway_names(
    stack: Stack, clients: Clients
) -> None:
    """Everyone who tracks through the gateway reaches intake from the gateway's address; it
    names each person's, and intake (trusting the gateway's certificate, nobody else's) counts
    their attempts apart. Counted in intake's rate-limit rows: the dev stack's limit is set
    out of reach, as every local client shares 127.0.0.1."""
    # Two subscribers' /64s (intake counts an IPv6 caller by its /64).
    guesser, someone_else = (f"2001:db8:{secrets.token_hex(2)}:{n}::5" for n in (1, 2))
    # Well formed (a malformed one is refused before it is counted), and matching nothing.
    nothing = intake_pb2.StartTrackingRequest(
        request_number=new_request_number(secrets.randbelow),
        id_number=new_citizen(),
        mobile="0551234567",
    )

    async def start(channel: Clients, address: str) -> None:
        await channel.intake.StartTracking(
            nothing,
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=(("x-forwarded-for", address),),
        )

    async def hits(address: str) -> int:
        found = await scalar(
            stack,
            "intake",
            "SELECT hits FROM rate_limits WHERE bucket = :bucket",
            # As intake writes it (ipaddress's form: a group's leading zeros dropped).
            bucket=f"start:caller:{ipaddress.IPv6Network((address, 64), strict=False)}",
        )
        return int(found or 0)

    async with Clients(stack.config, peer=pki.GATEWAY) as gateway:
        for _ in range(3):
            await start(gateway, guesser)
        await start(gateway, someone_else)
    # Another client's header is not heeded: its attempt is its own address's.
    await start(clients, someone_else)
    assert (await hits(guesser), await hits(someone_else)) == (3, 1)
