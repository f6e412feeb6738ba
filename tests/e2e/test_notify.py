"""Notifications on the real stack: every template as the running service renders it, SMS
through the development gateway (idempotency keys, faults), e-mail through the SMTP server,
exactly once each, counted once the stack has gone quiet (`gone_quiet`): every event read by
every group and every message of the request sent, so a late duplicate would be counted too."""

from __future__ import annotations

import asyncio
import re
import secrets
import signal
import uuid
from email.message import EmailMessage
from pathlib import Path

import grpc
from tawasul.common.v1 import common_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul.notify.v1 import notify_pb2
from tawasul.review.v1 import review_pb2
from tawasul_devstack.journey import Clients, eventually, new_citizen
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role

from tests.e2e.topics import envelopes, gone_quiet, publish, records

GOLDEN = Path(__file__).resolve().parents[2] / "services/notify/tests/unit/golden"
TIMEOUT = DEFAULT_DEADLINE_SECONDS
ARABIC = re.compile("[\u0600-\u06ff]")


def new_mobile() -> str:
    """A Saudi mobile of this test run's own, as a beneficiary types it and as it is stored."""
    return f"055{secrets.randbelow(10**7):07d}"


def e164(mobile: str) -> str:
    return f"+966{mobile[1:]}"


async def file_inquiry(
    clients: Clients, mobile: str, *, email: str = "", locale: str = "ar"
) -> tuple[str, str, str]:
    """A general inquiry by a new citizen; returns their token, the request id and number."""
    citizen = clients.token(new_citizen(), Role.CITIZEN)
    request = await clients.submit(
        citizen,
        key=str(uuid.uuid4()),
        sub_service="reports.general-inquiry",
        description="My exit re-entry visa does not show in Absher; please advise",
        documents=[],
        mobile=mobile,
        email=email,
        locale=locale,
    )
    return citizen, request.request_id, request.request_number


async def sms_for(clients: Clients, mobile: str) -> list[dict[str, str]]:
    return [m for m in await clients.sms_received() if m["to"] == e164(mobile)]


async def deliveries(clients: Clients, token: str, request_id: str) -> list[notify_pb2.Delivery]:
    """What notify sent about the request; nothing while notify has not read the request yet."""
    try:
        answer = await clients.notify.ListDeliveries(
            notify_pb2.ListDeliveriesRequest(request_id=request_id),
            timeout=TIMEOUT,
            metadata=bearer(token),
        )
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return []
        raise
    return list(answer.deliveries)


async def sms_status(
    clients: Clients, token: str, request_id: str, status: notify_pb2.DeliveryStatus.ValueType
) -> notify_pb2.Delivery | None:
    sms = [d for d in await deliveries(clients, token, request_id) if d.channel == "sms"]
    return sms[0] if sms and sms[0].status == status else None


async def test_every_template_as_the_running_service_renders_it(clients: Clients) -> None:
    employee = clients.token("E9001", Role.REVIEWER, frozenset({"reports"}))
    goldens = sorted(p for p in GOLDEN.glob("*.txt") if not p.name.endswith(".subject.txt"))
    assert len(goldens) >= 40
    for path in goldens:
        kind, channel, locale = path.name.removesuffix(".txt").split(".")
        preview = await clients.notify.PreviewTemplate(
            notify_pb2.PreviewTemplateRequest(kind=kind, channel=channel, locale=locale),
            timeout=TIMEOUT,
            metadata=bearer(employee),
        )
        assert preview.text == path.read_text(encoding="utf-8"), path.name
        subject = path.with_name(path.name.replace(".txt", ".subject.txt"))
        if channel == "email":
            assert preview.subject == subject.read_text(encoding="utf-8"), subject.name
        if channel == "sms":
            assert 1 <= preview.parts <= 3, path.name
            # Arabic needs UCS-2; so does an English text quoting Arabic (the sample notes).
            plain = preview.text.isascii()
            assert preview.encoding == ("gsm-7" if plain else "ucs-2"), path.name


async def test_an_email_reaches_the_mail_server_in_the_beneficiarys_language(
    stack: Stack, clients: Clients
) -> None:
    address = f"amal.{uuid.uuid4().hex[:8]}@example.sa"
    _, request_id, number = await file_inquiry(clients, new_mobile(), email=address, locale="ar")

    def mail() -> list[EmailMessage] | None:
        found = [m for m in clients.emails_received() if m["To"] == address]
        return found or None

    await eventually(lambda: asyncio.to_thread(mail), what="the receipt e-mail")
    # Counted again once nothing more can come: a second e-mail would be there by then.
    await gone_quiet(stack, {request_id})
    (message,) = await asyncio.to_thread(mail) or []
    assert number in str(message["Subject"])
    assert "تواصل" in str(message["Subject"])
    body = message.get_body(("plain",))
    assert body is not None
    assert number in body.get_content()
    assert "المديرية العامة للجوازات" in body.get_content()


async def test_an_english_request_is_told_in_english_on_every_channel(
    stack: Stack, clients: Clients
) -> None:
    mobile, address = new_mobile(), f"john.{uuid.uuid4().hex[:8]}@example.sa"
    citizen, request_id, number = await file_inquiry(clients, mobile, email=address, locale="en")

    def mail() -> list[EmailMessage]:
        return [m for m in clients.emails_received() if m["To"] == address]

    await eventually(lambda: asyncio.to_thread(lambda: mail() or None), what="the receipt e-mail")
    # Counted once nothing more can come: a second text, or one in Arabic, would be there.
    await gone_quiet(stack, {request_id})

    (message,) = await asyncio.to_thread(mail)
    assert str(message["Subject"]) == f"Your Tawasul request {number} has been received"
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert text.startswith("Dear beneficiary,\n")
    assert f"Your request {number} has been received by Tawasul, the request service" in text
    assert "General Directorate of Passports" in text
    assert not ARABIC.search(text)

    (sms,) = await sms_for(clients, mobile)
    assert sms["text"].startswith(f"Your Tawasul request {number} has been received;")
    assert "expected completion: " in sms["text"]
    # Plain text, one part though longer than a UCS-2 part (70): notify counted it as GSM-7.
    assert sms["text"].isascii()
    assert len(sms["text"]) > 70
    (told,) = [d for d in await deliveries(clients, citizen, request_id) if d.channel == "sms"]
    assert (told.text, told.parts) == (sms["text"], 1)

    inbox = await clients.notify.ListInbox(
        notify_pb2.ListInboxRequest(), timeout=TIMEOUT, metadata=bearer(citizen)
    )
    ((kind, in_app),) = [(m.kind, m.text) for m in inbox.messages if m.request_id == request_id]
    assert kind == "submitted"
    assert in_app.startswith(f"Your request {number} has been received. Expected completion: ")
    assert not ARABIC.search(in_app)


async def test_an_establishment_asked_for_information_reads_muqeems_words(
    stack: Stack, clients: Clients
) -> None:
    # The development registry's sample establishment and its worker (registry.dev.json).
    establishment = clients.token("7000000005", Role.ESTABLISHMENT)
    mobile = new_mobile()
    filed = await clients.submit(
        establishment,
        key=str(uuid.uuid4()),
        sub_service="reports.general-inquiry",
        description="Our worker's exit re-entry visa does not show in Muqeem; please advise",
        documents=[],
        mobile=mobile,
        email="",
        locale="ar",
        subject_id="2023456789",
    )
    try:
        await _returned_to_the_establishment(stack, clients, establishment, filed, mobile)
    finally:
        # One open request per person and sub-service: closed, so the next run can file it.
        await clients.intake.CancelRequest(
            intake_pb2.CancelRequestRequest(request_number=filed.request_number, reason="Done"),
            timeout=TIMEOUT,
            metadata=bearer(establishment),
        )


async def _returned_to_the_establishment(
    stack: Stack, clients: Clients, establishment: str, filed: intake_pb2.Request, mobile: str
) -> None:
    """A reviewer asks the establishment for a field; what it then reads, on track and by SMS."""
    reviewer = clients.token("E9003", Role.REVIEWER, frozenset({"reports"}))

    async def queued() -> bool | None:
        try:
            await clients.review.GetWorkItem(
                review_pb2.GetWorkItemRequest(request_id=filed.request_id),
                timeout=TIMEOUT,
                metadata=bearer(reviewer),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return True

    await eventually(queued, what="the inquiry queued in review")
    await clients.review.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=filed.request_id),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    await clients.review.RequestInformation(
        review_pb2.RequestInformationRequest(
            request_id=filed.request_id,
            missing=[
                common_pb2.MissingItem(
                    kind="field", name="reference_number", description="رقم المعاملة المتعثرة"
                )
            ],
            message="يرجى ذكر رقم المعاملة",
            respond_within_working_days=3,
        ),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )

    async def returned() -> intake_pb2.Request | None:
        seen = await clients.track(establishment, filed.request_number)
        return seen if seen.status == common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO else None

    seen = await eventually(returned, what="the inquiry returned to the establishment")
    # Muqeem's label (SPEC §2), where Absher says "بحاجة لإجراءات إضافية".
    assert (seen.status_label.ar, seen.status_label.en) == (
        "معاد لمقدم الطلب",
        "Returned to applicant",
    )
    await gone_quiet(stack, {filed.request_id})
    number = f"\u2066{filed.request_number}\u2069"
    received, claimed, asked = [m["text"] for m in await sms_for(clients, mobile)]
    assert received.startswith(f"تم استلام طلبك رقم {number} في خدمة تواصل")
    assert claimed == f"حالة طلبك رقم {number} في خدمة تواصل: قيد المراجعة."
    assert asked.startswith(f"أُعيد طلبك رقم {number} إليك لاستكماله، يرجى الرد حتى ")
    assert "رقم المعاملة المتعثرة" in asked
    assert "بحاجة لإجراءات إضافية" not in asked


async def test_a_duplicated_event_gives_one_sms(stack: Stack, clients: Clients) -> None:
    mobile = new_mobile()
    _, request_id, number = await file_inquiry(clients, mobile)
    (record,) = await records(
        stack.config.kafka_bootstrap, topics.REQUEST_SUBMITTED, {request_id}, at_least=1
    )
    # The same event, again, as a relay that crashed before marking it sent would send it.
    await publish(
        stack.config.kafka_bootstrap,
        topics.REQUEST_SUBMITTED,
        record.value or b"",
        key=record.key,
        headers=list(record.headers),
    )
    await records(stack.config.kafka_bootstrap, topics.REQUEST_SUBMITTED, {request_id}, at_least=2)
    # The original's three results are there before notify may even have read the copy: they
    # are counted, with the SMS, once notify's group is past it and has nothing left to send.
    results = await envelopes(
        stack.config.kafka_bootstrap,
        topics.NOTIFICATION_EVENTS,
        {request_id},
        at_least=3,
        quiet=stack,
    )
    assert sorted((e.notification_sent.channel, e.notification_sent.status) for e in results) == [
        ("inapp", "delivered"),
        ("sms", "delivered"),
        ("sms", "sent"),
    ]
    sms = await sms_for(clients, mobile)
    assert [number in m["text"] for m in sms] == [True]


async def test_notify_killed_between_the_gateways_answer_and_its_commit_sends_no_second_sms(
    stack: Stack, clients: Clients
) -> None:
    mobile = new_mobile()
    await clients.sms_faults({}, slow={e164(mobile): 30.0})
    try:
        citizen, request_id, number = await file_inquiry(clients, mobile)

        async def taken() -> list[dict[str, str]] | None:
            return await sms_for(clients, mobile) or None

        # The gateway has the SMS; notify waits for its answer, its delivery still pending.
        await eventually(taken, what="the gateway to take the SMS")
        pending = notify_pb2.DELIVERY_STATUS_PENDING
        await eventually(
            lambda: sms_status(clients, citizen, request_id, pending), what="a pending delivery"
        )
        assert stack.pid("notify") is not None
        await asyncio.to_thread(stack.stop_service, "notify", signal.SIGKILL)
        assert stack.pid("notify") is None  # dead (and reaped), with the SMS in flight
    finally:
        await clients.clear_sms_faults()
    await asyncio.to_thread(stack.start_service, "notify")

    settled = await eventually(
        lambda: sms_status(clients, citizen, request_id, notify_pb2.DELIVERY_STATUS_DELIVERED),
        within=60,
        what="the SMS settled by the restarted notify",
    )
    assert settled.provider_message_id == (await sms_for(clients, mobile))[0]["id"]
    await envelopes(
        stack.config.kafka_bootstrap,
        topics.NOTIFICATION_EVENTS,
        {request_id},
        at_least=3,
        quiet=stack,
    )
    sms = await sms_for(clients, mobile)
    assert [number in m["text"] for m in sms] == [True]


async def test_one_failing_number_does_not_hold_up_a_hundred_others(
    stack: Stack, clients: Clients
) -> None:
    broken = new_mobile()
    await clients.sms_faults({e164(broken): 503})
    try:
        broken_token, broken_id, _ = await file_inquiry(clients, broken)
        others = [new_mobile() for _ in range(100)]
        filed = await asyncio.gather(*(file_inquiry(clients, m) for m in others))
        ids = {request_id for _, request_id, _ in filed}

        # Two results each (sent, then the receipt), counted once the stack has gone quiet.
        results = await envelopes(
            stack.config.kafka_bootstrap,
            topics.NOTIFICATION_EVENTS,
            ids | {broken_id},
            at_least=2 * 100 + 1 + 101,
            within=120,
            quiet=stack,
        )
    finally:
        await clients.clear_sms_faults()
    assert sorted({e.notification_sent.channel for e in results}) == ["inapp", "sms"]
    sms_results = [
        (e.request_id, e.notification_sent.status)
        for e in results
        if e.notification_sent.channel == "sms"
    ]
    assert sorted(s for r, s in sms_results if r in ids) == ["delivered"] * 100 + ["sent"] * 100
    assert [s for r, s in sms_results if r == broken_id] == ["failed"]
    assert len(results) == 302  # and 101 in-app
    received = await clients.sms_received()
    counts = {m: sum(r["to"] == e164(m) for r in received) for m in [*others, broken]}
    assert counts == {**dict.fromkeys(others, 1), broken: 0}
    told = await deliveries(clients, broken_token, broken_id)
    (failed,) = [d for d in told if d.channel == "sms"]
    # Its window (the stack's 3 s) spent while the gateway took the others.
    assert failed.attempts >= 2
    assert failed.error == f"SMS gateway answered 503 after {failed.attempts} attempts"


async def test_a_gateway_down_for_everyone_is_waited_out_and_each_sms_sent_once(
    stack: Stack, clients: Clients
) -> None:
    mobiles = [new_mobile() for _ in range(5)]
    await clients.sms_faults({}, everyone=503)
    try:
        filed = await asyncio.gather(*(file_inquiry(clients, m) for m in mobiles))

        async def past_its_window() -> notify_pb2.Delivery | None:
            for token, request_id, _ in filed:
                pending = await sms_status(
                    clients, token, request_id, notify_pb2.DELIVERY_STATUS_PENDING
                )
                # Tried past the stack's retry window (3 s: the fourth try), and not given up.
                if pending is not None and pending.attempts > 4:
                    return pending
            return None

        waiting = await eventually(past_its_window, within=60, what="an SMS past its retry window")
        assert "503" in waiting.error

        # Each channel has its sender: the SMS outage holds up no in-app message.
        async def all_in_app() -> bool | None:
            told = [
                [d for d in await deliveries(clients, token, request_id) if d.channel == "inapp"]
                for token, request_id, _ in filed
            ]
            delivered = notify_pb2.DELIVERY_STATUS_DELIVERED
            return True if all(t and t[0].status == delivered for t in told) else None

        await eventually(all_in_app, what="in-app messages during the SMS outage")
    finally:
        await clients.clear_sms_faults()
    ids = {request_id for _, request_id, _ in filed}
    results = await envelopes(
        stack.config.kafka_bootstrap,
        topics.NOTIFICATION_EVENTS,
        ids,
        at_least=15,
        within=90,
        quiet=stack,
    )
    sms = sorted(
        e.notification_sent.status for e in results if e.notification_sent.channel == "sms"
    )
    assert sms == ["delivered"] * 5 + ["sent"] * 5
    for mobile, (_, _, number) in zip(mobiles, filed, strict=True):
        assert [number in m["text"] for m in await sms_for(clients, mobile)] == [True]


async def test_a_refused_number_is_recorded_failed(stack: Stack, clients: Clients) -> None:
    mobile = new_mobile()
    await clients.sms_faults({e164(mobile): 400})
    try:
        citizen, request_id, _ = await file_inquiry(clients, mobile)
        failed = await eventually(
            lambda: sms_status(clients, citizen, request_id, notify_pb2.DELIVERY_STATUS_FAILED),
            what="the refused SMS recorded failed",
        )
    finally:
        await clients.clear_sms_faults()
    assert failed.error.startswith("400: ")
    results = await envelopes(
        stack.config.kafka_bootstrap,
        topics.NOTIFICATION_EVENTS,
        {request_id},
        at_least=2,
        quiet=stack,
    )
    assert sorted((e.notification_sent.channel, e.notification_sent.status) for e in results) == [
        ("inapp", "delivered"),
        ("sms", "failed"),
    ]
    assert await sms_for(clients, mobile) == []
    # The reviewer sees it on the case's record, against the event it was to tell of.
    (submitted,) = await envelopes(
        stack.config.kafka_bootstrap, topics.REQUEST_SUBMITTED, {request_id}, at_least=1
    )
    reviewer = clients.token("E9002", Role.REVIEWER, frozenset({"reports"}))
    case = await clients.review.GetCase(
        review_pb2.GetCaseRequest(request_id=request_id), timeout=TIMEOUT, metadata=bearer(reviewer)
    )
    told = sorted((h.actor, h.action, h.text) for h in case.history if h.actor == "notify")
    assert told == [
        ("notify", "notification_delivered", f"inapp: {submitted.event_id}"),
        ("notify", "notification_failed", f"sms: {submitted.event_id}"),
    ]
