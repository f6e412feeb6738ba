"""Search on the real stack (issue 15): requests submitted through intake, routed, in review,
then found by a reviewer of their department by number (and a mistyped one), ID, mobile, name
(from intake's registry, through routing), description (a number in it matched whole) and
public message, as Arabic is really typed; a reviewer of another department finds none of it;
and a search while the items change state sees each one whole."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from tawasul.intake.v1 import intake_pb2
from tawasul.review.v1 import review_pb2
from tawasul_devstack.journey import Clients, eventually, new_citizen
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer, field_violations
from tawasul_platform.identity import Role

TIMEOUT = DEFAULT_DEADLINE_SECONDS
SUB_SERVICE = "passports.lost-passport-report"
DEPARTMENT = "passports"
# A person of the development registry: خالد إبراهيم الدوسري, Khalid Ibrahim Al-Dosari.
KHALID = "1045678909"
ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@dataclass
class Filed:
    citizen_id: str
    token: str
    request: intake_pb2.Request
    mobile: str
    marker: str
    # Twelve digits starting 7: read as text, not as a request number, ID or mobile.
    passport: str


async def file(clients: Clients, citizen_id: str, description: str) -> Filed:
    token = clients.token(citizen_id, Role.CITIZEN)
    mobile = f"0559{secrets.randbelow(10**6):06d}"
    marker = f"ref{uuid.uuid4().hex[:10]}"
    passport = f"7{secrets.randbelow(10**11):011d}"
    request = await clients.submit(
        token,
        key=str(uuid.uuid4()),
        sub_service=SUB_SERVICE,
        description=f"{description} {marker} A{passport.translate(ARABIC_DIGITS)}",
        documents=[],
        mobile=mobile,
        fields={
            "national_id": citizen_id,
            "loss_date": "2025-11-01",
            "loss_place": "inside_kingdom",
        },
    )
    return Filed(citizen_id, token, request, mobile, marker, passport)


async def in_review(clients: Clients, reviewer: str, filed: Filed) -> None:
    async def probe() -> bool | None:
        try:
            await clients.review.GetWorkItem(
                review_pb2.GetWorkItemRequest(request_id=filed.request.request_id),
                timeout=TIMEOUT,
                metadata=bearer(reviewer),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None  # not yet: eventually() asks again
            raise
        return True

    await eventually(probe, within=60, what="the request in review")


async def search(
    clients: Clients, reviewer: str, query: str = "", **fields: object
) -> review_pb2.SearchRequestsResponse:
    return await clients.review.SearchRequests(
        review_pb2.SearchRequestsRequest(query=query, **fields),  # type: ignore[arg-type]
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )


async def numbers(clients: Clients, reviewer: str, query: str = "", **fields: object) -> list[str]:
    return [i.request_number for i in (await search(clients, reviewer, query, **fields)).items]


@dataclass
class World:
    clients: Clients
    reviewer: str
    outsider: str
    khalid: Filed
    synthetic: Filed


@pytest.fixture(scope="module")
async def world(clients: Clients) -> AsyncIterator[World]:
    reviewer = clients.token(
        f"E8{secrets.randbelow(10**4):04d}", Role.REVIEWER, frozenset({DEPARTMENT})
    )
    outsider = clients.token("E8999", Role.REVIEWER, frozenset({"corrections", "reports"}))
    # The registry's Khalid may still have an open report from a kept stack's earlier run.
    khalid = await file(clients, KHALID, "فُقِدَ جوازي في المطار أثناء السفر")
    synthetic = await file(clients, new_citizen(), "ضاع الجواز بعد رحلة العمرة")
    for filed in (khalid, synthetic):
        await in_review(clients, reviewer, filed)
    yield World(clients, reviewer, outsider, khalid, synthetic)
    # Withdrawn, so that the next run may file for Khalid again.
    for filed in (khalid, synthetic):
        await clients.intake.CancelRequest(
            intake_pb2.CancelRequestRequest(
                request_number=filed.request.request_number, reason="end of the search test"
            ),
            timeout=TIMEOUT,
            metadata=bearer(filed.token),
        )


async def test_by_request_number_typed_every_way(world: World) -> None:
    number = world.khalid.request.request_number
    digits = number[2:]
    for typed in (
        number,
        digits,
        number.lower(),
        f"TW {digits[:4]} {digits[4:]}",
        digits.translate(ARABIC_DIGITS),
    ):
        assert await numbers(world.clients, world.reviewer, typed) == [number], typed


async def test_a_number_without_its_check_digit_or_with_a_wrong_digit_suggests_it(
    world: World,
) -> None:
    number = world.khalid.request.request_number
    digits = number[2:]
    wrong = digits[:2] + str((int(digits[2]) + 5) % 10) + digits[3:]
    for typed in (digits[:8], "TW" + wrong):
        found = await search(world.clients, world.reviewer, typed)
        assert not found.items
        assert number in [s.request_number for s in found.suggestions], typed
        # Another department's reviewer is not even told it exists (a request of their own
        # whose number is as near to what was typed may be suggested to them: the stack's
        # requests of every test are there).
        elsewhere = await search(world.clients, world.outsider, typed)
        assert not elsewhere.items
        assert number not in [s.request_number for s in elsewhere.suggestions]
        assert {s.department_code for s in elsewhere.suggestions} <= {"corrections", "reports"}


async def test_by_national_id_and_by_mobile(world: World) -> None:
    synthetic = world.synthetic
    number = synthetic.request.request_number
    assert await numbers(world.clients, world.reviewer, synthetic.citizen_id) == [number]
    assert await numbers(
        world.clients, world.reviewer, synthetic.citizen_id.translate(ARABIC_DIGITS)
    ) == [number]
    for typed in (
        synthetic.mobile,
        "+966" + synthetic.mobile[1:],
        synthetic.mobile.translate(ARABIC_DIGITS),
    ):
        assert await numbers(world.clients, world.reviewer, typed) == [number], typed


async def test_by_the_registrys_name_in_arabic_as_typed_and_in_latin(world: World) -> None:
    number = world.khalid.request.request_number
    for typed in ("خالد ابراهيم الدوسري", "خالد إبراهيم", "الدوسرى خالد", "KHALID al-dosari"):
        found = await numbers(world.clients, world.reviewer, typed, department_code=DEPARTMENT)
        assert number in found, typed
        assert world.synthetic.request.request_number not in found
    item = (await search(world.clients, world.reviewer, world.khalid.request.request_number)).items[
        0
    ]
    assert list(item.subject_names) == ["خالد إبراهيم الدوسري", "Khalid Ibrahim Al-Dosari"]
    assert item.subject_id == KHALID


async def test_by_the_description_and_a_public_message(world: World) -> None:
    khalid = world.khalid
    number = khalid.request.request_number
    # The description has harakat; the reviewer types none, and ta marbuta as ha.
    assert await numbers(world.clients, world.reviewer, f"فقد جوازي {khalid.marker}") == [number]
    assert await numbers(world.clients, world.reviewer, khalid.marker.upper()) == [number]
    said = f"يرجى إرفاق صورة محضر الشرطة msg{uuid.uuid4().hex[:8]}"
    await world.clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=khalid.request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(world.reviewer),
    )
    await world.clients.review.MessageApplicant(
        review_pb2.MessageApplicantRequest(request_id=khalid.request.request_id, text=said),
        timeout=TIMEOUT,
        metadata=bearer(world.reviewer),
    )
    assert await numbers(world.clients, world.reviewer, said.split()[-1]) == [number]
    assert await numbers(world.clients, world.reviewer, f"{said.split()[-1]} محضر الشرطه") == [
        number
    ]
    claimed = await numbers(
        world.clients,
        world.reviewer,
        khalid.marker,
        states=[review_pb2.WORK_ITEM_STATE_CLAIMED],
    )
    assert claimed == [number]
    await world.clients.review.ReleaseRequest(
        review_pb2.ReleaseRequestRequest(request_id=khalid.request.request_id),
        timeout=TIMEOUT,
        metadata=bearer(world.reviewer),
    )


async def test_by_a_number_in_the_description_matched_whole(world: World) -> None:
    synthetic = world.synthetic
    number = synthetic.request.request_number
    for typed in (
        synthetic.passport,
        "a" + synthetic.passport,
        synthetic.passport.translate(ARABIC_DIGITS),
        f"الجواز {synthetic.passport}",
    ):
        assert await numbers(world.clients, world.reviewer, typed) == [number], typed
    # A part of the number is another number.
    assert await numbers(world.clients, world.reviewer, synthetic.passport[:-1]) == []


async def test_a_reviewer_of_another_department_finds_nothing_of_it(world: World) -> None:
    khalid, synthetic = world.khalid, world.synthetic
    for query in (
        khalid.request.request_number,
        KHALID,
        synthetic.citizen_id,
        synthetic.mobile,
        "خالد الدوسري",
        khalid.marker,
        synthetic.marker,
        synthetic.passport,
    ):
        assert await numbers(world.clients, world.outsider, query) == [], query
    denied = await asyncio.gather(
        search(world.clients, world.outsider, "خالد", department_code=DEPARTMENT),
        return_exceptions=True,
    )
    assert isinstance(denied[0], grpc.aio.AioRpcError)
    assert denied[0].code() == grpc.StatusCode.PERMISSION_DENIED


async def test_bad_input_is_invalid_argument_naming_the_field(world: World) -> None:
    for fields, field in (
        ({"query": "من"}, "query"),
        ({"query": "abc", "kind": review_pb2.SEARCH_KIND_MOBILE}, "query"),
        ({"page_token": "garbage"}, "page_token"),
        ({"sla_state": 42}, "sla_state"),
    ):
        query = str(fields.pop("query", ""))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await search(world.clients, world.reviewer, query, **fields)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(field_violations(caught.value)) == {field}


async def test_a_search_while_the_item_changes_state_sees_it_whole(world: World) -> None:
    """Claims and releases run while searches read: every result is one committed row (held
    by the reviewer exactly when claimed), never a mix of before and after."""
    item_id = world.synthetic.request.request_id
    marker = world.synthetic.marker
    seen: list[review_pb2.WorkItem] = []
    done = asyncio.Event()

    async def flip() -> None:
        for _ in range(10):
            await world.clients.review.ClaimRequest(
                review_pb2.ClaimRequestRequest(request_id=item_id),
                timeout=TIMEOUT,
                metadata=bearer(world.reviewer),
            )
            await world.clients.review.ReleaseRequest(
                review_pb2.ReleaseRequestRequest(request_id=item_id),
                timeout=TIMEOUT,
                metadata=bearer(world.reviewer),
            )
        done.set()

    async def read() -> None:
        while not done.is_set():
            seen.extend((await search(world.clients, world.reviewer, marker)).items)

    await asyncio.gather(flip(), read())
    assert seen
    states = set()
    for item in seen:
        assert item.request_id == item_id
        claimed = item.state == review_pb2.WORK_ITEM_STATE_CLAIMED
        assert claimed == bool(item.assignee_id), item
        assert claimed == item.HasField("claimed_until"), item
        states.add(item.state)
    assert states <= {review_pb2.WORK_ITEM_STATE_QUEUED, review_pb2.WORK_ITEM_STATE_CLAIMED}
