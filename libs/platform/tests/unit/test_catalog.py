import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tawasul_calendar import OfficeHours, Sla
from tawasul_platform.catalog import (
    PERSON_ID_TYPES,
    Catalog,
    FieldType,
    RequiredWhen,
    Script,
    SubjectRelation,
    Text,
    load_catalog,
    parse_catalog,
)
from tawasul_platform.identity import Role

ARABIC_LETTER = re.compile(r"[\u0621-\u064a]")

# SPEC.md §3: every sub-service of the seeds, under its department.
SPEC_DEPARTMENTS = {
    "residents.visit-visa-extension": "residents",
    "residents.iqama-issue-renewal": "residents",
    "residents.transfer-of-services": "residents",
    "residents.profession-change": "residents",
    "residents.dependents-services": "residents",
    "visas.cancel-visa": "visas",
    "visas.change-visa-duration": "visas",
    "visas.final-exit-issue": "visas",
    "passports.issue-renewal-problem": "passports",
    "passports.lost-passport-report": "passports",
    "corrections.name-or-birth-date": "corrections",
    "corrections.passport-data-update": "corrections",
    "reports.absence-report": "reports",
    "reports.cancel-absence-report": "reports",
    "reports.edit-absent-worker-data": "reports",
    "reports.general-inquiry": "reports",
}


def texts(catalog: Catalog) -> Iterator[tuple[str, Text]]:
    """Every beneficiary-facing label in the catalog, with where it is."""
    for department in catalog.departments.values():
        yield f"{department.code}.name", department.name
        yield f"{department.code}.description", department.description
    for service in catalog.sub_services.values():
        yield f"{service.code}.name", service.name
        yield f"{service.code}.description", service.description
        for spec in service.fields:
            yield f"{service.code}.{spec.name}.label", spec.label
            yield f"{service.code}.{spec.name}.help", spec.help
            for option in spec.options:
                yield f"{service.code}.{spec.name}.{option.value}", option.label
        for document in service.documents:
            yield f"{service.code}.{document.kind}.label", document.label


# The packaged catalog


def test_the_packaged_catalog_is_version_6_and_loaded_once() -> None:
    catalog = load_catalog()
    assert catalog.version == 6
    assert load_catalog() is catalog


def test_five_departments_hold_the_spec_sub_services() -> None:
    catalog = load_catalog()
    assert set(catalog.departments) == {"residents", "visas", "passports", "corrections", "reports"}
    assert {code: s.department for code, s in catalog.sub_services.items()} == SPEC_DEPARTMENTS


def test_profession_change_is_a_residents_request() -> None:
    filers = load_catalog().sub_services["residents.profession-change"].filers
    assert Role.RESIDENT in filers
    assert Role.ESTABLISHMENT in filers


def test_visit_visa_extension_is_for_syrian_and_yemeni_visitors_of_a_host() -> None:
    service = load_catalog().sub_services["residents.visit-visa-extension"]
    assert service.subject_nationalities == {"SYR", "YEM"}
    assert service.filers == {Role.CITIZEN, Role.RESIDENT}
    types = {spec.type for spec in service.fields}
    assert {FieldType.BORDER_NUMBER, FieldType.VISA_NUMBER} <= types


def test_other_sub_services_are_open_to_any_nationality() -> None:
    limited = {c for c, s in load_catalog().sub_services.items() if s.subject_nationalities}
    assert limited == {"residents.visit-visa-extension"}


def test_absence_reports_are_about_sponsored_workers_and_dependents_services_dependents() -> None:
    """Seed 000: an absence report (بلاغ تغيب) is about the filer's worker; SPEC §3: the
    dependents' services about the holder's dependents, or the holder adding one without a
    number yet. The rest take anyone the filer may file for."""
    limited = {
        c: s.subject_relations
        for c, s in load_catalog().sub_services.items()
        if s.subject_relations
    }
    worker = {SubjectRelation.SPONSORED_WORKER}
    assert limited == {
        "reports.absence-report": worker,
        "reports.cancel-absence-report": worker,
        "reports.edit-absent-worker-data": worker,
        "residents.dependents-services": {SubjectRelation.SELF, SubjectRelation.DEPENDENT},
    }


@pytest.mark.parametrize(
    "code",
    [
        "reports.absence-report",
        "reports.cancel-absence-report",
        "reports.edit-absent-worker-data",
    ],
)
def test_absence_reports_are_filed_by_employers(code: str) -> None:
    filers = load_catalog().sub_services[code].filers
    assert filers == {Role.ESTABLISHMENT, Role.CITIZEN, Role.RESIDENT}


@pytest.mark.parametrize(
    "code", ["passports.issue-renewal-problem", "passports.lost-passport-report"]
)
def test_saudi_passport_requests_are_citizens_requests(code: str) -> None:
    assert load_catalog().sub_services[code].filers == {Role.CITIZEN}


def test_reviewers_file_nothing() -> None:
    for service in load_catalog().sub_services.values():
        assert service.filers, service.code
        assert Role.REVIEWER not in service.filers, service.code


def test_every_sla_is_within_what_the_seeds_promise() -> None:
    longest = Sla.days(7).budget(OfficeHours())
    for service in load_catalog().sub_services.values():
        assert service.sla.budget(OfficeHours()) <= longest, service.code
    catalog = load_catalog()
    # The seeds' "24 to 72 working hours": three working days, not 72 office hours.
    assert catalog.sub_services["reports.general-inquiry"].sla == Sla.days(3)
    assert catalog.sub_services["passports.lost-passport-report"].sla == Sla.days(3)
    assert len({s.sla for s in catalog.sub_services.values()}) > 2


def test_fees_apply_only_to_some_sub_services() -> None:
    services = load_catalog().sub_services
    for code in (
        "residents.iqama-issue-renewal",
        "visas.final-exit-issue",
        "visas.change-visa-duration",
    ):
        assert services[code].fee_applies, code
    assert not services["reports.general-inquiry"].fee_applies
    assert sum(s.fee_applies for s in services.values()) < len(services) / 2


def test_every_label_exists_in_both_languages_and_the_arabic_is_arabic() -> None:
    for where, text in texts(load_catalog()):
        assert text.ar.strip(), where
        assert text.en.strip(), where
        assert ARABIC_LETTER.search(text.ar), where


def test_every_sub_service_accepts_an_optional_supporting_document() -> None:
    for service in load_catalog().sub_services.values():
        kinds = {d.kind: d for d in service.documents}
        assert "supporting_document" in kinds, service.code
        assert not kinds["supporting_document"].required, service.code
        for document in service.documents:
            assert document.media_types <= {"application/pdf", "image/jpeg"}, service.code
            assert 0 < document.max_bytes <= 10 * 1024 * 1024, service.code


def test_dates_of_birth_cannot_be_in_the_future() -> None:
    births = [
        spec
        for service in load_catalog().sub_services.values()
        for spec in service.fields
        if "date_of_birth" in spec.name
    ]
    assert births
    assert all(spec.type is FieldType.DATE and spec.past_only for spec in births)


def test_every_date_field_asks_for_the_gregorian_date() -> None:
    """A Saudi ID card shows Hijri dates: the help says which calendar the field wants."""
    dates = [
        spec
        for service in load_catalog().sub_services.values()
        for spec in service.fields
        if spec.type is FieldType.DATE
    ]
    assert len(dates) == 7
    for spec in dates:
        assert "Gregorian" in spec.help.en, spec.name
        assert "الميلادي" in spec.help.ar, spec.name


def test_every_person_id_field_names_the_person_the_request_is_about() -> None:
    # SPEC §2: the person is the account holder or one they may file for, whichever field
    # names them: a visit-visa extension is about the visitor its border number names, a
    # first iqama about the newly arrived worker whose border number it gives.
    for service in load_catalog().sub_services.values():
        for spec in service.fields:
            names = spec.type in PERSON_ID_TYPES
            assert spec.names_subject == names, f"{service.code}.{spec.name}"
    borders = {
        (code, spec.name)
        for code, service in load_catalog().sub_services.items()
        for spec in service.fields
        if spec.type is FieldType.BORDER_NUMBER
    }
    assert borders == {
        ("residents.visit-visa-extension", "visitor_border_number"),
        ("residents.iqama-issue-renewal", "border_number"),
    }


def test_the_fields_an_option_needs_are_required_with_it() -> None:
    services = load_catalog().sub_services
    needed = {
        (code, spec.name): (spec.required_when.field, spec.required_when.values)
        for code, service in services.items()
        for spec in service.fields
        if spec.required_when
    }
    assert needed == {
        ("residents.iqama-issue-renewal", "iqama_number"): ("request_type", ("renewal",)),
        ("residents.iqama-issue-renewal", "border_number"): ("request_type", ("issue",)),
        ("corrections.name-or-birth-date", "correct_name_ar"): ("correction", ("name", "both")),
        ("corrections.name-or-birth-date", "correct_name_en"): ("correction", ("name", "both")),
        ("corrections.name-or-birth-date", "correct_date_of_birth"): (
            "correction",
            ("date_of_birth", "both"),
        ),
    }
    correction = services["corrections.name-or-birth-date"].fields
    date_of_birth = next(spec for spec in correction if spec.name == "correct_date_of_birth")
    assert date_of_birth.needed({"correction": "both"})
    assert not date_of_birth.needed({"correction": "name"})
    assert not date_of_birth.needed({})


def test_the_correct_names_are_each_in_one_script() -> None:
    scripts = {
        (code, spec.name): spec.script
        for code, service in load_catalog().sub_services.items()
        for spec in service.fields
        if spec.script
    }
    assert scripts == {
        ("corrections.name-or-birth-date", "correct_name_ar"): Script.ARABIC,
        ("corrections.name-or-birth-date", "correct_name_en"): Script.LATIN,
    }


def test_choice_fields_offer_options_and_others_do_not() -> None:
    visa_type = next(
        spec
        for spec in load_catalog().sub_services["visas.cancel-visa"].fields
        if spec.name == "visa_type"
    )
    assert [o.value for o in visa_type.options] == ["exit_reentry", "final_exit"]
    for service in load_catalog().sub_services.values():
        for spec in service.fields:
            assert bool(spec.options) == (spec.type is FieldType.CHOICE), spec.name


def test_a_label_is_arabic_unless_english_is_asked_for() -> None:
    text = Text(ar="رقم التأشيرة", en="Visa number")
    assert text.in_locale("en") == "Visa number"
    assert text.in_locale("ar") == "رقم التأشيرة"
    assert text.in_locale("") == "رقم التأشيرة"
    assert text.in_locale("fr") == "رقم التأشيرة"


# The loader refuses a bad catalog and names the path of the bad entry


def label(ar: str = "تسمية", en: str = "Label") -> dict[str, str]:
    return {"ar": ar, "en": en}


def minimal() -> dict[str, Any]:
    """A small valid catalog: one department, two sub-services."""
    document = {
        "kind": "supporting_document",
        "label": label(),
        "required": False,
        "min_count": 0,
        "max_count": 3,
        "media_types": ["application/pdf", "image/jpeg"],
        "max_bytes": 5 * 1024 * 1024,
    }
    service = {
        "code": "reports.general-inquiry",
        "department": "reports",
        "name": label(),
        "description": label(),
        "filers": ["citizen", "resident"],
        "fields": [
            {
                "name": "iqama_number",
                "type": "iqama_number",
                "label": label(),
                "help": label(),
                "required": True,
                "names_subject": True,
            },
            {
                "name": "visa_type",
                "type": "choice",
                "label": label(),
                "help": label(),
                "required": True,
                "options": [{"value": "final_exit", "label": label()}],
            },
        ],
        "documents": [
            {**document, "kind": "passport_copy", "required": True, "min_count": 1},
            document,
        ],
        "sla": {"amount": 5, "unit": "working_days"},
        "fee_applies": False,
    }
    other = {**copy.deepcopy(service), "code": "reports.other", "subject_nationalities": ["YEM"]}
    return {
        "version": 2,
        "departments": [{"code": "reports", "name": label(), "description": label()}],
        "sub_services": [service, other],
    }


def test_a_field_may_be_required_by_an_option_of_a_choice() -> None:
    raw = minimal()
    field_of(raw, 0).update(
        required=False, required_when={"field": "visa_type", "values": ["final_exit"]}
    )
    (spec, _) = parse_catalog(raw).sub_services["reports.other"].fields
    assert spec.required_when == RequiredWhen(field="visa_type", values=("final_exit",))
    assert spec.needed({"visa_type": "final_exit"})
    assert not spec.needed({})


def test_a_subject_field_may_leave_the_person_to_other_fields() -> None:
    raw = minimal()
    field_of(raw, 0).update(required=False, otherwise_named_by=["visa_type"])
    (spec, _) = parse_catalog(raw).sub_services["reports.other"].fields
    assert spec.otherwise_named_by == ("visa_type",)


def test_a_dependent_without_a_number_is_told_apart_by_name_and_birth() -> None:
    (spec,) = [
        f
        for f in load_catalog().sub_services["residents.dependents-services"].fields
        if f.names_subject
    ]
    assert spec.otherwise_named_by == ("dependent_name", "dependent_date_of_birth")


def test_the_minimal_catalog_parses() -> None:
    catalog = parse_catalog(minimal())
    service = catalog.sub_services["reports.other"]
    assert service.subject_nationalities == {"YEM"}
    assert service.subject_relations == frozenset()
    assert service.fields[0].type is FieldType.IQAMA_NUMBER
    assert (service.fields[0].names_subject, service.fields[1].names_subject) == (True, False)
    assert service.fields[0].max_length == 200
    assert service.documents[1].media_types == {"application/pdf", "image/jpeg"}
    assert service.sla == Sla.days(5)


Edit = Callable[[dict[str, Any]], object]


def field_of(raw: dict[str, Any], index: int = 1) -> dict[str, Any]:
    field: dict[str, Any] = raw["sub_services"][1]["fields"][index]
    return field


def document_of(raw: dict[str, Any], index: int = 0) -> dict[str, Any]:
    document: dict[str, Any] = raw["sub_services"][1]["documents"][index]
    return document


def when(**rule: object) -> Edit:
    """Makes the minimal catalog's iqama field optional, required when `rule` says."""
    return lambda raw: field_of(raw, 0).update(
        required=False, required_when={"field": "visa_type", "values": ["final_exit"], **rule}
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda raw: raw["sub_services"][1].update(department="nowhere"),
            r"^sub_services\[1\]\.department: unknown department 'nowhere'",
        ),
        (
            lambda raw: raw["departments"].append(copy.deepcopy(raw["departments"][0])),
            r"^departments\[1\]\.code: duplicate department code 'reports'",
        ),
        (
            lambda raw: raw["sub_services"][1].update(code="reports.general-inquiry"),
            r"^sub_services\[1\]\.code: duplicate sub-service code 'reports.general-inquiry'",
        ),
        (
            lambda raw: raw["sub_services"][1].update(code="visas.general-inquiry"),
            r"^sub_services\[1\]\.code: .* must start with its department",
        ),
        (
            lambda raw: field_of(raw).update(name="iqama_number"),
            r"^sub_services\[1\]\.fields\[1\]\.name: duplicate field name 'iqama_number'",
        ),
        (
            lambda raw: document_of(raw, 1).update(kind="passport_copy"),
            r"^sub_services\[1\]\.documents\[1\]\.kind: duplicate document kind",
        ),
        (
            lambda raw: field_of(raw).pop("options"),
            r"^sub_services\[1\]\.fields\[1\]\.options: a choice field needs at least one option",
        ),
        (
            lambda raw: field_of(raw).update(options=[]),
            r"^sub_services\[1\]\.fields\[1\]\.options: a choice field needs",
        ),
        (
            lambda raw: field_of(raw, 0).update(options=[{"value": "x", "label": label()}]),
            r"^sub_services\[1\]\.fields\[0\]\.options: only choice fields have options",
        ),
        (
            lambda raw: field_of(raw)["options"].append(field_of(raw)["options"][0]),
            r"^sub_services\[1\]\.fields\[1\]\.options\[1\]\.value: duplicate option value",
        ),
        (
            lambda raw: field_of(raw).update(type="colour"),
            r"^sub_services\[1\]\.fields\[1\]\.type: 'colour' is not one of national_id, ",
        ),
        (
            lambda raw: field_of(raw, 0).update(past_only=True),
            r"^sub_services\[1\]\.fields\[0\]\.past_only: only date fields",
        ),
        (
            lambda raw: field_of(raw).update(names_subject=True),
            r"^sub_services\[1\]\.fields\[1\]\.names_subject: only a person's ID number",
        ),
        (
            lambda raw: field_of(raw, 0).update(names_subject="yes"),
            r"^sub_services\[1\]\.fields\[0\]\.names_subject: expected true or false",
        ),
        (
            when(field="nowhere"),
            r"^sub_services\[1\]\.fields\[0\]\.required_when\.field: 'nowhere' is not another"
            r" choice field of this form",
        ),
        (
            when(field="iqama_number"),
            r"^sub_services\[1\]\.fields\[0\]\.required_when\.field: 'iqama_number' is not",
        ),
        (
            when(values=["final_exit", "exit_reentry"]),
            r"^sub_services\[1\]\.fields\[0\]\.required_when\.values\[1\]: 'exit_reentry' is"
            r" not an option of 'visa_type': final_exit",
        ),
        (
            when(values=[]),
            r"^sub_services\[1\]\.fields\[0\]\.required_when\.values: must not be empty",
        ),
        (
            when(values=["final_exit", "final_exit"]),
            r"^sub_services\[1\]\.fields\[0\]\.required_when\.values\[1\]: duplicate value",
        ),
        (
            lambda raw: field_of(raw, 0).update(
                required_when={"field": "visa_type", "values": ["final_exit"]}
            ),
            r"^sub_services\[1\]\.fields\[0\]\.required_when: a required field is required",
        ),
        (
            lambda raw: field_of(raw, 0).update(otherwise_named_by=["visa_type"]),
            r"^sub_services\[1\]\.fields\[0\]\.otherwise_named_by: only an optional field",
        ),
        (
            lambda raw: field_of(raw, 0).update(required=False, otherwise_named_by=["nowhere"]),
            r"^sub_services\[1\]\.fields\[0\]\.otherwise_named_by\[0\]: 'nowhere' is not"
            r" another required field of this form",
        ),
        (
            lambda raw: field_of(raw, 0).update(
                required=False, otherwise_named_by=["visa_type", "visa_type"]
            ),
            r"^sub_services\[1\]\.fields\[0\]\.otherwise_named_by\[1\]: duplicate field",
        ),
        (
            lambda raw: field_of(raw, 0).update(script="latin"),
            r"^sub_services\[1\]\.fields\[0\]\.script: only text fields have a script",
        ),
        (
            lambda raw: raw["sub_services"][1]["fields"].append(
                {"name": "name_en", "type": "text", "label": label(), "help": label()}
                | {"required": False, "script": "cyrillic"}
            ),
            r"^sub_services\[1\]\.fields\[2\]\.script: 'cyrillic' is not one of latin, arabic",
        ),
        (
            lambda raw: field_of(raw, 0).update(max_length=10),
            r"^sub_services\[1\]\.fields\[0\]\.max_length: only text fields",
        ),
        (
            lambda raw: document_of(raw).update(min_count=2, max_count=1),
            r"^sub_services\[1\]\.documents\[0\]\.min_count: 2 is more than max_count 1",
        ),
        (
            lambda raw: document_of(raw).update(min_count=0),
            r"^sub_services\[1\]\.documents\[0\]\.min_count: a required document needs",
        ),
        (
            lambda raw: document_of(raw, 1).update(min_count=1),
            r"^sub_services\[1\]\.documents\[1\]\.min_count: an optional document needs",
        ),
        (
            lambda raw: document_of(raw)["media_types"].append("image/gif"),
            r"^sub_services\[1\]\.documents\[0\]\.media_types\[2\]: 'image/gif' is not one of",
        ),
        (  # SPEC §2: PDF or JPG only
            lambda raw: document_of(raw)["media_types"].append("image/png"),
            r"^sub_services\[1\]\.documents\[0\]\.media_types\[2\]: 'image/png' is not one of"
            r" application/pdf, image/jpeg$",
        ),
        (
            lambda raw: document_of(raw).update(media_types=[]),
            r"^sub_services\[1\]\.documents\[0\]\.media_types: must not be empty",
        ),
        (
            lambda raw: raw["sub_services"][1]["filers"].append("reviewer"),
            r"^sub_services\[1\]\.filers\[2\]: 'reviewer' is not one of citizen, establishment,"
            r" resident \(reviewers never file\)",
        ),
        (
            lambda raw: raw["sub_services"][1]["filers"].append("tourist"),
            r"^sub_services\[1\]\.filers\[2\]: 'tourist' is not one of",
        ),
        (
            lambda raw: raw["sub_services"][1]["filers"].append("citizen"),
            r"^sub_services\[1\]\.filers\[2\]: duplicate filer",
        ),
        (
            lambda raw: field_of(raw).update(name="visaType"),
            r"^sub_services\[1\]\.fields\[1\]\.name: 'visaType' is not a snake_case name",
        ),
        (
            lambda raw: field_of(raw).update(name="visa-type"),
            r"^sub_services\[1\]\.fields\[1\]\.name: 'visa-type' is not a snake_case name",
        ),
        (
            lambda raw: raw["sub_services"][1].update(subject_relations=["worker"]),
            r"^sub_services\[1\]\.subject_relations\[0\]: 'worker' is not one of self, dependent,",
        ),
        (
            lambda raw: raw["sub_services"][1].update(subject_relations=["self", "self"]),
            r"^sub_services\[1\]\.subject_relations\[1\]: duplicate relation",
        ),
        (
            lambda raw: raw["sub_services"][1].update(subject_relations=[]),
            r"^sub_services\[1\]\.subject_relations: must not be empty",
        ),
        (
            lambda raw: raw["sub_services"][1].update(subject_nationalities=["ye"]),
            r"^sub_services\[1\]\.subject_nationalities\[0\]: 'ye' is not an ISO 3166-1 alpha-3",
        ),
        (
            lambda raw: raw["sub_services"][1].update(sla={"amount": 8, "unit": "working_days"}),
            r"^sub_services\[1\]\.sla\.amount: 8 working_days is more than the promised 7 working",
        ),
        (
            # 72 office hours are more than ten working days of 7 hours.
            lambda raw: raw["sub_services"][1].update(sla={"amount": 72, "unit": "working_hours"}),
            r"^sub_services\[1\]\.sla\.amount: 72 working_hours is more than the promised 7 ",
        ),
        (
            lambda raw: raw["sub_services"][1].update(sla={"amount": 3, "unit": "weeks"}),
            r"^sub_services\[1\]\.sla\.unit: 'weeks' is not one of",
        ),
        (
            lambda raw: raw["sub_services"][1].update(fee_applies="no"),
            r"^sub_services\[1\]\.fee_applies: expected true or false, got a string",
        ),
        (
            lambda raw: document_of(raw).update(max_bytes=True),
            r"^sub_services\[1\]\.documents\[0\]\.max_bytes: expected an integer",
        ),
        (
            lambda raw: raw["sub_services"][1].update(name={"ar": "Inquiry", "en": "Inquiry"}),
            r"^sub_services\[1\]\.name\.ar: 'Inquiry' has no Arabic letters",
        ),
        (
            lambda raw: raw["sub_services"][1].update(name={"ar": "استفسار", "en": " "}),
            r"^sub_services\[1\]\.name\.en: must not be blank",
        ),
        (
            lambda raw: raw["sub_services"][1].pop("sla"),
            r"^sub_services\[1\]\.sla: missing",
        ),
        (
            lambda raw: field_of(raw).update(pastOnly=True),
            r"^sub_services\[1\]\.fields\[1\]\.pastOnly: unknown key",
        ),
        (
            lambda raw: raw["departments"].append(
                {"code": "visas", "name": label(), "description": label()}
            ),
            r"^departments\[1\]\.code: department 'visas' has no sub-services",
        ),
        (
            lambda raw: raw.update(version="2"),
            r"^version: expected an integer, got a string",
        ),
        (
            lambda raw: raw.update(sub_services={}),
            r"^sub_services: expected a list, got an object",
        ),
    ],
)
def test_a_bad_entry_is_refused_with_its_path(edit: Edit, message: str) -> None:
    raw = minimal()
    edit(raw)
    with pytest.raises(ValueError, match=message):
        parse_catalog(raw)
