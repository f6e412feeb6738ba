"""Every sub-service of the catalog filed on the real stack, each by a filer the catalog and
the development registry allow, all at once: intake takes each, routing places each where
its rules say (ExplainRoute, for the same filer, subject nationality and fields) under the
catalog's department, and review queues each there.

The sub-services come from GetCatalog, so a new one is filed too; the forms are filled from
its field specs (types, choices, required_when, names_subject) and the required documents
uploaded by kind. Routing reads the subject's nationality from intake's registry through the
submitted event, which only this tier shows: the rules on it, on the filer's kind and on a
field are filed for as well, each with what its rule decides.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy import text
from tawasul.events.v1 import events_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul.review.v1 import review_pb2
from tawasul.routing.v1 import routing_pb2
from tawasul_devstack.config import DEV_REGISTRY, repo_root
from tawasul_devstack.journey import Clients, eventually, new_citizen, new_resident, sample_pdf
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role
from tawasul_platform.testing import async_engine

from tests.e2e.topics import envelopes

TIMEOUT = DEFAULT_DEADLINE_SECONDS
MOBILE = "0551234567"
# A reviewer no other module uses, of every department (review takes the token's departments
# for one without a record).
REVIEWER = "E7601"
# The first digits of the ID number each type of field takes (intake's fields.py): a field
# that names the subject can name only a subject with such a number.
ID_DIGITS = {
    "national_id": "1",
    "iqama_number": "2",
    "id_number": "12",
    "border_number": "34",
}
# What the synthetic citizens ("19…") of the development registry are (intake's registry.py).
SYNTHETIC_CITIZEN_NATIONALITY = "SAU"


@dataclass(frozen=True)
class Filer:
    """An account, and the person a request of theirs is about."""

    account: str
    role: Role
    subject: str
    relation: str
    # The subject's, as the registry has it.
    nationality: str

    @property
    def kind(self) -> str:
        return self.role.value

    @property
    def channel(self) -> str:
        return "establishment-portal" if self.role is Role.ESTABLISHMENT else "web"


@dataclass(frozen=True)
class Registry:
    """The development registry the stack's intake reads: its people and their relations."""

    nationalities: dict[str, str]
    kinds: dict[str, str]
    relations: list[tuple[str, str, str]]
    resident_nationality: str

    @classmethod
    def load(cls) -> Registry:
        raw = json.loads((repo_root() / DEV_REGISTRY).read_text("utf-8"))
        return cls(
            nationalities={p["id"]: p["nationality"] for p in raw["people"]},
            kinds={p["id"]: p["kind"] for p in raw["people"]},
            relations=[(r["holder"], r["person"], r["kind"]) for r in raw["relations"]],
            resident_nationality=raw["synthetic_residents"]["nationality"],
        )

    def role(self, account: str) -> Role:
        """An account the registry lists as a person is theirs; one it does not (a holder of
        sponsored workers only) is an establishment's."""
        return Role(self.kinds.get(account, Role.ESTABLISHMENT.value))

    def filers(self) -> Iterator[Filer]:
        """A new synthetic citizen and resident for themselves (no other test's requests are
        theirs), then everyone the registry has on an account's record."""
        citizen, resident = new_citizen(), new_resident()
        yield Filer(citizen, Role.CITIZEN, citizen, "self", SYNTHETIC_CITIZEN_NATIONALITY)
        yield Filer(resident, Role.RESIDENT, resident, "self", self.resident_nationality)
        for holder, person, relation in self.relations:
            yield Filer(holder, self.role(holder), person, relation, self.nationalities[person])


@dataclass
class Case:
    sub_service: intake_pb2.SubService
    filer: Filer
    fields: dict[str, str]
    # What a rule case expects of routing: (queue, priority, rule).
    expected: tuple[str, int, str] | None = None
    request: intake_pb2.Request = field(default_factory=intake_pb2.Request)

    @property
    def code(self) -> str:
        return self.sub_service.code

    @property
    def label(self) -> str:
        """The sub-service, and the rule a rule case is for (a sub-service may have both)."""
        return f"{self.code} ({self.expected[2]})" if self.expected else self.code

    def token(self, clients: Clients) -> str:
        return clients.config.identity.token(
            self.filer.account, self.filer.role, channel=self.filer.channel
        )


def names(spec: intake_pb2.FieldSpec, subject: str) -> bool:
    """Whether a field that names the subject can hold this one's number."""
    return subject[:1] in ID_DIGITS.get(spec.type, "")


def value_of(spec: intake_pb2.FieldSpec, filer: Filer, n: int) -> str:
    """A valid value of the field's type, for the n-th case (numbers differ between cases)."""
    if spec.names_subject:
        return filer.subject
    today = datetime.now(UTC).date()
    values = {
        "national_id": new_citizen(),
        "iqama_number": new_resident(),
        "id_number": new_citizen(),
        "border_number": f"3{n:09d}",
        "visa_number": f"6{n:09d}",
        "passport_number": f"A{n:07d}",
        "establishment_number": f"7{n:09d}",
        "date": str(today - timedelta(days=30) if spec.past_only else today + timedelta(days=30)),
        "nationality": filer.nationality
        if not spec.choices or filer.nationality in {c.value for c in spec.choices}
        else spec.choices[0].value,
        "text": {"latin": "Mohammed Ali", "arabic": "محمد علي"}.get(
            spec.script, f"Filed by the every-sub-service test, case {n}"
        ),
    }
    value = values[spec.type]
    return value[: spec.max_length] if spec.type == "text" and spec.max_length else value


def form(
    sub_service: intake_pb2.SubService, filer: Filer, n: int, chosen: Mapping[str, str]
) -> dict[str, str] | None:
    """The required fields and those the chosen options need, filled for `filer`; a choice not
    in `chosen` takes its first option whose needed fields can be filled. None when `filer`
    cannot file it: a field naming the subject takes no number like theirs."""
    specs = {s.name: s for s in sub_service.fields}

    def needs(choice: str, option: str) -> list[intake_pb2.FieldSpec]:
        return [
            s
            for s in specs.values()
            if s.HasField("required_when")
            and s.required_when.field == choice
            and option in s.required_when.values
        ]

    def fillable(spec: intake_pb2.FieldSpec) -> bool:
        return not spec.names_subject or names(spec, filer.subject)

    values: dict[str, str] = {}
    for spec in specs.values():
        if spec.type != "choice" or not (spec.required or spec.name in chosen):
            continue
        options = [chosen[spec.name]] if spec.name in chosen else [c.value for c in spec.choices]
        option = next((o for o in options if all(map(fillable, needs(spec.name, o)))), None)
        if option is None:
            return None
        values[spec.name] = option
        for needed in needs(spec.name, option):
            values[needed.name] = value_of(needed, filer, n)
    for spec in specs.values():
        if spec.required and spec.name not in values:
            if not fillable(spec):
                return None
            values[spec.name] = value_of(spec, filer, n)
    return values


def may_file(sub_service: intake_pb2.SubService, filer: Filer) -> bool:
    return (
        filer.kind in sub_service.filers
        and (not sub_service.subject_relations or filer.relation in sub_service.subject_relations)
        and (
            not sub_service.subject_nationalities
            or filer.nationality in sub_service.subject_nationalities
        )
    )


def case_for(
    sub_service: intake_pb2.SubService,
    candidates: Iterator[Filer],
    n: int,
    *,
    chosen: Mapping[str, str] | None = None,
    taken: set[tuple[str, str]] | None = None,
) -> Case | None:
    """The first of `candidates` who may file the sub-service (and is not `taken` for it), with
    their form."""
    for filer in candidates:
        if (sub_service.code, filer.subject) in (taken or set()) or not may_file(
            sub_service, filer
        ):
            continue
        fields = form(sub_service, filer, n, chosen or {})
        if fields is not None:
            return Case(sub_service, filer, fields)
    return None


def rule_cases(catalog: dict[str, intake_pb2.SubService], registry: Registry) -> list[Case]:
    """One filing for each rule of routing's rules.v1 but the follow-up one, with what it
    decides."""
    cases: list[Case] = []
    # A citizen's hosted visitor whose nationality has a team of its own.
    hosts = (
        f
        for f in registry.filers()
        if (f.role, f.relation, f.nationality)
        in {
            (Role.CITIZEN, "hosted_visitor", "SYR"),
            (Role.CITIZEN, "hosted_visitor", "YEM"),
        }
    )
    expectations: list[tuple[str, Iterator[Filer], dict[str, str], tuple[str, int, str]]] = [
        (
            "residents.visit-visa-extension",
            hosts,
            {},
            ("residents.visit-visa", 0, "rules.v1:visit-visa-yemen-syria"),
        ),
        (
            "passports.lost-passport-report",
            registry.filers(),
            {"loss_place": "outside_kingdom"},
            ("passports.default", 30, "rules.v1:lost-passport-abroad"),
        ),
        (
            "visas.change-visa-duration",
            registry.filers(),
            {"holder_location": "outside"},
            ("visas.default", 20, "rules.v1:visa-holder-abroad"),
        ),
        *(
            (
                code,
                (f for f in registry.filers() if f.role is Role.ESTABLISHMENT),
                {},
                ("reports.establishments", 0, "rules.v1:establishment-absence-corrections"),
            )
            for code in ("reports.cancel-absence-report", "reports.edit-absent-worker-data")
        ),
        (
            "reports.absence-report",
            (f for f in registry.filers() if f.role is Role.ESTABLISHMENT),
            {},
            ("reports.establishments", 20, "rules.v1:establishment-absence-report"),
        ),
    ]
    for code, candidates, chosen, expected in expectations:
        assert code in catalog, f"{code} is no longer in the catalog"
        for name, option in chosen.items():
            (spec,) = [s for s in catalog[code].fields if s.name == name]
            assert option in {c.value for c in spec.choices}, (code, name, option)
        case = case_for(catalog[code], candidates, len(cases), chosen=chosen)
        assert case is not None, f"no one in the development registry may file {code}"
        case.expected = expected
        cases.append(case)
    return cases


async def upload_required(clients: Clients, case: Case) -> list[str]:
    """The documents the sub-service requires, each of its kind and in its least number."""
    token, uploads = case.token(clients), []
    for spec in case.sub_service.documents:
        if not spec.required:
            continue
        assert "application/pdf" in spec.media_types, f"{case.code}: {spec.kind} takes no PDF"
        for k in range(max(spec.min_count, 1)):
            uploads.append(
                clients.upload(
                    token,
                    f"{spec.kind}-{k}.pdf",
                    sample_pdf(f"{case.code} {spec.kind} {uuid.uuid4()}"),
                    sub_service=case.code,
                    kind=spec.kind,
                )
            )
    return [d.document_id for d in await asyncio.gather(*uploads)]


async def file(clients: Clients, case: Case) -> None:
    documents = await upload_required(clients, case)
    case.request = await clients.submit(
        case.token(clients),
        key=str(uuid.uuid4()),
        sub_service=case.code,
        description=f"Filing {case.code} failed in the e-service with error 4031 on the last step",
        documents=documents,
        mobile=MOBILE,
        fields=case.fields,
        subject_id="" if case.filer.subject == case.filer.account else case.filer.subject,
    )


async def explained(
    clients: Clients, reviewer: str, case: Case
) -> routing_pb2.ExplainRouteResponse:
    """Where routing says a request like the case's goes."""
    answer: routing_pb2.ExplainRouteResponse = await clients.routing.ExplainRoute(
        routing_pb2.ExplainRouteRequest(
            sub_service_code=case.code,
            applicant_kind=case.filer.kind,
            subject_nationality=case.filer.nationality,
            channel=case.filer.channel,
            fields=case.fields,
        ),
        timeout=TIMEOUT,
        metadata=bearer(reviewer),
    )
    return answer


async def queues_in_review(stack: Stack, request_ids: list[str]) -> dict[str, str]:
    """The queue review keeps each item in (its wire form does not show it)."""
    engine = async_engine(stack.config.database_url("review"), pool_size=1)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT request_id, queue FROM work_items WHERE request_id = ANY(:ids)"),
                {"ids": [uuid.UUID(r) for r in request_ids]},
            )
            return {str(r.request_id): r.queue for r in found}
    finally:
        await engine.dispose()


async def test_every_sub_service_is_filed_routed_and_queued(stack: Stack, clients: Clients) -> None:
    answer = await clients.intake.GetCatalog(
        intake_pb2.GetCatalogRequest(locale="en"), timeout=TIMEOUT
    )
    catalog = {s.code: s for d in answer.departments for s in d.sub_services}
    departments = {s.code: d.code for d in answer.departments for s in d.sub_services}
    assert all(catalog[c].department_code == departments[c] for c in catalog)
    registry = Registry.load()
    reviewer = clients.token(REVIEWER, Role.REVIEWER, frozenset(departments.values()))

    cases = rule_cases(catalog, registry)
    taken = {(c.code, c.filer.subject) for c in cases}
    for code, sub_service in catalog.items():
        case = case_for(sub_service, registry.filers(), len(cases), taken=taken)
        if case is None:
            # Only the rule case's filer may file it: that one stands for it.
            assert any(c.code == code for c in cases), f"no one may file {code}"
            continue
        cases.append(case)
    assert {c.code for c in cases} == set(catalog)

    filed = await asyncio.gather(*(file(clients, c) for c in cases), return_exceptions=True)
    try:
        refused = {c.label: repr(e) for c, e in zip(cases, filed, strict=True) if e is not None}
        assert not refused, refused
        await routed_and_queued(stack, clients, reviewer, cases)
    finally:
        # Nothing stays open for the registry's people: a later filing for one would be
        # refused as a second open request.
        await asyncio.gather(
            *(cancel(clients, c) for c in cases if c.request.request_number),
            return_exceptions=True,
        )


async def routed_and_queued(
    stack: Stack, clients: Clients, reviewer: str, cases: list[Case]
) -> None:
    by_id = {c.request.request_id: c for c in cases}
    ids = list(by_id)
    bootstrap = stack.config.kafka_bootstrap
    submitted, routed, explanations = await asyncio.gather(
        envelopes(bootstrap, topics.REQUEST_SUBMITTED, set(ids), at_least=len(ids)),
        envelopes(bootstrap, topics.REQUEST_ROUTED, set(ids), at_least=len(ids)),
        asyncio.gather(*(explained(clients, reviewer, c) for c in cases)),
    )
    explained_by_id = {c.request.request_id: e for c, e in zip(cases, explanations, strict=True)}

    # What the registry says of the subject travels with the submission.
    seen = {e.request_id: e.request_submitted for e in submitted}
    assert {
        r: (s.sub_service_code, s.applicant_kind, s.subject_nationality, s.channel)
        for r, s in seen.items()
    } == {r: (c.code, c.filer.kind, c.filer.nationality, c.filer.channel) for r, c in by_id.items()}

    decisions = first_decisions(routed)
    wanted = {
        c.label: (
            c.sub_service.department_code,
            *(c.expected or (e.queue, e.priority, e.rule)),
        )
        for c, e in ((by_id[r], explained_by_id[r]) for r in ids)
    }
    assert {
        by_id[r].label: (d.department_code, d.queue, d.priority, d.rule)
        for r, d in decisions.items()
    } == wanted
    # Routing's own explanation names the catalog's department, and the rule cases' places.
    assert {
        by_id[r].label: (e.department_code, e.queue, e.priority, e.rule)
        for r, e in explained_by_id.items()
    } == wanted

    async def in_review() -> dict[str, review_pb2.WorkItem] | None:
        items = await asyncio.gather(*(work_item(clients, reviewer, r) for r in ids))
        found = {r: i for r, i in zip(ids, items, strict=True) if i is not None}
        return found if len(found) == len(ids) else None

    items = await eventually(in_review, what="every sub-service's request in review")
    queued = review_pb2.WORK_ITEM_STATE_QUEUED
    assert {by_id[r].label: (i.department_code, i.state, i.priority) for r, i in items.items()} == {
        label: (department, queued, priority)
        for label, (department, _, priority, _) in wanted.items()
    }
    queues = await queues_in_review(stack, ids)
    assert {by_id[r].label: q for r, q in queues.items()} == {
        label: queue for label, (_, queue, _, _) in wanted.items()
    }


def first_decisions(
    routed: list[events_pb2.Envelope],
) -> dict[str, events_pb2.RequestRouted]:
    """Each request's decision at its submission (routing's first; a copy published again
    carries the same)."""
    decisions: dict[str, events_pb2.RequestRouted] = {}
    for envelope in routed:
        if envelope.request_routed.sequence <= 1:
            decisions.setdefault(envelope.request_id, envelope.request_routed)
    return decisions


async def work_item(clients: Clients, reviewer: str, request_id: str) -> review_pb2.WorkItem | None:
    try:
        answer = await clients.review.GetWorkItem(
            review_pb2.GetWorkItemRequest(request_id=request_id),
            timeout=TIMEOUT,
            metadata=bearer(reviewer),
        )
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:  # not routed yet
            raise
        return None
    item: review_pb2.WorkItem = answer.item
    return item


async def cancel(clients: Clients, case: Case) -> None:
    await clients.intake.CancelRequest(
        intake_pb2.CancelRequestRequest(
            request_number=case.request.request_number, reason="Test done"
        ),
        timeout=TIMEOUT,
        metadata=bearer(case.token(clients)),
    )
