"""Intake's real gRPC server, built by its composition root, in-process on a real PostgreSQL.

Kafka is left out, so the events it would publish are checked in its outbox table; docs and
notify stand outside this tier (a stand-in for each), the registry is the development file.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import grpc
import pytest
import tawasul_intake
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test
from sqlalchemy import func, select, text, update
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul_calendar import RIYADH, WorkingCalendar
from tawasul_devstack.identity import throwaway
from tawasul_devstack.journey import eventually
from tawasul_intake import bootstrap
from tawasul_intake.adapters import tables
from tawasul_intake.adapters.events import STATUS_TO_WIRE
from tawasul_intake.adapters.registry import DEV_REGISTRY, FileRegistry
from tawasul_intake.adapters.repository import IntakeUnitOfWork, SqlRequestRepository
from tawasul_intake.app import handlers
from tawasul_intake.app.ports import DocumentInfo, Related
from tawasul_intake.domain.fields import FOREIGN_DIGITS
from tawasul_intake.domain.model import OFF_RECORD, Missing, OpenKey, Request, Status
from tawasul_intake.domain.people import Relation
from tawasul_intake.settings import IntakeSettings
from tawasul_platform import appeals
from tawasul_platform.catalog import load_catalog
from tawasul_platform.errors import InvalidArgument, Unavailable
from tawasul_platform.events import timestamp
from tawasul_platform.grpc import bearer, existing_resource, field_violations, status_details
from tawasul_platform.hygiene import CONTROL, TOO_LONG, TOO_MANY
from tawasul_platform.identity import Principal, Role
from tawasul_platform.migrations import upgrade
from tawasul_platform.sql import Database, Session
from tawasul_platform.testing import RecordedStatements, async_engine, emptied, on_loop
from tawasul_platform.tls import open_channel
from tawasul_platform.topics import APPLICANT_ACTIONS, REQUEST_STATUS_CHANGED, REQUEST_SUBMITTED

MIGRATIONS = Path(tawasul_intake.__file__).resolve().parent / "migrations"

IDENTITY = throwaway()
CITIZEN_ID = "1000000008"
CITIZEN = IDENTITY.token_for(Principal(CITIZEN_ID, Role.CITIZEN))
OTHER = IDENTITY.token_for(Principal("1000000016", Role.CITIZEN))
ESTABLISHMENT = IDENTITY.token_for(Principal("7000000005", Role.ESTABLISHMENT))
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
DESCRIPTION = "The photo does not appear when renewing passport A1234567 after paying"


async def test_a_submission_s_documents_keep_to_their_kinds_in_the_caller_s_language(
    intake: Intake,
) -> None:
    """passports.issue-renewal-problem: one personal photo at most, an image of 5 MB at most."""
    photos = [intake.uploads.upload("image/jpeg", kind="photo") for _ in range(2)]
    large = intake.uploads.upload("image/jpeg", 5 * 2**20 + 1, kind="photo")
    screenshot = intake.uploads.upload(kind="error_screenshot")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(language="ar", document_ids=[*photos, screenshot])
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _localized(caught.value) == {
        "document_ids[1]": ("ar", "صورة شخصية حديثة: 1 على الأكثر لهذه الخدمة الفرعية")
    }
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(document_ids=[large])
    assert field_violations(caught.value) == {
        "document_ids[0]": "larger than this sub-service's 5 MB for Recent personal photo"
    }
    filed = await intake.submit(document_ids=[photos[0], screenshot])
    assert list(filed.document_ids) == [photos[0], screenshot]


# Sunday 4 January 2026, 10:00 in Riyadh.
START = datetime(2026, 1, 4, 7, 0, tzinfo=UTC)


class Uploads:
    """Docs stands outside this tier: the documents each test says were uploaded."""

    def __init__(self) -> None:
        self.uploaded: dict[uuid.UUID, DocumentInfo] = {}

    def upload(
        self, content_type: str = "application/pdf", size_bytes: int = 1000, kind: str = ""
    ) -> str:
        document = uuid.uuid4()
        self.uploaded[document] = DocumentInfo(content_type, size_bytes, kind=kind)
        return str(document)

    async def describe(
        self, document_ids: tuple[uuid.UUID, ...], token: str, *, hold: bool
    ) -> dict[uuid.UUID, DocumentInfo]:
        return {d: self.uploaded[d] for d in document_ids if d in self.uploaded}


class RecordingSender:
    """Notify stands outside this tier: the codes it would send, by request number."""

    def __init__(self) -> None:
        self.codes: dict[str, str] = {}

    async def send(self, *, request: Request, code: str, valid_minutes: int) -> None:
        self.codes[request.number] = code


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Intake:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        database_url: str,
        sender: RecordingSender,
        clock: Clock,
        uploads: Uploads,
        registry: FileRegistry,
    ) -> None:
        self.stub = intake_pb2_grpc.IntakeServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)
        self.engine = async_engine(database_url, pool_size=2)
        self.sender = sender
        self.clock = clock
        self.uploads = uploads
        # The server's own: a test changes whom an account answers for in its `relations`.
        self.registry = registry
        self.subscriptions = bootstrap.subscriptions(
            lambda: IntakeUnitOfWork(Database(self.engine.sync_engine))
        )

    async def submit(
        self, token: str = CITIZEN, *, language: str = "", **fields: object
    ) -> intake_pb2.Request:
        return (await self.answer(token, language=language, **fields)).request

    async def answer(
        self, token: str = CITIZEN, *, language: str = "", **fields: object
    ) -> intake_pb2.SubmitRequestResponse:
        message = intake_pb2.SubmitRequestRequest(
            idempotency_key=str(uuid.uuid4()),
            sub_service_code="passports.issue-renewal-problem",
            description=DESCRIPTION,
            contact=common_pb2.Contact(mobile="0551234567"),
            fields={
                "national_id": CITIZEN_ID,
                "request_type": "renewal",
                "problem": "photo_not_shown",
            },
        )
        for name, value in fields.items():
            if isinstance(value, list):
                getattr(message, name).extend(value)
            elif isinstance(value, dict):
                getattr(message, name).clear()
                getattr(message, name).update(value)
            elif isinstance(value, Message):
                getattr(message, name).CopyFrom(value)
            else:
                setattr(message, name, value)
        metadata = (*bearer(token), *((("accept-language", language),) if language else ()))
        return await self.stub.SubmitRequest(message, timeout=5, metadata=metadata)

    async def tracked(self, number: str) -> intake_pb2.Request:
        """The request's status page, tracked without login by the citizen's ID and mobile
        with the code sent to them."""
        await self.stub.StartTracking(
            intake_pb2.StartTrackingRequest(
                request_number=number, id_number=CITIZEN_ID, mobile="0551234567"
            ),
            timeout=5,
        )
        answer = await self.stub.TrackRequest(
            intake_pb2.TrackRequestRequest(
                request_number=number,
                id_number=CITIZEN_ID,
                mobile="0551234567",
                code=self.sender.codes[number],
            ),
            timeout=5,
        )
        return answer.request

    async def get(self, number: str, token: str = CITIZEN) -> intake_pb2.Request:
        answer = await self.stub.GetRequest(
            intake_pb2.GetRequestRequest(request_number=number), timeout=5, metadata=bearer(token)
        )
        return answer.request

    async def track(
        self,
        request: intake_pb2.Request,
        status: Status,
        message: str,
        at: datetime,
        *,
        missing: tuple[Missing, ...] = (),
        respond_by: datetime | None = None,
        transfer_to: str = "",
        sequence: int = 0,
        reason: tuple[str, str, str] = ("", "", ""),
        appeal_until: datetime | None = None,
    ) -> None:
        """Review's status change at `at`, delivered to intake's group; `sequence`: review's
        count of the request's changes (0: from before review counted them); `reason`: a
        decision's code, Arabic and English; `appeal_until`: a rejection's last day to
        appeal, as review told it."""
        code, ar, en = reason
        change = events_pb2.RequestStatusChanged(
            request_id=request.request_id,
            request_number=request.request_number,
            status=STATUS_TO_WIRE[status],
            message=message,
            reason_code=code,
            reason=common_pb2.LocalizedText(ar=ar, en=en) if code else None,
            transfer_to_department=transfer_to,
            missing=[
                common_pb2.MissingItem(kind=m.kind, name=m.name, description=m.description)
                for m in missing
            ],
            sequence=sequence,
        )
        if respond_by is not None:
            change.respond_by.CopyFrom(timestamp(respond_by))
        if appeal_until is not None:
            change.appeal_until.CopyFrom(timestamp(appeal_until))
        event = events_pb2.Envelope(
            event_id=str(uuid.uuid4()),
            event_type="tawasul.requests.status-changed",
            request_id=request.request_id,
            occurred_at=timestamp(at),
            request_status_changed=change,
        )
        await self.subscriptions.deliver(REQUEST_STATUS_CHANGED, event)

    async def count(self, table: object) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]

    async def outbox(self, topic: str) -> list[events_pb2.Envelope]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(tables.outbox).where(tables.outbox.c.topic == topic))
            ).all()
        return [events_pb2.Envelope.FromString(row.payload) for row in rows]


@pytest.fixture
async def intake(database_url: str) -> AsyncIterator[Intake]:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    engine = async_engine(database_url, pool_size=4)
    database = Database(engine.sync_engine)
    settings = IntakeSettings(
        database_url=database_url,
        kafka_bootstrap="127.0.0.1:1",
        grpc_address="127.0.0.1:0",
        identity_issuers=IDENTITY.issuers(),
        docs_address="127.0.0.1:1",
        notify_address="127.0.0.1:1",
        registry_file=DEV_REGISTRY,
        tracking_code_secret="tracking-secret",
        tracking_per_caller_per_hour=8,
    )
    sender, clock, uploads = RecordingSender(), Clock(), Uploads()
    registry = FileRegistry.from_file(DEV_REGISTRY)
    service = bootstrap.servicer(
        settings,
        uow=lambda: IntakeUnitOfWork(database),
        documents=uploads,
        registry=registry,
        sender=sender,
        now=clock,
    )
    server = bootstrap.grpc_server(settings, service)
    await server.start()
    await server.serving(True)
    channel = open_channel(f"127.0.0.1:{server.port}", None)
    client = Intake(channel, database_url, sender, clock, uploads, registry)
    yield client
    await channel.close()
    await server.stop(1)
    await client.engine.dispose()
    await engine.dispose()


async def test_health_reports_serving(intake: Intake) -> None:
    answer = await intake.health.Check(
        health_pb2.HealthCheckRequest(service="tawasul.intake.v1.IntakeService"), timeout=5
    )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_catalog_is_served_in_either_language(intake: Intake) -> None:
    arabic = await intake.stub.GetCatalog(intake_pb2.GetCatalogRequest(), timeout=5)
    english = await intake.stub.GetCatalog(intake_pb2.GetCatalogRequest(locale="en"), timeout=5)
    assert (arabic.version, arabic.locale, english.locale) == (6, "ar", "en")
    assert [d.code for d in arabic.departments] == [d.code for d in english.departments]
    assert sum(len(d.sub_services) for d in english.departments) == 16
    passports = next(d for d in english.departments if d.code == "passports")
    problem = next(s for s in passports.sub_services if s.code == "passports.issue-renewal-problem")
    assert problem.filers == ["citizen"]
    assert {f.name for f in problem.fields if f.required} == {
        "national_id",
        "request_type",
        "problem",
    }
    assert (problem.sla_amount, problem.sla_unit) == (5, "working_days")
    # The holder's national ID names the person the request is about: a form can fill it in.
    assert [f.name for f in problem.fields if f.names_subject] == ["national_id"]
    arabic_passports = next(d for d in arabic.departments if d.code == "passports")
    assert arabic_passports.name == "الجواز السعودي وسفر المواطنين"
    # A field some options of a choice need says which: a form can show it required then.
    corrections = next(d for d in english.departments if d.code == "corrections")
    name = next(s for s in corrections.sub_services if s.code == "corrections.name-or-birth-date")
    needed = {f.name: (f.required_when.field, list(f.required_when.values)) for f in name.fields}
    assert needed["correct_date_of_birth"] == ("correction", ["date_of_birth", "both"])
    assert needed["correct_name_en"] == ("correction", ["name", "both"])
    assert not any(f.HasField("required_when") for f in problem.fields)
    # The correct names are each in one script only.
    scripts = {f.name: f.script for f in name.fields if f.script}
    assert scripts == {"correct_name_ar": "arabic", "correct_name_en": "latin"}
    # Whom a sub-service may be about: a form offers only those people.
    relations = {
        s.code: list(s.subject_relations)
        for d in english.departments
        for s in d.sub_services
        if s.subject_relations
    }
    assert relations == {
        "residents.dependents-services": ["dependent", "self"],
        "reports.absence-report": ["sponsored_worker"],
        "reports.cancel-absence-report": ["sponsored_worker"],
        "reports.edit-absent-worker-data": ["sponsored_worker"],
    }


async def test_a_nationality_is_offered_as_the_countries_it_may_name(intake: Intake) -> None:
    """Nobody types ISO codes: a nationality field comes with its countries by name, the
    sub-service's own where it is for some nationals only."""

    def field(catalog: intake_pb2.GetCatalogResponse, code: str, name: str) -> intake_pb2.FieldSpec:
        sub = next(s for d in catalog.departments for s in d.sub_services if s.code == code)
        return next(f for f in sub.fields if f.name == name)

    arabic = await intake.stub.GetCatalog(intake_pb2.GetCatalogRequest(), timeout=5)
    english = await intake.stub.GetCatalog(intake_pb2.GetCatalogRequest(locale="en"), timeout=5)
    visit = ("residents.visit-visa-extension", "visitor_nationality")
    assert [(c.value, c.label) for c in field(arabic, *visit).choices] == [
        ("SYR", "الجمهورية العربية السورية"),
        ("YEM", "اليمن"),
    ]
    assert [c.label for c in field(english, *visit).choices] == ["Syria", "Yemen"]
    update = ("corrections.passport-data-update", "nationality")
    every = field(arabic, *update).choices
    assert len(every) == 249
    labels = [c.label for c in every]
    assert labels.index("الأردن") < labels.index("اليمن") < labels.index("مصر")
    assert {c.value: c.label for c in field(english, *update).choices}["TUR"] == "Türkiye"


async def test_a_submission_is_stored_with_its_event_in_the_outbox(intake: Intake) -> None:
    request = await intake.submit()
    assert request.request_number.startswith("TW")
    assert len(request.request_number) == 11
    assert request.status == common_pb2.REQUEST_STATUS_SUBMITTED
    # Waiting for a reviewer is under review to the beneficiary (SPEC §2, seed 004).
    assert (request.status_label.ar, request.status_label.en) == ("قيد المراجعة", "Under review")
    assert request.department_name.en == "Saudi passport and citizens' travel"
    # Five working days from Sunday 10:00: the next Sunday, 10:00 Riyadh.
    assert request.expected_completion.gregorian_date == "2026-01-11"
    assert request.expected_completion.text_en == "Sunday 22 Rajab 1447 AH (11 January 2026)"
    assert request.expected_completion.hijri_date == "1447-07-22"
    assert request.catalog_version == 6
    assert request.subject_id == CITIZEN_ID
    (event,) = await intake.outbox(REQUEST_SUBMITTED)
    submitted = event.request_submitted
    assert submitted.request_number == request.request_number
    assert submitted.contact.mobile == "+966551234567"
    assert submitted.expected_completion_at.ToDatetime(tzinfo=UTC) == START + timedelta(days=7)
    assert (submitted.department_code, submitted.catalog_version) == ("passports", 6)
    assert dict(submitted.fields)["problem"] == "photo_not_shown"
    # Routing rules match on who filed and through which channel (from the sign-in token).
    assert (submitted.applicant_kind, submitted.channel) == ("citizen", "web")


async def test_the_event_names_an_establishment_and_its_portal(intake: Intake) -> None:
    portal = IDENTITY.token("7000000005", Role.ESTABLISHMENT, channel="establishment-portal")
    await intake.submit(
        portal, sub_service_code="reports.general-inquiry", subject_id="2023456789", fields={}
    )
    (event,) = await intake.outbox(REQUEST_SUBMITTED)
    submitted = event.request_submitted
    assert (submitted.applicant_kind, submitted.channel, submitted.subject_id) == (
        "establishment",
        "establishment-portal",
        "2023456789",
    )


async def test_bad_input_is_refused_field_by_field_and_nothing_is_stored(intake: Intake) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(sub_service_code="nope", description="broken")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"sub_service_code", "description"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(fields={"national_id": "1000000009", "request_type": "x"})
    assert field_violations(caught.value) == {
        "fields.national_id": "check digit does not match",
        "fields.request_type": "not one of the allowed values",
        "fields.problem": "required",
    }
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(document_ids=[str(uuid.uuid4())])
    assert set(field_violations(caught.value)) == {"document_ids[0]"}
    huge = "x" * 100_000
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(description=huge, idempotency_key=huge)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert huge[:50] not in (caught.value.details() or "")
    assert await intake.count(tables.requests) == 0
    assert await intake.count(tables.outbox) == 0


def _localized(error: grpc.aio.AioRpcError) -> dict[str, tuple[str, str]]:
    """Field → (locale, message) of each violation's google.rpc.LocalizedMessage."""
    status = status_details(error)
    assert status is not None
    found: dict[str, tuple[str, str]] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update(
                {
                    v.field: (v.localized_message.locale, v.localized_message.message)
                    for v in bad.field_violations
                }
            )
    return found


async def test_field_messages_come_in_arabic_to_a_caller_asking_for_it(intake: Intake) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(
            language="ar-SA,ar;q=0.9,en;q=0.8",
            description="broken",
            contact=common_pb2.Contact(mobile="0112345678", email="not-mail"),
            fields={"national_id": "1000000009", "request_type": "x"},
            document_ids=["nope"],
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _localized(caught.value) == {
        "description": (
            "ar",
            "قصير جدًا، اكتب 20 حرفًا على الأقل: اذكر ما كنت تفعله، وما ظهر لك (مثل رقم الخطأ)،"
            " والمستند أو الطلب المعني",
        ),
        "contact.mobile": ("ar", "رقم جوال سعودي: 05XXXXXXXX أو +9665XXXXXXXX"),
        "contact.email": ("ar", "ليس عنوان بريد إلكتروني"),
        "fields.national_id": ("ar", "رقم التحقق (الرقم الأخير) غير صحيح"),
        "fields.request_type": ("ar", "ليس من القيم المسموح بها"),
        "fields.problem": ("ar", "مطلوب"),
        "document_ids[0]": ("ar", "ليس معرّف مستند"),
    }
    # The descriptions stay English, for logs and developers.
    assert field_violations(caught.value)["fields.problem"] == "required"
    # Arabic is the default (SPEC §2): a call naming neither language gets it too.
    for neither in ("", "fr-FR"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake.submit(language=neither, description="broken")
        assert _localized(caught.value)["description"][0] == "ar"
    # The platform's own refusals, before the servicer runs, speak Arabic too.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(language="ar", contact=common_pb2.Contact(mobile="055\x001234567"))
    assert _localized(caught.value) == {"contact.mobile": ("ar", "يجب ألا يحتوي على محارف تحكم")}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(language="en-GB", description="broken")
    assert _localized(caught.value) == {
        "description": ("en", field_violations(caught.value)["description"])
    }
    assert await intake.count(tables.requests) == 0


@pytest.mark.parametrize(
    ("override", "field", "problem"),
    [
        # A NUL in a map value: refused by the platform before the servicer runs.
        (
            {"fields": {"national_id": "10000000\x0008", "request_type": "renewal"}},
            "fields.national_id",
            CONTROL,
        ),
        ({"contact": common_pb2.Contact(mobile="055\x001234567")}, "contact.mobile", CONTROL),
        ({"description": "x" * 100_000}, "description", TOO_LONG),
        ({"document_ids": [str(uuid.uuid4())] * 1001}, "document_ids", TOO_MANY),
        # Digits of another script where digits are expected: refused by intake's domain.
        (
            {
                "fields": {
                    "national_id": CITIZEN_ID.translate(ARABIC_INDIC),
                    "request_type": "renewal",
                    "problem": "photo_not_shown",
                }
            },
            "fields.national_id",
            FOREIGN_DIGITS,
        ),
    ],
)
async def test_bad_input_is_refused_by_field_before_anything_is_written(
    intake: Intake, override: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(**override)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == {field: problem}
    assert await intake.count(tables.requests) == 0
    assert await intake.count(tables.outbox) == 0


async def test_tracking_details_in_arabic_indic_digits_are_refused_by_field(
    intake: Intake,
) -> None:
    request = await intake.submit()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.stub.StartTracking(
            intake_pb2.StartTrackingRequest(
                request_number=request.request_number.translate(ARABIC_INDIC),
                id_number=CITIZEN_ID,
                mobile="0551234567",
            ),
            timeout=5,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == {"request_number": FOREIGN_DIGITS}
    assert intake.sender.codes == {}


async def test_only_the_holder_their_family_or_workers_may_be_the_subject(intake: Intake) -> None:
    son = await intake.submit(
        subject_id="1023456781",
        fields={"national_id": "1023456781", "request_type": "issue", "problem": "other"},
    )
    assert (son.subject_id, son.applicant_id) == ("1023456781", CITIZEN_ID)
    worker = await intake.submit(
        ESTABLISHMENT,
        sub_service_code="reports.general-inquiry",
        subject_id="2023456789",
        fields={},
    )
    assert worker.subject_id == "2023456789"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(
            OTHER,
            subject_id="1012345672",
            fields={"national_id": "1012345672", "request_type": "issue", "problem": "other"},
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await intake.count(tables.requests) == 2


async def test_an_id_field_naming_someone_else_than_the_subject_is_refused_on_that_field(
    intake: Intake,
) -> None:
    """SPEC §2: the citizen files for himself, yet the absence report's iqama number is
    another account's worker; the relationship check only ever saw the subject."""
    absence = {"absence_date": "2025-12-20", "worker_type": "domestic_worker"}
    for subject in ("", "2045678907"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake.submit(
                sub_service_code="reports.absence-report",
                subject_id=subject,
                fields={**absence, "iqama_number": "2000000006"},
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(field_violations(caught.value)) == {"fields.iqama_number"}
        assert "2000000006" not in (caught.value.details() or "")
    assert await intake.count(tables.requests) == 0
    assert await intake.count(tables.outbox) == 0
    # The citizen's own driver, named by both, is taken.
    driver = await intake.submit(
        sub_service_code="reports.absence-report",
        subject_id="2045678907",
        fields={**absence, "iqama_number": "2045678907"},
    )
    assert (driver.subject_id, driver.fields["iqama_number"]) == ("2045678907", "2045678907")


async def test_a_sub_service_about_some_relations_only_refuses_the_others_on_subject_id(
    intake: Intake,
) -> None:
    """SPEC §3 / seed 000: an absence report is about a worker the filer sponsors, not the
    resident's wife on his record; the dependents' services are not about the citizen's
    housemaid. Both people the account may otherwise file for."""
    resident = IDENTITY.token_for(Principal("2000000006", Role.RESIDENT))
    wife, housemaid = "2012345670", "2045678907"
    refused = (
        (
            resident,
            "reports.absence-report",
            wife,
            {"iqama_number": wife, "absence_date": "2025-12-20", "worker_type": "domestic_worker"},
            "Absence-from-work report is only about a worker the account sponsors",
        ),
        (
            CITIZEN,
            "residents.dependents-services",
            housemaid,
            {
                "request_type": "issue_id",
                "dependent_id_number": housemaid,
                "dependent_name": "Maria Santos",
                "dependent_date_of_birth": "1995-04-02",
                "relationship": "daughter",
            },
            "Dependents' services is only about the account holder or a dependent on the"
            " account holder's record",
        ),
    )
    for token, code, subject, fields, said in refused:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake.submit(token, sub_service_code=code, subject_id=subject, fields=fields)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(caught.value) == {"subject_id": said}
    assert await intake.count(tables.requests) == 0
    # The resident's wife is his to file dependents' services for.
    request = await intake.submit(
        resident,
        sub_service_code="residents.dependents-services",
        subject_id=wife,
        document_ids=[intake.uploads.upload(kind="kinship_proof")],
        fields={
            "request_type": "issue_id",
            "dependent_id_number": wife,
            "dependent_name": "Mona Adel Fahmy",
            "dependent_date_of_birth": "1990-03-01",
            "relationship": "spouse",
        },
    )
    assert (request.applicant_id, request.subject_id) == ("2000000006", wife)


async def test_an_answer_naming_someone_else_than_the_subject_is_refused(intake: Intake) -> None:
    request = await intake.submit()
    await intake.track(
        request,
        Status.NEEDS_MORE_INFO,
        "Please confirm the national ID of the passport holder",
        START + timedelta(hours=1),
        missing=(Missing("field", "national_id", "The passport holder's national ID"),),
        respond_by=START + timedelta(days=7),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.stub.RespondToInfoRequest(
            intake_pb2.RespondToInfoRequestRequest(
                request_number=request.request_number, fields={"national_id": "1000000016"}
            ),
            timeout=5,
            metadata=bearer(CITIZEN),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"fields.national_id"}
    waiting = await intake.get(request.request_number)
    assert waiting.status == common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO
    assert waiting.fields["national_id"] == CITIZEN_ID
    assert await intake.outbox(APPLICANT_ACTIONS) == []


async def test_a_former_sponsor_may_not_reopen_its_rejected_request_for_the_worker(
    intake: Intake,
) -> None:
    """The worker moved to another sponsor: the old one's request about him may be seen and
    cancelled, no longer reopened by appeal."""
    inquiry: dict[str, Any] = {"sub_service_code": "reports.general-inquiry", "fields": {}}
    request = await intake.submit(ESTABLISHMENT, subject_id="2023456789", **inquiry)
    number = request.request_number
    await intake.track(request, Status.REJECTED, "Not enough detail", START + timedelta(hours=1))
    del intake.registry.relations[("7000000005", "2023456789")]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.stub.AppealRejection(
            intake_pb2.AppealRejectionRequest(request_number=number, reason="Look again"),
            timeout=5,
            metadata=(*bearer(ESTABLISHMENT), ("accept-language", "ar")),
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.details() == (
        "the person this request is about is no longer on this account's record (a dependent,"
        " hosted visitor or sponsored worker); the request can now only be viewed or cancelled"
    )
    status = status_details(caught.value)
    assert status is not None
    localized = error_details_pb2.LocalizedMessage()
    assert [d.Unpack(localized) for d in status.details] == [True]
    assert (localized.locale, localized.message) == (
        "ar",
        "لم يعد الشخص الذي يخصه هذا الطلب مسجلًا على هذا الحساب (تابعًا أو زائرًا مستضافًا أو"
        " عاملًا مكفولًا)؛ لا يمكن الآن إلا عرض الطلب أو إلغاؤه",
    )
    seen = await intake.get(number, ESTABLISHMENT)
    assert (seen.status, seen.appealed) == (common_pb2.REQUEST_STATUS_REJECTED, False)
    assert await intake.outbox(APPLICANT_ACTIONS) == []


# A worker the establishment sponsors (registry.dev.json), transferred to the other one by
# `_transfer`, and who files for himself from his own account.
WORKER = "2023456789"
NEW_SPONSOR = IDENTITY.token_for(Principal("7000000013", Role.ESTABLISHMENT))
WORKERS_OWN = IDENTITY.token_for(Principal(WORKER, Role.RESIDENT))
INQUIRY: dict[str, Any] = {"sub_service_code": "reports.general-inquiry", "fields": {}}


def _transfer(intake: Intake) -> None:
    """The worker's sponsorship moves from the establishment to the other one."""
    del intake.registry.relations[("7000000005", WORKER)]
    intake.registry.relations[("7000000013", WORKER)] = Relation.SPONSORED_WORKER


async def test_a_new_sponsor_s_request_cancels_the_old_sponsor_s_open_one(intake: Intake) -> None:
    """The old sponsor may no longer act on its request about the transferred worker (but
    cancel it): the new one filing the same sub-service is not left waiting on it. While the
    old sponsor still answers for him, its request stands in everyone else's way."""
    old = await intake.submit(ESTABLISHMENT, subject_id=WORKER, **INQUIRY)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(WORKERS_OWN, subject_id="", **INQUIRY)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert caught.value.details() == (
        "another account has an open request for this person and sub-service"
    )
    _transfer(intake)
    new = await intake.submit(NEW_SPONSOR, subject_id=WORKER, **INQUIRY)
    assert (new.applicant_id, new.subject_id) == ("7000000013", WORKER)
    assert new.status == common_pb2.REQUEST_STATUS_SUBMITTED
    seen = await intake.get(old.request_number, ESTABLISHMENT)
    assert seen.status == common_pb2.REQUEST_STATUS_CANCELLED
    assert [(h.status, h.message) for h in seen.history][-1] == (
        common_pb2.REQUEST_STATUS_CANCELLED,
        "أُلغي تلقائيًا: لم يعد الشخص مسجلًا على سجل الحساب الذي قدّم الطلب / cancelled"
        " automatically: the person is no longer on the filing account's record",
    )
    # As a cancellation of the beneficiary's goes: review withdraws the item, notify tells the
    # old sponsor at the request's contact; the event says the office cancelled it, and why.
    [cancelled] = await intake.outbox(APPLICANT_ACTIONS)
    assert cancelled.event_type == "tawasul.requests.cancelled"
    assert (
        cancelled.request_cancelled.request_id,
        cancelled.request_cancelled.request_number,
        cancelled.request_cancelled.reason,
        cancelled.request_cancelled.applicant_id,
        cancelled.request_cancelled.contact.mobile,
        cancelled.request_cancelled.off_record,
    ) == (old.request_id, old.request_number, OFF_RECORD, "7000000005", "+966551234567", True)
    submitted = await intake.outbox(REQUEST_SUBMITTED)
    assert [e.request_submitted.request_number for e in submitted] == [
        old.request_number,
        new.request_number,
    ]
    # The new sponsor's is the open one now: the worker's own account meets it.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(WORKERS_OWN, subject_id="", **INQUIRY)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert len(await intake.outbox(APPLICANT_ACTIONS)) == 1


async def test_submissions_at_once_after_a_transfer_cancel_the_old_request_once(
    intake: Intake,
) -> None:
    """The new sponsor twice (two keys) and the worker himself, at once: one of them files,
    the others meet it, and the old sponsor's request is cancelled once."""
    old = await intake.submit(ESTABLISHMENT, subject_id=WORKER, **INQUIRY)
    _transfer(intake)
    results = await asyncio.gather(
        intake.submit(NEW_SPONSOR, subject_id=WORKER, **INQUIRY),
        intake.submit(NEW_SPONSOR, subject_id=WORKER, description=DESCRIPTION + ".", **INQUIRY),
        intake.submit(WORKERS_OWN, subject_id="", **INQUIRY),
        return_exceptions=True,
    )
    made = [r for r in results if isinstance(r, intake_pb2.Request)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(made) == 1
    assert [e.code() for e in refused] == [grpc.StatusCode.ALREADY_EXISTS] * 2
    assert (await intake.get(old.request_number, ESTABLISHMENT)).status == (
        common_pb2.REQUEST_STATUS_CANCELLED
    )
    [cancelled] = await intake.outbox(APPLICANT_ACTIONS)
    assert cancelled.request_cancelled.request_number == old.request_number
    assert await intake.count(tables.requests) == 2


@pytest.mark.parametrize("meanwhile", ["cancelled by the old sponsor", "rejected by review"])
async def test_an_old_request_finished_while_the_registry_is_asked_is_left_as_it_is(
    intake: Intake, monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    """No longer open, it stands in nobody's way: the new request is filed, the old one keeps
    what its sponsor or review made of it."""
    old = await intake.submit(ESTABLISHMENT, subject_id=WORKER, **INQUIRY)
    _transfer(intake)
    relation = FileRegistry.relation

    async def finished_meanwhile(
        registry: FileRegistry, holder: str, id_number: str
    ) -> Relation | None:
        if holder == "7000000005":
            if meanwhile == "rejected by review":
                await intake.track(old, Status.REJECTED, "Not enough detail", START)
            else:
                await intake.stub.CancelRequest(
                    intake_pb2.CancelRequestRequest(
                        request_number=old.request_number, reason="He left us"
                    ),
                    timeout=5,
                    metadata=bearer(ESTABLISHMENT),
                )
        return await relation(registry, holder, id_number)

    monkeypatch.setattr(FileRegistry, "relation", finished_meanwhile)
    new = await intake.submit(NEW_SPONSOR, subject_id=WORKER, **INQUIRY)
    assert new.status == common_pb2.REQUEST_STATUS_SUBMITTED
    seen = await intake.get(old.request_number, ESTABLISHMENT)
    if meanwhile == "rejected by review":
        assert seen.status == common_pb2.REQUEST_STATUS_REJECTED
        assert await intake.outbox(APPLICANT_ACTIONS) == []
    else:
        assert seen.status == common_pb2.REQUEST_STATUS_CANCELLED
        [cancelled] = await intake.outbox(APPLICANT_ACTIONS)
        assert cancelled.request_cancelled.reason == "He left us"
        assert not cancelled.request_cancelled.off_record


async def test_an_old_sponsor_the_registry_cannot_be_asked_about_changes_nothing(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await intake.submit(ESTABLISHMENT, subject_id=WORKER, **INQUIRY)
    _transfer(intake)
    relation = FileRegistry.relation

    async def down_for_the_old_sponsor(
        registry: FileRegistry, holder: str, id_number: str
    ) -> Relation | None:
        if holder == "7000000005":
            raise Unavailable("the registry did not answer")
        return await relation(registry, holder, id_number)

    monkeypatch.setattr(FileRegistry, "relation", down_for_the_old_sponsor)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(NEW_SPONSOR, subject_id=WORKER, **INQUIRY)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    seen = await intake.get(old.request_number, ESTABLISHMENT)
    assert seen.status == common_pb2.REQUEST_STATUS_SUBMITTED
    assert await intake.count(tables.requests) == 1
    assert await intake.outbox(APPLICANT_ACTIONS) == []


async def test_an_establishments_request_waiting_on_it_reads_returned_to_applicant(
    intake: Intake,
) -> None:
    """Muqeem's words for what Absher calls "needs additional action" (SPEC §2)."""
    inquiry: dict[str, Any] = {"sub_service_code": "reports.general-inquiry", "fields": {}}
    request = await intake.submit(ESTABLISHMENT, subject_id="2000000006", **inquiry)
    await intake.track(
        request,
        Status.NEEDS_MORE_INFO,
        "Attach the worker's iqama",
        START + timedelta(hours=1),
        respond_by=START + timedelta(days=7),
    )
    waiting = await intake.get(request.request_number, ESTABLISHMENT)
    assert waiting.status == common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO
    assert (waiting.status_label.ar, waiting.status_label.en) == (
        "معاد لمقدم الطلب",
        "Returned to applicant",
    )
    assert (waiting.history[-1].status_label.ar, waiting.history[-1].status_label.en) == (
        "معاد لمقدم الطلب",
        "Returned to applicant",
    )
    citizens = await intake.submit()
    await intake.track(
        citizens,
        Status.NEEDS_MORE_INFO,
        "Attach the receipt",
        START + timedelta(hours=1),
        respond_by=START + timedelta(days=7),
    )
    assert (await intake.get(citizens.request_number)).status_label.en == (
        "Needs additional action"
    )


async def test_a_second_open_request_names_the_first(intake: Intake) -> None:
    first = await intake.submit()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(description=DESCRIPTION + " — second attempt at the same problem")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert existing_resource(caught.value) == first.request_number
    await intake.stub.CancelRequest(
        intake_pb2.CancelRequestRequest(request_number=first.request_number, reason="Solved"),
        timeout=5,
        metadata=bearer(CITIZEN),
    )
    again = await intake.submit()
    assert again.request_number != first.request_number


async def test_dependents_without_a_number_are_each_one_open_request(intake: Intake) -> None:
    """Filed at once under the holder's number: the spouse and the newborn are two people,
    each of them typed twice one request."""

    def dependent(name: str, born: str, relationship: str) -> dict[str, str]:
        return {
            "request_type": "add_dependent",
            "dependent_name": name,
            "dependent_date_of_birth": born,
            "relationship": relationship,
        }

    spouse = dependent("منى عادل فهمي", "1990-03-01", "spouse")
    newborn = dependent("Omar Adel Fahmy", "2024-11-20", "son")
    typed_again = dependent("OMAR  adel fahmy", "2024-11-20", "son")
    results = await asyncio.gather(
        *(
            intake.submit(
                sub_service_code="residents.dependents-services",
                document_ids=[intake.uploads.upload(kind="kinship_proof")],
                fields=form,
            )
            for form in (spouse, newborn, spouse, typed_again)
        ),
        return_exceptions=True,
    )
    made = {r.fields["dependent_name"]: r for r in results if isinstance(r, intake_pb2.Request)}
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    # Whichever of the newborn's two came first.
    assert {name.casefold() for name in made} == {"منى عادل فهمي", "omar adel fahmy"}
    assert {e.code() for e in refused} == {grpc.StatusCode.ALREADY_EXISTS}
    assert {existing_resource(e) for e in refused} == {r.request_number for r in made.values()}
    async with intake.engine.connect() as conn:
        keys = (
            await conn.execute(select(tables.requests.c.subject_id, tables.requests.c.person_key))
        ).all()
    assert {subject for subject, _ in keys} == {CITIZEN_ID}
    assert len({key for _, key in keys}) == 2
    assert all(len(key) == 64 for _, key in keys)


async def test_the_holders_own_number_as_subject_tells_dependents_apart_as_none_does(
    intake: Intake,
) -> None:
    """An empty subject_id means the caller: a channel that sends the holder's own number
    instead keeps two unnumbered dependents two, and the same one, filed either way, one."""

    async def add(subject_id: str, name: str, born: str, relationship: str) -> intake_pb2.Request:
        return await intake.submit(
            sub_service_code="residents.dependents-services",
            subject_id=subject_id,
            document_ids=[intake.uploads.upload(kind="kinship_proof")],
            fields={
                "request_type": "add_dependent",
                "dependent_name": name,
                "dependent_date_of_birth": born,
                "relationship": relationship,
            },
        )

    spouse = await add(CITIZEN_ID, "منى عادل فهمي", "1990-03-01", "spouse")
    newborn = await add(CITIZEN_ID, "Omar Adel Fahmy", "2024-11-20", "son")
    assert spouse.request_number != newborn.request_number
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await add("", "منى عادل فهمي", "1990-03-01", "spouse")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert existing_resource(caught.value) == spouse.request_number
    assert await intake.count(tables.requests) == 2


async def test_concurrent_retries_of_one_key_make_one_request(intake: Intake) -> None:
    key = str(uuid.uuid4())
    answers = await asyncio.gather(*(intake.answer(idempotency_key=key) for _ in range(8)))
    assert len({a.request.request_id for a in answers}) == 1
    # One call filed it; the seven others say they filed nothing.
    assert sorted(a.replayed for a in answers) == [False] + [True] * 7
    assert await intake.count(tables.requests) == 1
    assert await intake.count(tables.outbox) == 1


async def test_concurrent_different_requests_for_one_person_make_one(intake: Intake) -> None:
    results = await asyncio.gather(
        *(intake.submit(description=f"{DESCRIPTION}, attempt {n}") for n in range(6)),
        return_exceptions=True,
    )
    made = [r for r in results if isinstance(r, intake_pb2.Request)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(made) == 1
    assert {e.code() for e in refused} == {grpc.StatusCode.ALREADY_EXISTS}
    assert {existing_resource(e) for e in refused} == {made[0].request_number}


async def test_a_visitor_files_and_finds_a_request_from_their_border_number_account(
    intake: Intake,
) -> None:
    """A visitor has no iqama: identity signs them in by their border number (the registry's
    3000000129), and their inquiry is theirs to list."""
    visitor = IDENTITY.token_for(Principal("3000000129", Role.RESIDENT))
    made = await intake.submit(
        visitor, sub_service_code="reports.general-inquiry", subject_id="", fields={}
    )
    assert (made.applicant_id, made.subject_id) == ("3000000129", "3000000129")
    listed = await intake.stub.ListMyRequests(
        intake_pb2.ListMyRequestsRequest(), timeout=5, metadata=bearer(visitor)
    )
    assert [r.request_number for r in listed.requests] == [made.request_number]


async def test_losing_a_race_with_another_account_hands_its_connection_back(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each account has its own lock: a resident and their employer filing for the resident at
    # once meet only at the unique index, and one of them loses at commit.
    resident = IDENTITY.token_for(Principal("2000000006", Role.RESIDENT))
    inquiry: dict[str, Any] = {
        "sub_service_code": "reports.general-inquiry",
        "subject_id": "2000000006",
        "fields": {},
    }
    read = SqlRequestRepository.related_to
    first: list[intake_pb2.Request] = []

    async def employer_commits_first(
        self: SqlRequestRepository,
        applicant: str,
        key: str,
        about: OpenKey,
        documents: tuple[uuid.UUID, ...],
    ) -> Related:
        found = await read(self, applicant, key, about, documents)
        if applicant == "2000000006" and not first:
            first.append(await intake.submit(ESTABLISHMENT, **inquiry))
        return found

    monkeypatch.setattr(SqlRequestRepository, "related_to", employer_commits_first)
    # A session dropped unclosed goes back only when a cyclic collection finds it.
    gc.disable()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake.submit(resident, **inquiry)
        async with intake.engine.connect() as conn:
            states = (
                await conn.scalars(
                    text(
                        "SELECT state FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            ).all()
    finally:
        gc.enable()
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert caught.value.details() == (
        "another account has an open request for this person and sub-service"
    )
    assert [r.applicant_id for r in first] == ["7000000005"]
    assert [s for s in states if s != "idle"] == []


async def test_a_key_reused_for_another_request_names_the_first(intake: Intake) -> None:
    key = str(uuid.uuid4())
    first = await intake.submit(idempotency_key=key)
    for changed in (
        {"description": DESCRIPTION + " and more"},
        {"contact": common_pb2.Contact(mobile="0559876543")},
        {"contact": common_pb2.Contact(mobile="0551234567", email="a@example.sa")},
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake.submit(idempotency_key=key, **changed)
        assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert existing_resource(caught.value) == first.request_number
    assert (await intake.submit(idempotency_key=key)).request_number == first.request_number
    # The page's language switched before its retry: the same request, in the language it
    # was filed in.
    english = common_pb2.Contact(mobile="0551234567", locale="en")
    again = await intake.submit(idempotency_key=key, contact=english)
    assert again.request_number == first.request_number


@pytest.mark.parametrize(
    ("language", "named", "told_in"),
    [("en-GB,en;q=0.9", "", "en"), ("", "", "ar"), ("fr", "", "ar"), ("en", "ar", "ar")],
)
async def test_the_beneficiary_is_told_in_the_language_named_else_in_the_calls(
    intake: Intake, language: str, named: str, told_in: str
) -> None:
    """Notify writes in the submission's contact.locale: one the channel left empty is the
    language the call asks in (an app's Accept-Language, which the gateway passes on), Arabic
    by default (SPEC §2); one named wins."""
    filed = await intake.submit(
        language=language, contact=common_pb2.Contact(mobile="0551234567", locale=named)
    )
    (submitted,) = [e.request_submitted for e in await intake.outbox(REQUEST_SUBMITTED)]
    assert (submitted.request_number, submitted.contact.locale) == (filed.request_number, told_in)


async def test_calls_without_a_valid_token_are_unauthenticated(intake: Intake) -> None:
    for metadata in ((), bearer("x.y")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake.stub.GetRequest(
                intake_pb2.GetRequestRequest(request_number="TW482913578"),
                timeout=5,
                metadata=metadata,
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_tracking_shows_own_requests_only(intake: Intake) -> None:
    request = await intake.submit()
    mine = await intake.stub.GetRequest(
        intake_pb2.GetRequestRequest(request_number=request.request_number),
        timeout=5,
        metadata=bearer(CITIZEN),
    )
    assert mine.request.request_id == request.request_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.stub.GetRequest(
            intake_pb2.GetRequestRequest(request_number=request.request_number),
            timeout=5,
            metadata=bearer(OTHER),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_my_requests_come_newest_first_page_by_page(intake: Intake) -> None:
    codes = ["reports.general-inquiry", "passports.lost-passport-report"]
    made = [await intake.submit()]
    intake.clock.now += timedelta(minutes=1)
    made.append(await intake.submit(sub_service_code=codes[0], fields={}))
    intake.clock.now += timedelta(minutes=1)
    made.append(
        await intake.submit(
            sub_service_code=codes[1],
            fields={
                "national_id": CITIZEN_ID,
                "loss_date": "2025-12-30",
                "loss_place": "inside_kingdom",
            },
        )
    )
    seen: list[str] = []
    token = ""
    while True:
        page = await intake.stub.ListMyRequests(
            intake_pb2.ListMyRequestsRequest(page_size=2, page_token=token),
            timeout=5,
            metadata=bearer(CITIZEN),
        )
        seen += [r.request_number for r in page.requests]
        token = page.next_page_token
        if not token:
            break
    assert seen == [r.request_number for r in reversed(made)]
    # The last: an instant that exists at its offset but not in UTC, year 0 there.
    beyond = base64.urlsafe_b64encode(f"0001-01-01T00:00:00+01:00|{uuid.uuid4()}".encode())
    for forged in ("garbage!", beyond.decode()):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake.stub.ListMyRequests(
                intake_pb2.ListMyRequestsRequest(page_token=forged),
                timeout=5,
                metadata=bearer(CITIZEN),
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(field_violations(caught.value)) == {"page_token"}


async def test_follow_up_opens_after_three_working_days(intake: Intake) -> None:
    request = await intake.submit()
    ask = intake_pb2.FollowUpRequest(request_number=request.request_number, message="Any news?")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.stub.FollowUp(ask, timeout=5, metadata=bearer(CITIZEN))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # Three working days from Sunday 10:00: Wednesday 10:00.
    assert "7 January 2026" in (caught.value.details() or "")
    assert request.follow_up_from.gregorian_date == "2026-01-07"
    intake.clock.now = START + timedelta(days=3)
    answer = await intake.stub.FollowUp(ask, timeout=5, metadata=bearer(CITIZEN))
    assert answer.request.follow_up_count == 1
    (event,) = await intake.outbox(APPLICANT_ACTIONS)
    assert event.request_followed_up.message == "Any news?"


async def test_cancel_while_undecided(intake: Intake) -> None:
    request = await intake.submit()
    cancel = intake_pb2.CancelRequestRequest(request_number=request.request_number, reason="Done")
    answer = await intake.stub.CancelRequest(cancel, timeout=5, metadata=bearer(CITIZEN))
    assert answer.request.status == common_pb2.REQUEST_STATUS_CANCELLED
    assert [h.status for h in answer.request.history] == [
        common_pb2.REQUEST_STATUS_SUBMITTED,
        common_pb2.REQUEST_STATUS_CANCELLED,
    ]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.stub.CancelRequest(cancel, timeout=5, metadata=bearer(CITIZEN))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    (event,) = await intake.outbox(APPLICANT_ACTIONS)
    assert (event.request_cancelled.reason, event.request_cancelled.off_record) == ("Done", False)


async def test_a_request_cancelled_while_waiting_no_longer_asks_for_anything(
    intake: Intake,
) -> None:
    request = await intake.submit()
    receipt = Missing("document", "receipt", "The payment receipt")
    await intake.track(
        request,
        Status.NEEDS_MORE_INFO,
        "Attach the receipt",
        START + timedelta(minutes=1),
        missing=(receipt,),
        respond_by=START + timedelta(days=3),
    )
    waiting = await intake.get(request.request_number)
    assert [m.name for m in waiting.missing] == ["receipt"]
    assert waiting.HasField("respond_by")
    cancel = intake_pb2.CancelRequestRequest(request_number=request.request_number, reason="Done")
    answer = await intake.stub.CancelRequest(cancel, timeout=5, metadata=bearer(CITIZEN))
    for shown in (answer.request, await intake.get(request.request_number)):
        assert shown.status == common_pb2.REQUEST_STATUS_CANCELLED
        assert list(shown.missing) == []
        assert not shown.HasField("respond_by")


async def test_requests_cancelled_while_waiting_under_earlier_code_ask_for_nothing(
    intake: Intake, database_url: str
) -> None:
    """Revision 0006 clears what cancellations kept of the information request they ended."""
    cancelled, waiting = (
        await intake.submit(),
        await intake.submit(sub_service_code="reports.general-inquiry", fields={}),
    )
    cancel = intake_pb2.CancelRequestRequest(request_number=cancelled.request_number, reason="x")
    await intake.stub.CancelRequest(cancel, timeout=5, metadata=bearer(CITIZEN))
    asked = {"missing": '[{"kind": "document", "name": "receipt", "description": "The receipt"}]'}
    async with intake.engine.begin() as conn:
        await conn.execute(
            text("UPDATE requests SET missing = CAST(:missing AS jsonb), respond_by = now()"),
            asked,
        )
        await conn.execute(
            text("UPDATE requests SET status = 'needs_more_info' WHERE number = :number"),
            {"number": waiting.request_number},
        )
        await conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    # 0006 alone: the schema is the head's already (later revisions add columns).
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url, "0006")
    shown = {
        number: [m.name for m in (await intake.get(number)).missing]
        for number in (cancelled.request_number, waiting.request_number)
    }
    assert shown == {cancelled.request_number: [], waiting.request_number: ["receipt"]}


async def test_a_decision_review_took_before_the_cancellation_reached_it_stands(
    intake: Intake,
) -> None:
    """The beneficiary cancels while review's acceptance is on its way to intake: review
    decided first (it never decides a withdrawn request), so tracking shows the decision."""
    request = await intake.submit()
    cancel = intake_pb2.CancelRequestRequest(request_number=request.request_number, reason="Done")
    answer = await intake.stub.CancelRequest(cancel, timeout=5, metadata=bearer(CITIZEN))
    assert answer.request.status == common_pb2.REQUEST_STATUS_CANCELLED
    await intake.track(
        request,
        Status.ACCEPTED,
        "Approved: collect the passport from the Riyadh office",
        START + timedelta(minutes=1),
    )
    stored = await intake.get(request.request_number)
    assert stored.status == common_pb2.REQUEST_STATUS_ACCEPTED
    assert stored.decision_message == "Approved: collect the passport from the Riyadh office"
    assert [(h.status, h.message) for h in stored.history] == [
        (common_pb2.REQUEST_STATUS_SUBMITTED, ""),
        (common_pb2.REQUEST_STATUS_CANCELLED, "Done"),
        (
            common_pb2.REQUEST_STATUS_ACCEPTED,
            "Approved: collect the passport from the Riyadh office",
        ),
    ]
    # Review restates the acceptance for the beneficiary once the cancellation reaches it:
    # tracking already shows it, and shows it once.
    await intake.track(request, Status.ACCEPTED, "", START + timedelta(minutes=2))
    assert await intake.get(request.request_number) == stored
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.stub.CancelRequest(cancel, timeout=5, metadata=bearer(CITIZEN))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    (event,) = await intake.outbox(APPLICANT_ACTIONS)
    assert event.request_cancelled.reason == "Done"


async def test_an_event_that_is_no_status_change_of_a_request_is_refused(intake: Intake) -> None:
    """Refused as bad input (dead-lettered at once), never retried as if it could pass."""
    not_a_change = events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        request_submitted=events_pb2.RequestSubmitted(request_id=str(uuid.uuid4())),
    )
    with pytest.raises(InvalidArgument) as caught:
        await intake.subscriptions.deliver(REQUEST_STATUS_CHANGED, not_a_change)
    assert set(caught.value.violations) == {"payload"}
    no_id = events_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        request_status_changed=events_pb2.RequestStatusChanged(
            request_id="TW123", status=common_pb2.REQUEST_STATUS_UNDER_REVIEW
        ),
    )
    with pytest.raises(InvalidArgument) as caught:
        await intake.subscriptions.deliver(REQUEST_STATUS_CHANGED, no_id)
    assert caught.value.violations == {"request_id": "not a UUID"}


async def test_a_status_change_replayed_after_a_later_one_changes_nothing(
    intake: Intake,
) -> None:
    """Review's claim was dead-lettered here and replayed after its information request (or
    came late, from a clock behind): the beneficiary is still asked for what is missing."""
    request = await intake.submit()
    respond_by = START + timedelta(days=5)
    asked = START + timedelta(minutes=2)
    await intake.track(
        request, Status.NEEDS_MORE_INFO, "Add a photo", asked, respond_by=respond_by, sequence=2
    )
    # The claim's clock ran ahead of the information request's: time cannot tell them apart.
    await intake.track(request, Status.UNDER_REVIEW, "", asked + timedelta(minutes=1), sequence=1)
    await intake.track(request, Status.UNDER_REVIEW, "", asked + timedelta(minutes=1), sequence=2)
    stored = await intake.get(request.request_number)
    assert stored.status == common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO
    assert [h.status for h in stored.history] == [
        common_pb2.REQUEST_STATUS_SUBMITTED,
        common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
    ]
    # A later one applies, and so does one from before review counted them (0), as ever.
    await intake.track(request, Status.TRANSFERRED, "", asked, transfer_to="visas", sequence=3)
    await intake.track(request, Status.UNDER_REVIEW, "", asked + timedelta(minutes=3))
    stored = await intake.get(request.request_number)
    assert (stored.status, stored.department_code) == (
        common_pb2.REQUEST_STATUS_UNDER_REVIEW,
        "visas",
    )
    async with intake.engine.connect() as conn:
        row = (await conn.execute(select(tables.requests))).one()
    assert row.status_sequence == 3


async def test_a_transferred_request_shows_the_department_it_went_to(intake: Intake) -> None:
    request = await intake.submit()
    assert request.department_code != "visas"
    await intake.track(
        request, Status.TRANSFERRED, "", START + timedelta(minutes=1), transfer_to="visas"
    )
    moved = await intake.get(request.request_number)
    assert moved.status == common_pb2.REQUEST_STATUS_TRANSFERRED
    assert moved.department_code == "visas"
    assert moved.department_name.en == load_catalog().departments["visas"].name.en


async def test_tracking_without_login(intake: Intake) -> None:
    request = await intake.submit()
    number, mobile = request.request_number, "+966551234567"
    start = intake_pb2.StartTrackingRequest(
        request_number=number, id_number=CITIZEN_ID, mobile="0551234567"
    )
    answer = await intake.stub.StartTracking(start, timeout=5)
    assert answer.code_valid_seconds == 300
    code = intake.sender.codes[number]
    async with intake.engine.connect() as conn:
        stored = (await conn.execute(select(tables.tracking_codes))).one()
    assert code not in stored.code_hash
    wrong = [
        (number, "1000000016", mobile, code),
        (number, CITIZEN_ID, "0559999999", code),
        ("TW482913578", CITIZEN_ID, mobile, code),
        (number, CITIZEN_ID, mobile, "000000" if code != "000000" else "111111"),
    ]
    details = set()
    for typed_number, id_number, typed_mobile, typed_code in wrong:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake.stub.TrackRequest(
                intake_pb2.TrackRequestRequest(
                    request_number=typed_number,
                    id_number=id_number,
                    mobile=typed_mobile,
                    code=typed_code,
                ),
                timeout=5,
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        details.add(caught.value.details())
    assert len(details) == 1
    tracked = await intake.stub.TrackRequest(
        intake_pb2.TrackRequestRequest(
            request_number=number, id_number=CITIZEN_ID, mobile=mobile, code=code
        ),
        timeout=5,
    )
    assert tracked.request.request_number == number
    # The limits (5 an hour per request here) are counted in the database, not in a process.
    refused: list[grpc.StatusCode] = []
    for _ in range(10):
        try:
            await intake.stub.StartTracking(start, timeout=5)
        except grpc.aio.AioRpcError as error:
            refused.append(error.code())
    assert refused == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 6
    async with intake.engine.begin() as conn:
        await conn.execute(
            update(tables.rate_limits).values(window_start=START - timedelta(hours=2))
        )
    await intake.stub.StartTracking(start, timeout=5)


async def test_tracking_without_login_shows_the_status_page_and_nothing_filed(
    intake: Intake,
) -> None:
    """Number, ID and a texted code prove less than the account's sign-in: the answer is what
    a status page needs (status, the office's messages, dates, what is asked), never what was
    filed (description, fields, documents, who filed) nor what the beneficiary wrote since."""
    request = await intake.submit(document_ids=[intake.uploads.upload()])
    number = request.request_number
    await intake.track(
        request,
        Status.NEEDS_MORE_INFO,
        "Please attach a clear photo",
        START + timedelta(hours=1),
        missing=(Missing("document", "photo", "A clear photo on a white background"),),
        respond_by=START + timedelta(days=7),
    )

    async def tracked() -> intake_pb2.Request:
        return await intake.tracked(number)

    def status_page(full: intake_pb2.Request) -> intake_pb2.Request:
        page = intake_pb2.Request()
        page.CopyFrom(full)
        for field in page.DESCRIPTOR.fields:
            if field.name not in STATUS_PAGE:
                page.ClearField(field.name)  # type: ignore[arg-type]
        return page

    waiting = await tracked()
    assert waiting == status_page(await intake.get(number))
    assert [m.name for m in waiting.missing] == ["photo"]
    assert waiting.respond_by.gregorian_date == "2026-01-11"
    assert [h.message for h in waiting.history] == ["", "Please attach a clear photo"]
    assert (waiting.description, waiting.subject_id, waiting.applicant_id) == ("", "", "")
    assert (dict(waiting.fields), list(waiting.document_ids), waiting.request_id) == ({}, [], "")

    # What the beneficiary wrote (an answer, an appeal) is theirs: the status change shows,
    # its text does not.
    await intake.stub.RespondToInfoRequest(
        intake_pb2.RespondToInfoRequestRequest(
            request_number=number, message="My passport number is A7654321"
        ),
        timeout=5,
        metadata=bearer(CITIZEN),
    )
    await intake.track(request, Status.REJECTED, "The photo is unclear", START + timedelta(hours=3))
    await intake.stub.AppealRejection(
        intake_pb2.AppealRejectionRequest(
            request_number=number, reason="My brother 1000000016 has the same problem"
        ),
        timeout=5,
        metadata=bearer(CITIZEN),
    )
    full = await intake.get(number)
    assert "My passport number is A7654321" in [h.message for h in full.history]
    appealed = await tracked()
    assert [(h.status, h.message) for h in appealed.history] == [
        (common_pb2.REQUEST_STATUS_SUBMITTED, ""),
        (common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO, "Please attach a clear photo"),
        (common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT, ""),
        (common_pb2.REQUEST_STATUS_REJECTED, "The photo is unclear"),
        (common_pb2.REQUEST_STATUS_UNDER_REVIEW, ""),
    ]
    del full.history[:]
    full.history.extend(appealed.history)
    assert appealed == status_page(full)
    # A history stored before its entries named their author reads the same.
    async with intake.engine.begin() as conn:
        stored = (await conn.execute(select(tables.requests.c.history))).scalar_one()
        assert {h.pop("by") for h in stored} == {"office", "beneficiary"}
        await conn.execute(update(tables.requests).values(history=stored))
    assert await tracked() == appealed


async def test_a_decision_shows_its_reason_with_its_message_and_no_expected_date(
    intake: Intake,
) -> None:
    request = await intake.submit()
    number = request.request_number
    await intake.track(
        request,
        Status.REJECTED,
        "The visa number differs from our records",
        START + timedelta(hours=1),
        reason=("data-mismatch", "البيانات لا تطابق السجلات", "The data does not match"),
    )
    shown = await intake.get(number)
    assert (shown.decision_reason_code, shown.decision_message) == (
        "data-mismatch",
        "The visa number differs from our records",
    )
    assert shown.decision_reason == common_pb2.LocalizedText(
        ar="البيانات لا تطابق السجلات", en="The data does not match"
    )
    assert not shown.HasField("expected_completion")
    async with intake.engine.connect() as conn:
        stored = await conn.scalar(select(tables.requests.c.decision_reason))
    assert stored == {
        "code": "data-mismatch",
        "ar": "البيانات لا تطابق السجلات",
        "en": "The data does not match",
    }
    tracked = await intake.tracked(number)
    assert (tracked.decision_reason_code, tracked.decision_reason) == (
        shown.decision_reason_code,
        shown.decision_reason,
    )
    # An unset date stays unset on the status page too, not an empty one.
    assert not tracked.HasField("expected_completion")


async def test_a_rejection_keeps_the_last_day_to_appeal_review_told(intake: Intake) -> None:
    """Stored as told, not worked out again on a calendar changed since: the status page
    shows it (an appeal on that day goes by it too: test_request)."""
    request = await intake.submit()
    rejected_at = START + timedelta(hours=1)
    worked_out = appeals.appeal_until(WorkingCalendar(), rejected_at)
    told = worked_out + timedelta(days=2)  # review's calendar had two more closed days
    await intake.track(request, Status.REJECTED, "Unclear photo", rejected_at, appeal_until=told)
    shown = await intake.get(request.request_number)
    assert shown.appeal_until.gregorian_date == told.astimezone(RIYADH).date().isoformat()
    async with intake.engine.connect() as conn:
        stored = await conn.scalar(
            select(tables.requests.c.appeal_told).where(
                tables.requests.c.number == request.request_number
            )
        )
    assert stored == told


# What tracking without login shows of a request.
STATUS_PAGE = frozenset(
    {
        "request_number",
        "sub_service_code",
        "status",
        "submitted_at",
        "updated_at",
        "decision_message",
        "decision_reason_code",
        "decision_reason",
        "department_code",
        "department_name",
        "status_label",
        "expected_completion",
        "history",
        "follow_up_from",
        "missing",
        "respond_by",
        "appealed",
        "appeal_until",
    }
)


async def test_spent_tracking_rows_are_forgotten_in_postgresql(intake: Intake) -> None:
    request = await intake.submit()
    for mobile in ("0551234567", "0559999999"):  # a match, and a guess
        await intake.stub.StartTracking(
            intake_pb2.StartTrackingRequest(
                request_number=request.request_number, id_number=CITIZEN_ID, mobile=mobile
            ),
            timeout=5,
        )
    # The address's counter, and the number's one per set of details typed.
    assert (await intake.count(tables.tracking_codes), await intake.count(tables.rate_limits)) == (
        1,
        3,
    )
    policy = handlers.TrackingPolicy(secret=b"tracking-secret")

    async def forget(now: datetime, batch: int = 1000) -> bool:
        uow = IntakeUnitOfWork(Database(intake.engine.sync_engine))
        return await handlers.forget_tracking(uow=uow, policy=policy, now=now, batch=batch)

    assert await forget(START + timedelta(minutes=1)) is False  # nothing spent yet
    assert await intake.count(tables.tracking_codes) == 1
    assert await forget(START + policy.window, batch=1) is True
    assert await forget(START + policy.window) is False
    assert (await intake.count(tables.tracking_codes), await intake.count(tables.rate_limits)) == (
        0,
        0,
    )


async def test_a_document_of_an_open_request_is_not_attached_twice(intake: Intake) -> None:
    document = intake.uploads.upload()
    first = await intake.submit(document_ids=[document])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(
            sub_service_code="reports.general-inquiry", fields={}, document_ids=[document]
        )
    assert field_violations(caught.value) == {
        "document_ids[0]": f"already attached to open request {first.request_number}"
    }


async def test_an_information_request_is_answered_with_fields_and_documents(
    intake: Intake,
) -> None:
    request = await intake.submit()
    respond_by = START + timedelta(days=7)
    await intake.track(
        request,
        Status.NEEDS_MORE_INFO,
        "Please attach a clear photo and your passport number",
        START + timedelta(hours=1),
        missing=(
            Missing("document", "photo", "A clear photo on a white background"),
            Missing("field", "passport_number", "The number of your current passport"),
        ),
        respond_by=respond_by,
    )
    waiting = await intake.get(request.request_number)
    assert waiting.status == common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO
    assert [(m.kind, m.name) for m in waiting.missing] == [
        ("document", "photo"),
        ("field", "passport_number"),
    ]
    assert waiting.respond_by.gregorian_date == "2026-01-11"
    # The clock is paused: the promised date moves out while the request waits.
    intake.clock.now = START + timedelta(days=2)
    later = await intake.get(request.request_number)
    assert later.expected_completion.at.ToDatetime() > waiting.expected_completion.at.ToDatetime()

    answer = intake_pb2.RespondToInfoRequestRequest(
        request_number=request.request_number,
        message="Attached the photo; my passport number is below",
        fields={"passport_number": "a1234567"},
        document_ids=[intake.uploads.upload()],
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.stub.RespondToInfoRequest(
            intake_pb2.RespondToInfoRequestRequest(
                request_number=request.request_number, fields={"passport_number": "#"}
            ),
            timeout=5,
            metadata=bearer(CITIZEN),
        )
    assert set(field_violations(caught.value)) == {"fields.passport_number"}
    answered = await intake.stub.RespondToInfoRequest(answer, timeout=5, metadata=bearer(CITIZEN))
    assert answered.request.status == common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT
    assert answered.request.fields["passport_number"] == "A1234567"
    assert list(answered.request.missing) == []
    (event,) = await intake.outbox(APPLICANT_ACTIONS)
    assert event.request_answered.message == answer.message
    assert list(event.request_answered.document_ids) == list(answer.document_ids)
    # The same answer again (its reply lost on the way): the request as it is, taken once.
    again = await intake.stub.RespondToInfoRequest(answer, timeout=5, metadata=bearer(CITIZEN))
    assert again.request == answered.request
    assert len(await intake.outbox(APPLICANT_ACTIONS)) == 1
    # Another answer, once the request waits for none, is refused.
    other = intake_pb2.RespondToInfoRequestRequest()
    other.CopyFrom(answer)
    del other.document_ids[:]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.stub.RespondToInfoRequest(other, timeout=5, metadata=bearer(CITIZEN))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_an_answer_sent_again_under_its_key_after_a_new_question_is_taken_once(
    intake: Intake,
) -> None:
    """The channel's retry of an answer (its reply lost) reaches intake after review asked
    for more: under the answer's key it is the same answer, not the answer to the new
    question; the key of an answer taken, with something else said, is refused."""
    request = await intake.submit()
    respond_by = START + timedelta(days=7)
    await intake.track(
        request, Status.NEEDS_MORE_INFO, "Attach the receipt", START, respond_by=respond_by
    )
    answer = intake_pb2.RespondToInfoRequestRequest(
        request_number=request.request_number,
        message="Attached the receipt",
        document_ids=[intake.uploads.upload()],
        idempotency_key="answer-7f3a",
    )
    answered = await intake.stub.RespondToInfoRequest(answer, timeout=5, metadata=bearer(CITIZEN))
    assert answered.request.status == common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT
    await intake.track(
        request,
        Status.NEEDS_MORE_INFO,
        "The receipt is unreadable",
        START + timedelta(hours=2),
        respond_by=respond_by,
    )
    again = await intake.stub.RespondToInfoRequest(answer, timeout=5, metadata=bearer(CITIZEN))
    assert again.request.status == common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO
    assert [e.request_answered.message for e in await intake.outbox(APPLICANT_ACTIONS)] == [
        "Attached the receipt"
    ]
    other = intake_pb2.RespondToInfoRequestRequest()
    other.CopyFrom(answer)
    other.message = "Attached a clearer receipt"
    other.document_ids[:] = [intake.uploads.upload()]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.stub.RespondToInfoRequest(other, timeout=5, metadata=bearer(CITIZEN))
    assert field_violations(caught.value) == {
        "idempotency_key": "an answer was already taken under this key: the request shows it"
    }
    bad = intake_pb2.RespondToInfoRequestRequest()
    bad.CopyFrom(other)
    bad.idempotency_key = "not a key!"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.stub.RespondToInfoRequest(bad, timeout=5, metadata=bearer(CITIZEN))
    assert field_violations(caught.value) == {
        "idempotency_key": "Latin letters, digits and . _ : - only"
    }
    # Under a key of its own, the second answer is taken.
    other.idempotency_key = "answer-8c1d"
    second = await intake.stub.RespondToInfoRequest(other, timeout=5, metadata=bearer(CITIZEN))
    assert second.request.status == common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT
    assert [e.request_answered.message for e in await intake.outbox(APPLICANT_ACTIONS)] == [
        "Attached the receipt",
        "Attached a clearer receipt",
    ]


async def test_an_answer_s_documents_keep_to_the_sub_service_s_schema(intake: Intake) -> None:
    # passports.issue-renewal-problem takes at most 9 documents, PDF or images, 10 MiB at most.
    request = await intake.submit(document_ids=[intake.uploads.upload() for _ in range(7)])
    await intake.track(
        request,
        Status.NEEDS_MORE_INFO,
        "Please attach the receipts",
        START + timedelta(hours=1),
        respond_by=START + timedelta(days=7),
    )

    async def answer(*document_ids: str) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake.stub.RespondToInfoRequest(
                intake_pb2.RespondToInfoRequestRequest(
                    request_number=request.request_number,
                    message="Attached",
                    document_ids=document_ids,
                ),
                timeout=5,
                metadata=bearer(CITIZEN),
            )
        return caught.value

    ten = await answer(*(intake.uploads.upload() for _ in range(10)))
    assert field_violations(ten) == {"document_ids": "at most 9 documents for this sub-service"}
    odd = await answer(
        intake.uploads.upload(),
        intake.uploads.upload(content_type="application/zip"),
        intake.uploads.upload(size_bytes=11 * 2**20),
    )
    assert field_violations(odd) == {
        "document_ids[1]": "a type this sub-service does not accept (it takes PDF or JPG)",
        "document_ids[2]": "larger than this sub-service's 10 MB",
    }
    assert (await intake.get(request.request_number)).status == (
        common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO
    )
    assert await intake.outbox(APPLICANT_ACTIONS) == []
    # Past the request's total of 9, as a reviewer asking for clearer copies may need.
    clearer = [intake.uploads.upload() for _ in range(3)]
    taken = await intake.stub.RespondToInfoRequest(
        intake_pb2.RespondToInfoRequestRequest(
            request_number=request.request_number, message="Clearer copies", document_ids=clearer
        ),
        timeout=5,
        metadata=bearer(CITIZEN),
    )
    assert taken.request.status == common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT
    assert list(taken.request.document_ids)[7:] == clearer


# --- concurrent changes to one request ------------------------------------------------------


async def _waiting_for_the_row(intake: Intake, transactions: int) -> None:
    """Until that many transactions wait for a lock in intake's database."""

    async def enough() -> bool | None:
        async with intake.engine.connect() as conn:
            waiting = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        return True if (waiting or 0) >= transactions else None

    await eventually(enough, within=10, what=f"{transactions} transaction(s) waiting")


def _held(request_id: uuid.UUID) -> Any:
    t = tables.requests
    return select(t.c.id).where(t.c.id == request_id).with_for_update()


async def test_a_cancellation_racing_review_s_status_change_stays(intake: Intake) -> None:
    """Both read the request while a third transaction holds it: the status change mirrored
    from review must not write back the request it read before the cancellation."""
    request = await intake.submit()
    request_id = uuid.UUID(request.request_id)
    async with intake.engine.connect() as holder:
        await holder.execute(_held(request_id))
        cancelling = asyncio.ensure_future(
            intake.stub.CancelRequest(
                intake_pb2.CancelRequestRequest(
                    request_number=request.request_number, reason="Solved at the office"
                ),
                timeout=10,
                metadata=bearer(CITIZEN),
            )
        )
        await _waiting_for_the_row(intake, 1)
        reviewing = asyncio.create_task(
            intake.track(request, Status.UNDER_REVIEW, "", START + timedelta(minutes=5))
        )
        await _waiting_for_the_row(intake, 2)
        await holder.rollback()
    cancelled = (await cancelling).request
    await reviewing
    stored = await intake.get(request.request_number)
    assert cancelled.status == common_pb2.REQUEST_STATUS_CANCELLED
    assert stored.status == common_pb2.REQUEST_STATUS_CANCELLED
    assert [e.event_type for e in await intake.outbox(APPLICANT_ACTIONS)] == [
        "tawasul.requests.cancelled"
    ]


async def test_an_establishment_has_room_for_its_workforce_where_a_citizen_has_ten(
    intake: Intake,
) -> None:
    """Counted by PostgreSQL: ten open requests of the account stop a citizen's eleventh, not
    an establishment's."""
    inquiry: dict[str, Any] = {"sub_service_code": "reports.general-inquiry", "fields": {}}
    for prefix, token, subject in (
        ("TW8", CITIZEN, CITIZEN_ID),
        ("TW9", ESTABLISHMENT, "2000000006"),
    ):
        first = await intake.submit(token, subject_id=subject, **inquiry)
        nine = text(
            "INSERT INTO requests (id, number, applicant_id, applicant_role, idempotency_key,"
            " sub_service_code, description, document_ids, contact, status, submitted_at,"
            " updated_at, subject_id)"
            " SELECT gen_random_uuid(), :prefix || lpad(n::text, 7, '0') || right(number, 1),"
            " applicant_id, applicant_role, 'copy-' || n, sub_service_code, description,"
            " document_ids, contact, status, submitted_at, updated_at,"
            " right(:prefix, 1) || lpad(n::text, 9, '0')"
            " FROM requests, generate_series(1, 9) AS n WHERE number = :number"
        )
        async with intake.engine.begin() as conn:
            await conn.execute(nine, {"prefix": prefix, "number": first.request_number})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await intake.submit(CITIZEN)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 10 open requests per account" in (caught.value.details() or "")
    eleventh = await intake.submit(ESTABLISHMENT, subject_id="2023456789", **inquiry)
    assert eleventh.status == common_pb2.REQUEST_STATUS_SUBMITTED


def indexes(plan: dict[str, Any]) -> set[str]:
    """The indexes a plan (EXPLAIN's JSON) reads."""
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    return found.union(*(indexes(child) for child in plan.get("Plans", [])))


async def test_a_submission_reads_the_account_s_open_requests_not_its_history(
    intake: Intake,
) -> None:
    """An establishment files for years: a submission counts the account's open requests,
    reads those holding one of its documents and none of the thousands closed long ago."""
    document = intake.uploads.upload()
    first = await intake.submit(document_ids=[document])
    # Copies of the first: the account's closed ones, and other accounts' open ones.
    copies = text(
        "INSERT INTO requests (id, number, applicant_id, applicant_role, idempotency_key, "
        "sub_service_code, description, document_ids, contact, status, submitted_at, "
        "updated_at, subject_id) "
        "SELECT gen_random_uuid(), :prefix || lpad(n::text, 8, '0'), "
        "CASE WHEN :status = 'closed' THEN applicant_id ELSE '2' || lpad(n::text, 9, '0') END, "
        "CASE WHEN :status = 'closed' THEN applicant_role ELSE 'resident' END, "
        "'copy-' || n, sub_service_code, description, document_ids, contact, :status, "
        "submitted_at - n * interval '1 hour', updated_at, '2' || lpad(n::text, 9, '0') "
        "FROM requests, generate_series(1, 3000) AS n WHERE number = :number"
    )
    async with intake.engine.begin() as conn:
        for prefix, status in (("TW1", "closed"), ("TW2", "submitted")):
            await conn.execute(
                copies, {"prefix": prefix, "status": status, "number": first.request_number}
            )
        await conn.execute(text("ANALYZE requests"))
    session = Database(intake.engine.sync_engine).session()
    recorded = RecordedStatements(through=session)
    try:
        related = await SqlRequestRepository(cast(Session, recorded)).related_to(
            CITIZEN_ID, "a new key", OpenKey("1000000016", "reports.general-inquiry"), ()
        )
        holding = await SqlRequestRepository(cast(Session, recorded)).related_to(
            CITIZEN_ID,
            "a new key",
            OpenKey("1000000016", "reports.general-inquiry"),
            (uuid.UUID(document),),
        )
    finally:
        await session.close()
    assert (related.requests, related.open_count) == ([], 1)
    assert ([r.number for r in holding.requests], holding.open_count) == (
        [first.request_number],
        1,
    )
    # The one with documents: PostgreSQL cannot type an empty array written inline.
    _, sql = recorded.sql()
    async with intake.engine.connect() as conn:
        plan = await conn.scalar(text(f"EXPLAIN (FORMAT JSON) {sql}"))
    read = indexes(plan[0]["Plan"])
    assert "requests_applicant_open" in read
    assert "requests_applicant_recent" not in read
    again = await intake.submit(sub_service_code="reports.general-inquiry", fields={})
    assert again.status == common_pb2.REQUEST_STATUS_SUBMITTED


async def test_a_submission_does_not_write_the_account_s_other_requests(intake: Intake) -> None:
    """The account's open requests are read to check a new one against, never written back:
    one held by another transaction (a status change being applied) does not hold it up."""
    first = await intake.submit()
    async with intake.engine.connect() as holder:
        await holder.execute(_held(uuid.UUID(first.request_id)))
        second = await intake.submit(sub_service_code="reports.general-inquiry", fields={})
        await holder.rollback()
    assert second.request_number != first.request_number
    assert second.status == common_pb2.REQUEST_STATUS_SUBMITTED


# --- every status change delivered again, on PostgreSQL -----------------------------------
# Kafka delivers at least once. A state machine (hypothesis) takes one request through
# review's status changes, in any order, and the beneficiary's calls, with time passing, and
# at random moments delivers every change applied so far once more: what the beneficiary
# reads, the request's row and what intake published must not change. No call may answer
# other than OK or a refusal; no change may fail other than as one the consumer dead-letters.

REVIEW_SAYS = tuple(s for s in Status if s not in (Status.SUBMITTED, Status.CANCELLED))
REFUSED = frozenset(
    {
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,  # an answer of nothing when nothing was asked
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
T = TypeVar("T")


class Redelivery(RuleBasedStateMachine):
    def __init__(self, intake: Intake, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.intake, self.loop = intake, loop
        self.run(self._afresh())
        self.request = self.run(intake.submit())
        self.number = self.request.request_number
        self.delivered: list[events_pb2.Envelope] = []

    def run(self, work: Awaitable[T]) -> T:
        return on_loop(self.loop, work)

    async def _afresh(self) -> None:
        """Each run starts on empty tables (the citizen's open request and limits), at START."""
        await emptied(self.intake.engine, tables.metadata)
        self.intake.clock.now = START

    async def _committed(self) -> tuple[object, ...]:
        r, o = tables.requests, tables.outbox
        shown = await self.intake.get(self.number)
        async with self.intake.engine.connect() as conn:
            row = (await conn.execute(select(r).where(r.c.number == self.number))).all()
            published = (await conn.execute(select(o.c.topic, o.c.payload).order_by(o.c.id))).all()
        return shown.SerializeToString(deterministic=True), row, published

    def deliver(self, event: events_pb2.Envelope) -> None:
        self.run(self.intake.subscriptions.deliver(REQUEST_STATUS_CHANGED, event))

    @rule(hours=st.integers(min_value=0, max_value=80))
    def time_passes(self, hours: int) -> None:
        self.intake.clock.now += timedelta(hours=hours)

    @rule(status=st.sampled_from(REVIEW_SAYS), skew=st.integers(min_value=-2, max_value=2))
    def review_says(self, status: Status, skew: int) -> None:
        """Review's change, stamped by review's clock (up to 2 s off intake's)."""
        at = self.intake.clock.now + timedelta(seconds=skew)
        change = events_pb2.RequestStatusChanged(
            request_id=self.request.request_id,
            request_number=self.number,
            status=STATUS_TO_WIRE[status],
            message="Review's word",
        )
        if status is Status.NEEDS_MORE_INFO:
            change.missing.append(common_pb2.MissingItem(kind="document", name="photo"))
            change.respond_by.CopyFrom(timestamp(at + timedelta(days=5)))
        event = events_pb2.Envelope(
            event_id=str(uuid.uuid4()),
            event_type="tawasul.requests.status-changed",
            request_id=self.request.request_id,
            occurred_at=timestamp(at),
            request_status_changed=change,
        )
        self.deliver(event)
        self.delivered.append(event)

    @rule(action=st.sampled_from(("follow_up", "cancel", "answer", "appeal")))
    def beneficiary(self, action: str) -> None:
        stub, n, who = self.intake.stub, self.number, bearer(CITIZEN)

        async def called() -> object:
            """The call starts on the loop that serves it, not in hypothesis' thread."""
            if action == "follow_up":
                ask = intake_pb2.FollowUpRequest(request_number=n)
                return await stub.FollowUp(ask, timeout=5, metadata=who)
            if action == "cancel":
                cancel = intake_pb2.CancelRequestRequest(request_number=n, reason="Done")
                return await stub.CancelRequest(cancel, timeout=5, metadata=who)
            if action == "answer":
                answer = intake_pb2.RespondToInfoRequestRequest(
                    request_number=n,
                    message="Attached",
                    document_ids=[self.intake.uploads.upload()],
                )
                return await stub.RespondToInfoRequest(answer, timeout=5, metadata=who)
            appeal = intake_pb2.AppealRejectionRequest(request_number=n, reason="Look again")
            return await stub.AppealRejection(appeal, timeout=5, metadata=who)

        answered = grpc.StatusCode.OK
        try:
            self.run(called())
        except grpc.aio.AioRpcError as error:
            answered = error.code()
        assert answered is grpc.StatusCode.OK or answered in REFUSED, answered

    @precondition(lambda self: bool(self.delivered))
    @rule()
    def again(self) -> None:
        """Every change applied so far, delivered once more: the request has moved on since."""
        before = self.run(self._committed())
        for event in self.delivered:
            self.deliver(event)
            assert self.run(self._committed()) == before


async def test_every_status_change_delivered_again_changes_nothing_on_postgresql(
    intake: Intake,
) -> None:
    loop = asyncio.get_running_loop()

    class Run(Redelivery):
        def __init__(self) -> None:
            super().__init__(intake, loop)

    await asyncio.to_thread(
        run_state_machine_as_test,
        Run,
        settings=settings(
            max_examples=100, stateful_step_count=30, deadline=None, derandomize=True, database=None
        ),
    )
