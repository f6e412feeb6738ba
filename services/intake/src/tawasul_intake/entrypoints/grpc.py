"""IntakeService over gRPC: translates wire messages to use-case calls and back."""

from __future__ import annotations

import base64
import ipaddress
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from tawasul.common.v1 import common_pb2
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul_calendar import RIYADH, Locale, WorkingCalendar, format_date
from tawasul_calendar.rules import to_hijri
from tawasul_platform.authz import BENEFICIARIES, PUBLIC, Rule, bearer_token
from tawasul_platform.catalog import Catalog, FieldSpec, FieldType, SubService, Text
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.events import timestamp
from tawasul_platform.grpc import caller, caller_locale
from tawasul_platform.i18n import Bilingual
from tawasul_platform.identity import Role
from tawasul_platform.tls import peer_name

from tawasul_intake.adapters.events import STATUS_TO_WIRE
from tawasul_intake.app import handlers
from tawasul_intake.app.ports import CodeSender, Documents, Registry, UnitOfWork
from tawasul_intake.domain.countries import countries
from tawasul_intake.domain.countries import names as country_names
from tawasul_intake.domain.fields import at_most_characters, clean_text
from tawasul_intake.domain.model import (
    MAX_MESSAGE,
    Request,
    Status,
    status_label,
    validate_submission,
)

Context = grpc.aio.ServicerContext[Any, Any]

# The catalog and tracking by number, ID and a texted code need no sign-in; the rest is the
# applicant's own business (whose request it is, the handlers check).
ACCESS: dict[str, Rule] = {
    "GetCatalog": PUBLIC,
    "StartTracking": PUBLIC,
    "TrackRequest": PUBLIC,
    "SubmitRequest": BENEFICIARIES,
    "GetRequest": BENEFICIARIES,
    "ListMyRequests": BENEFICIARIES,
    "FollowUp": BENEFICIARIES,
    "CancelRequest": BENEFICIARIES,
    "RespondToInfoRequest": BENEFICIARIES,
    "AppealRejection": BENEFICIARIES,
}
DEFAULT_PAGE = 20
MAX_PAGE = 100


def display_date(at: datetime) -> common_pb2.DisplayDate:
    day = at.astimezone(RIYADH).date()
    return common_pb2.DisplayDate(
        at=timestamp(at),
        text_ar=format_date(day, Locale.AR),
        text_en=format_date(day, Locale.EN),
        hijri_date=to_hijri(day).isoformat(),
        gregorian_date=day.isoformat(),
    )


def _label(status: Status, filed_by: Role) -> common_pb2.LocalizedText:
    ar, en = status_label(status, filed_by)
    return common_pb2.LocalizedText(ar=ar, en=en)


def _text(text: Text) -> common_pb2.LocalizedText:
    return common_pb2.LocalizedText(ar=text.ar, en=text.en)


class IntakeServicer(intake_pb2_grpc.IntakeServiceServicer):
    def __init__(
        self,
        *,
        uow: Callable[[], UnitOfWork],
        documents: Documents,
        registry: Registry,
        sender: CodeSender,
        catalog: Catalog,
        calendar: WorkingCalendar,
        tracking: handlers.TrackingPolicy,
        now: Callable[[], datetime],
        new_number: Callable[[], str],
        trusted_forwarders: frozenset[str] = frozenset(),
    ) -> None:
        self._uow = uow
        self._documents = documents
        self._registry = registry
        self._sender = sender
        self._catalog = catalog
        self._calendar = calendar
        self._tracking = tracking
        self._now = now
        self._new_number = new_number
        self._trusted_forwarders = trusted_forwarders

    def to_wire(self, request: Request) -> intake_pb2.Request:
        department = self._catalog.departments.get(request.department_code)
        until = request.appeal_until(self._calendar)
        reason = request.decision_reason
        now = self._now()
        # Nothing is expected of the office once the request is finished; and a date already
        # past, the office late on the request, is no expectation to tell (notify's messages
        # leave it out too).
        due = request.expected_completion(self._calendar, now) if request.is_open else None
        return intake_pb2.Request(
            request_id=str(request.id),
            request_number=request.number,
            sub_service_code=request.sub_service_code,
            status=STATUS_TO_WIRE[request.status],
            description=request.description,
            document_ids=[str(d) for d in request.document_ids],
            applicant_id=request.applicant_id,
            submitted_at=timestamp(request.submitted_at),
            updated_at=timestamp(request.updated_at),
            decision_message=request.decision_message,
            decision_reason_code=reason.code if reason else "",
            decision_reason=common_pb2.LocalizedText(ar=reason.ar, en=reason.en)
            if reason
            else None,
            department_code=request.department_code,
            department_name=_text(department.name) if department else None,
            status_label=_label(request.status, request.applicant_role),
            expected_completion=display_date(due) if due is not None and due > now else None,
            subject_id=request.subject_id,
            fields=request.fields,
            catalog_version=request.catalog_version,
            history=[
                intake_pb2.HistoryEntry(
                    status=STATUS_TO_WIRE[h.status],
                    status_label=_label(h.status, request.applicant_role),
                    at=timestamp(h.at),
                    message=h.message,
                )
                for h in request.history
            ],
            cites_request_number=request.cites_number or "",
            cited_by_request_numbers=request.cited_by,
            # Only while a follow-up can come: FollowUp refuses one on a finished request.
            follow_up_from=(
                display_date(request.follow_up_from(self._calendar)) if request.is_open else None
            ),
            follow_up_count=request.follow_up_count,
            missing=[
                common_pb2.MissingItem(kind=m.kind, name=m.name, description=m.description)
                for m in request.missing
            ],
            respond_by=display_date(request.respond_by) if request.respond_by else None,
            appealed=request.appealed,
            appeal_until=display_date(until) if until else None,
        )

    def to_tracking_wire(self, request: Request) -> intake_pb2.Request:
        """The status page of tracking without login: number, ID and a texted code prove less
        than the account's sign-in, so what was filed (description, fields, documents, who
        filed and about whom) and what the beneficiary wrote since stay out of it."""
        full = self.to_wire(request)
        page = intake_pb2.Request(
            request_number=full.request_number,
            sub_service_code=full.sub_service_code,
            status=full.status,
            submitted_at=full.submitted_at,
            updated_at=full.updated_at,
            decision_message=full.decision_message,
            decision_reason_code=full.decision_reason_code,
            decision_reason=full.decision_reason if full.HasField("decision_reason") else None,
            department_code=full.department_code,
            department_name=full.department_name if full.HasField("department_name") else None,
            status_label=full.status_label,
            expected_completion=(
                full.expected_completion if full.HasField("expected_completion") else None
            ),
            history=full.history,
            follow_up_from=full.follow_up_from if full.HasField("follow_up_from") else None,
            missing=full.missing,
            respond_by=full.respond_by if full.HasField("respond_by") else None,
            appealed=full.appealed,
            appeal_until=full.appeal_until if full.HasField("appeal_until") else None,
        )
        for entry, wire in zip(request.history, page.history, strict=True):
            if entry.by_beneficiary:
                wire.message = ""
        return page

    async def GetCatalog(
        self, request: intake_pb2.GetCatalogRequest, context: Context
    ) -> intake_pb2.GetCatalogResponse:
        locale = "en" if request.locale[:8].strip().lower() == "en" else "ar"
        by_department: dict[str, list[SubService]] = {}
        for sub_service in self._catalog.sub_services.values():
            by_department.setdefault(sub_service.department, []).append(sub_service)
        return intake_pb2.GetCatalogResponse(
            version=self._catalog.version,
            locale=locale,
            departments=[
                intake_pb2.Department(
                    code=d.code,
                    name=d.name.in_locale(locale),
                    description=d.description.in_locale(locale),
                    sub_services=[_sub_service(s, locale) for s in by_department.get(d.code, [])],
                )
                for d in self._catalog.departments.values()
            ],
        )

    async def SubmitRequest(
        self, request: intake_pb2.SubmitRequestRequest, context: Context
    ) -> intake_pb2.SubmitRequestResponse:
        now = self._now()
        contact = request.contact if request.HasField("contact") else common_pb2.Contact()
        submission = validate_submission(
            caller=caller(),
            catalog=self._catalog,
            today=now.astimezone(RIYADH).date(),
            idempotency_key=request.idempotency_key,
            sub_service_code=request.sub_service_code,
            description=request.description,
            subject_id=request.subject_id,
            fields=dict(request.fields),
            document_ids=list(request.document_ids),
            mobile=contact.mobile,
            email=contact.email,
            # A channel that names no language for the beneficiary's messages (an app sending
            # only its Accept-Language) has them in the one its call asks in: Arabic unless
            # English (notify writes in the stored one).
            locale=contact.locale or caller_locale(context),
            cites_number=request.cites_request_number,
        )
        filed = await handlers.submit_request(
            uow=self._uow(),
            documents=self._documents,
            registry=self._registry,
            catalog=self._catalog,
            calendar=self._calendar,
            token=bearer_token(context),
            submission=submission,
            now=now,
            new_number=self._new_number,
        )
        return intake_pb2.SubmitRequestResponse(
            request=self.to_wire(filed.request), replayed=filed.replayed
        )

    async def GetRequest(
        self, request: intake_pb2.GetRequestRequest, context: Context
    ) -> intake_pb2.GetRequestResponse:
        found = await handlers.get_request(
            uow=self._uow(), caller=caller(), number=request.request_number
        )
        return intake_pb2.GetRequestResponse(request=self.to_wire(found))

    async def ListMyRequests(
        self, request: intake_pb2.ListMyRequestsRequest, context: Context
    ) -> intake_pb2.ListMyRequestsResponse:
        who = caller()
        if not 0 <= request.page_size <= MAX_PAGE:
            raise InvalidArgument(
                {"page_size": Bilingual(f"from 0 to {MAX_PAGE}", f"من 0 إلى {MAX_PAGE}")}
            )
        size = request.page_size or DEFAULT_PAGE
        found = await handlers.list_my_requests(
            uow=self._uow(), caller=who, after=_after(request.page_token), limit=size + 1
        )
        page, more = found[:size], len(found) > size
        return intake_pb2.ListMyRequestsResponse(
            requests=[self.to_wire(r) for r in page],
            next_page_token=_token(page[-1]) if more else "",
        )

    async def StartTracking(
        self, request: intake_pb2.StartTrackingRequest, context: Context
    ) -> intake_pb2.StartTrackingResponse:
        await handlers.start_tracking(
            uow=self._uow(),
            sender=self._sender,
            policy=self._tracking,
            query=handlers.TrackingQuery.typed(
                request.request_number, request.id_number, request.mobile
            ),
            caller_key=caller_key(context, self._trusted_forwarders),
            now=self._now(),
        )
        return intake_pb2.StartTrackingResponse(
            code_valid_seconds=int(self._tracking.code_valid.total_seconds())
        )

    async def TrackRequest(
        self, request: intake_pb2.TrackRequestRequest, context: Context
    ) -> intake_pb2.TrackRequestResponse:
        found = await handlers.track_request(
            uow=self._uow(),
            policy=self._tracking,
            query=handlers.TrackingQuery.typed(
                request.request_number, request.id_number, request.mobile
            ),
            code=request.code,
            caller_key=caller_key(context, self._trusted_forwarders),
            now=self._now(),
        )
        return intake_pb2.TrackRequestResponse(request=self.to_tracking_wire(found))

    async def FollowUp(
        self, request: intake_pb2.FollowUpRequest, context: Context
    ) -> intake_pb2.FollowUpResponse:
        who = caller()
        found = await handlers.follow_up(
            uow=self._uow(),
            registry=self._registry,
            caller=who,
            calendar=self._calendar,
            number=request.request_number,
            message=_message(request.message, "message"),
            now=self._now(),
        )
        return intake_pb2.FollowUpResponse(request=self.to_wire(found))

    async def CancelRequest(
        self, request: intake_pb2.CancelRequestRequest, context: Context
    ) -> intake_pb2.CancelRequestResponse:
        who = caller()
        found = await handlers.cancel_request(
            uow=self._uow(),
            caller=who,
            number=request.request_number,
            reason=_message(request.reason, "reason"),
            now=self._now(),
        )
        return intake_pb2.CancelRequestResponse(request=self.to_wire(found))

    async def RespondToInfoRequest(
        self, request: intake_pb2.RespondToInfoRequestRequest, context: Context
    ) -> intake_pb2.RespondToInfoRequestResponse:
        answered = await handlers.respond_to_info_request(
            uow=self._uow(),
            documents=self._documents,
            registry=self._registry,
            catalog=self._catalog,
            caller=caller(),
            token=bearer_token(context),
            number=request.request_number,
            message=request.message,
            fields=dict(request.fields),
            document_ids=list(request.document_ids),
            now=self._now(),
            idempotency_key=request.idempotency_key,
        )
        return intake_pb2.RespondToInfoRequestResponse(request=self.to_wire(answered))

    async def AppealRejection(
        self, request: intake_pb2.AppealRejectionRequest, context: Context
    ) -> intake_pb2.AppealRejectionResponse:
        appealed = await handlers.appeal_rejection(
            uow=self._uow(),
            registry=self._registry,
            caller=caller(),
            calendar=self._calendar,
            number=request.request_number,
            reason=_message(request.reason, "reason"),
            now=self._now(),
        )
        return intake_pb2.AppealRejectionResponse(request=self.to_wire(appealed))


def _message(text: str, name: str) -> str:
    if len(text) > MAX_MESSAGE:
        raise InvalidArgument({name: at_most_characters(MAX_MESSAGE)})
    cleaned, problem = clean_text(text, max_length=MAX_MESSAGE)
    if problem:
        raise InvalidArgument({name: problem})
    return cleaned


def _sub_service(s: SubService, locale: str) -> intake_pb2.SubService:
    return intake_pb2.SubService(
        code=s.code,
        department_code=s.department,
        name=s.name.in_locale(locale),
        description=s.description.in_locale(locale),
        filers=sorted(role.value for role in s.filers),
        subject_nationalities=sorted(s.subject_nationalities),
        subject_relations=sorted(s.subject_relations),
        fields=[
            intake_pb2.FieldSpec(
                name=f.name,
                type=f.type.value,
                label=f.label.in_locale(locale),
                help=f.help.in_locale(locale),
                required=f.required,
                max_length=f.max_length,
                choices=_choices(s, f, locale),
                past_only=f.past_only,
                names_subject=f.names_subject,
                required_when=intake_pb2.RequiredWhen(
                    field=f.required_when.field, values=f.required_when.values
                )
                if f.required_when
                else None,
                script=f.script.value if f.script else "",
            )
            for f in s.fields
        ],
        documents=[
            intake_pb2.DocumentSpec(
                kind=d.kind,
                label=d.label.in_locale(locale),
                required=d.required,
                min_count=d.min_count,
                max_count=d.max_count,
                media_types=sorted(d.media_types),
                max_bytes=d.max_bytes,
            )
            for d in s.documents
        ],
        sla_amount=s.sla.amount,
        sla_unit=s.sla.unit.value,
        fee_applies=s.fee_applies,
    )


def _choices(s: SubService, f: FieldSpec, locale: str) -> list[intake_pb2.Choice]:
    """A choice field's options; a nationality's, the countries it may name, by name."""
    if f.type is FieldType.NATIONALITY:
        codes = s.subject_nationalities or countries().keys()
        return [intake_pb2.Choice(value=c, label=n) for c, n in country_names(codes, locale)]
    return [intake_pb2.Choice(value=c.value, label=c.label.in_locale(locale)) for c in f.options]


def _token(last: Request) -> str:
    return base64.urlsafe_b64encode(f"{last.submitted_at.isoformat()}|{last.id}".encode()).decode()


def _after(token: str) -> tuple[datetime, uuid.UUID] | None:
    if not token:
        return None
    refused = InvalidArgument(
        {"page_token": Bilingual("not a token this service issued", "ليس رمزًا أصدرته هذه الخدمة")}
    )
    try:
        at, _, key = base64.urlsafe_b64decode(token[:200].encode()).decode().partition("|")
        when = datetime.fromisoformat(at)
        # An offset that carries the instant past year 1 or 9999 fails only here, in UTC,
        # which the database driver would otherwise do.
        after = (when.astimezone(UTC), uuid.UUID(key))
    except (ValueError, OverflowError):
        raise refused from None
    if when.tzinfo is None:
        raise refused
    return after


FORWARDED_FOR = "x-forwarded-for"


def caller_key(context: Context, trusted_forwarders: frozenset[str]) -> str:
    """Whose attempts a tracking call counts against: the address a trusted forwarder (the
    channels' gateway, by its client certificate) names for the person it calls for, else the
    caller's own network address. Behind the gateway every person would otherwise share one
    limit, the gateway's. An IPv6 address counts as its /64, which one subscriber gets whole."""
    if trusted_forwarders and peer_name(context) in trusted_forwarders:
        named = dict(context.invocation_metadata() or ()).get(FORWARDED_FOR)
        if isinstance(named, str):
            try:
                return _subscriber(ipaddress.ip_address(named.strip()))
            except ValueError:
                pass
    return _peer(context)


def _subscriber(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The unit of the per-caller limits: an IPv4 address, or an IPv6 address's /64."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _peer(context: Context) -> str:
    """The caller's network address without its port, as gRPC names it ("ipv4:10.1.2.3",
    "ipv6:%5B2001:db8::1%5D"), an IPv6 one as its /64 ("ipv6:2001:db8::/64")."""
    peer = context.peer() or "unknown"
    address = peer.rsplit(":", 1)[0] if peer.count(":") > 1 else peer
    scheme, _, host = address.partition(":")
    if scheme == "ipv6":
        try:
            found = ipaddress.IPv6Address(host.replace("%5B", "").replace("%5D", "").strip("[]"))
        except ValueError:
            return address
        return f"ipv{4 if found.ipv4_mapped else 6}:{_subscriber(found)}"
    return address
