"""The service catalog: departments and sub-services, read from a versioned data file.

The catalog is data (catalog.v6.json), not code, so that departments, forms, filers and SLAs
change without a code change and channels can draw their forms from it. This module only
parses and validates the file: anything malformed is refused with the JSON path of the bad
entry, so a broken catalog stops a service at start-up instead of surfacing as odd forms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any, NoReturn, TypeVar

from tawasul_calendar import OfficeHours, Sla, SlaUnit

from tawasul_platform.identity import BENEFICIARY_ROLES, Role

CATALOG_FILE = "catalog.v6.json"
# SPEC §2: attachments are PDF or JPG.
MEDIA_TYPES = frozenset({"application/pdf", "image/jpeg"})
DEFAULT_MAX_LENGTH = 200
# The seeds promise an answer within 24-72 working hours (one to three working days), and never
# later than 7 working days. A promise in hours counts office hours (7 a day), so it is held to
# the same 7 days of them: 72 office hours would be more than ten working days.
LONGEST_SLA = Sla.days(7)

_ARABIC_LETTER = re.compile(r"[\u0621-\u064a]")

_FILERS = sorted(role.value for role in BENEFICIARY_ROLES)
_E = TypeVar("_E", bound=StrEnum)


@dataclass(frozen=True)
class Text:
    """A label in both languages: every beneficiary-facing string exists in Arabic and English."""

    ar: str
    en: str

    def in_locale(self, locale: str) -> str:
        """English only when asked for; Arabic is the service's default language."""
        return self.en if locale == "en" else self.ar


class FieldType(StrEnum):
    """What a form field holds, so channels and intake validate it the same way."""

    NATIONAL_ID = "national_id"
    IQAMA_NUMBER = "iqama_number"
    ID_NUMBER = "id_number"  # a national ID or an iqama number
    BORDER_NUMBER = "border_number"
    VISA_NUMBER = "visa_number"
    PASSPORT_NUMBER = "passport_number"
    ESTABLISHMENT_NUMBER = "establishment_number"
    DATE = "date"
    TEXT = "text"
    CHOICE = "choice"
    NATIONALITY = "nationality"


class Script(StrEnum):
    """The only letters a text field takes: a name in Arabic, or as a passport spells it."""

    LATIN = "latin"
    ARABIC = "arabic"


class SubjectRelation(StrEnum):
    """How the person a request is about stands to the account that files it, as the registry
    (Absher / Muqeem) has them."""

    SELF = "self"
    # A family member on the holder's record (التابعين).
    DEPENDENT = "dependent"
    # A worker the holder (an establishment, or a household employer) sponsors.
    SPONSORED_WORKER = "sponsored_worker"
    # A family visitor the holder hosts on a visit visa.
    HOSTED_VISITOR = "hosted_visitor"


# The field types that hold one person's ID number, the kinds a request's subject_id takes.
PERSON_ID_TYPES = frozenset(
    {FieldType.NATIONAL_ID, FieldType.IQAMA_NUMBER, FieldType.ID_NUMBER, FieldType.BORDER_NUMBER}
)


@dataclass(frozen=True)
class Choice:
    """One option of a choice field: a stable value stored with the request, and its label."""

    value: str
    label: Text


@dataclass(frozen=True)
class RequiredWhen:
    """A field needed only for some options of a choice field of the same form: the iqama
    number for a renewal, the border number for a first issue."""

    field: str  # the choice field's name
    values: tuple[str, ...]  # its options that need the field, in the catalog's order


@dataclass(frozen=True)
class FieldSpec:
    """A form field: typed so that the data the reviewer looks records up by is well-formed."""

    name: str
    type: FieldType
    label: Text
    help: Text
    required: bool
    max_length: int = DEFAULT_MAX_LENGTH  # text fields only
    options: tuple[Choice, ...] = ()  # choice fields only, never empty there
    past_only: bool = False  # dates that cannot lie in the future, e.g. a date of birth
    # An ID number of the person the request is about (SPEC §2): when given, intake takes it
    # only if it is the request's subject_id, and channels may fill it in from that.
    names_subject: bool = False  # person ID fields only (PERSON_ID_TYPES)
    required_when: RequiredWhen | None = None  # optional fields only
    script: Script | None = None  # text fields only; None takes any letters
    # An optional names_subject field left empty (a dependent who has no number yet): the
    # request is then about someone without a number, told apart by these required fields of
    # the form (their name and date of birth), not by the account holder's number it is filed
    # under. Intake's one open request per person and sub-service keys on them.
    otherwise_named_by: tuple[str, ...] = ()

    def needed(self, values: Mapping[str, str]) -> bool:
        """Whether the field must be given, with the form's other fields set to `values`."""
        rule = self.required_when
        return self.required or (rule is not None and values.get(rule.field) in rule.values)


@dataclass(frozen=True)
class DocumentSpec:
    """A kind of attachment a sub-service needs or accepts, with its count, type and size."""

    kind: str
    label: Text
    required: bool
    min_count: int
    max_count: int
    media_types: frozenset[str]
    max_bytes: int


@dataclass(frozen=True)
class Department:
    """A department (القسم): routing sends each request to its department's queue."""

    code: str
    name: Text
    description: Text


@dataclass(frozen=True)
class SubService:
    """A sub-service (الخدمة الفرعية): who may file it, its form, its documents and its SLA."""

    code: str
    department: str
    name: Text
    description: Text
    filers: frozenset[Role]
    # ISO 3166-1 alpha-3 nationalities of the person the request is about; empty means any.
    subject_nationalities: frozenset[str]
    fields: tuple[FieldSpec, ...]
    documents: tuple[DocumentSpec, ...]
    sla: Sla
    fee_applies: bool
    # Whom a request may be about, to its filer (an absence report: a worker they sponsor,
    # seed 000); empty means anyone the filer's role may file for.
    subject_relations: frozenset[SubjectRelation] = frozenset()


@dataclass(frozen=True)
class Catalog:
    """One version of the catalog. Each request carries the version intake checked it
    against (RequestSubmitted.catalog_version), which routing passes on with its decisions."""

    version: int
    departments: dict[str, Department]
    sub_services: dict[str, SubService]


@cache
def load_catalog() -> Catalog:
    """The packaged catalog, parsed once per process; a bad file fails the caller's start-up."""
    text = resources.files(__name__).joinpath(CATALOG_FILE).read_text("utf-8")
    try:
        return parse_catalog(json.loads(text))
    except ValueError as error:  # json.JSONDecodeError is a ValueError too
        raise ValueError(f"{CATALOG_FILE}: {error}") from error


def parse_catalog(raw: Mapping[str, Any]) -> Catalog:
    """The catalog in `raw` (the decoded JSON); a ValueError names the path of a bad entry."""
    root = _object(raw, "", required={"version", "departments", "sub_services"})
    version = _int(root["version"], "version", minimum=1)

    departments: dict[str, Department] = {}
    department_paths: dict[str, str] = {}
    for path, item in _items(root["departments"], "departments"):
        department = _department(item, path)
        _claim(department_paths, department.code, f"{path}.code", "department code")
        departments[department.code] = department

    sub_services: dict[str, SubService] = {}
    sub_service_paths: dict[str, str] = {}
    for path, item in _items(root["sub_services"], "sub_services"):
        sub_service = _sub_service(item, path, departments)
        _claim(sub_service_paths, sub_service.code, f"{path}.code", "sub-service code")
        sub_services[sub_service.code] = sub_service

    for code, path in department_paths.items():
        if not any(s.department == code for s in sub_services.values()):
            _fail(path, f"department {code!r} has no sub-services")
    return Catalog(version=version, departments=departments, sub_services=sub_services)


def _department(raw: object, path: str) -> Department:
    item = _object(raw, path, required={"code", "name", "description"})
    return Department(
        code=_DEPARTMENT_CODE.check(item["code"], f"{path}.code"),
        name=_text(item["name"], f"{path}.name"),
        description=_text(item["description"], f"{path}.description"),
    )


def _sub_service(raw: object, path: str, departments: Mapping[str, Department]) -> SubService:
    item = _object(
        raw,
        path,
        required={
            "code",
            "department",
            "name",
            "description",
            "filers",
            "fields",
            "documents",
            "sla",
            "fee_applies",
        },
        optional={"subject_nationalities", "subject_relations"},
    )
    department = _str(item["department"], f"{path}.department")
    if department not in departments:
        _fail(
            f"{path}.department",
            f"unknown department {department!r}; known: {', '.join(sorted(departments))}",
        )
    code = _SUB_SERVICE_CODE.check(item["code"], f"{path}.code")
    if not code.startswith(f"{department}."):
        _fail(f"{path}.code", f"{code!r} must start with its department, '{department}.'")

    filers: set[Role] = set()
    for filer_path, filer in _items(item["filers"], f"{path}.filers"):
        text = _str(filer, filer_path)
        if text not in _FILERS:
            _fail(filer_path, f"{text!r} is not one of {', '.join(_FILERS)} (reviewers never file)")
        _add(filers, Role(text), filer_path, "filer")

    nationalities: set[str] = set()
    for nat_path, nationality in _items(
        item.get("subject_nationalities", []), f"{path}.subject_nationalities", allow_empty=True
    ):
        alpha3 = _ALPHA3.check(nationality, nat_path)
        _add(nationalities, alpha3, nat_path, "nationality")

    relations: set[SubjectRelation] = set()
    if "subject_relations" in item:
        for relation_path, relation in _items(
            item["subject_relations"], f"{path}.subject_relations"
        ):
            _add(
                relations,
                _enum(relation, relation_path, SubjectRelation),
                relation_path,
                "relation",
            )

    fields: list[FieldSpec] = []
    names: dict[str, str] = {}
    raw_fields = _items(item["fields"], f"{path}.fields", allow_empty=True)
    for field_path, raw_field in raw_fields:
        spec = _field(raw_field, field_path)
        _claim(names, spec.name, f"{field_path}.name", "field name")
        fields.append(spec)
    # A condition names another field, so it is checked once the whole form is read.
    for (field_path, _), spec in zip(raw_fields, fields, strict=True):
        _check_required_when(spec, fields, f"{field_path}.required_when")
        _check_named_by(spec, fields, f"{field_path}.otherwise_named_by")

    documents: list[DocumentSpec] = []
    kinds: dict[str, str] = {}
    for doc_path, raw_document in _items(item["documents"], f"{path}.documents", allow_empty=True):
        document = _document(raw_document, doc_path)
        _claim(kinds, document.kind, f"{doc_path}.kind", "document kind")
        documents.append(document)

    return SubService(
        code=code,
        department=department,
        name=_text(item["name"], f"{path}.name"),
        description=_text(item["description"], f"{path}.description"),
        filers=frozenset(filers),
        subject_nationalities=frozenset(nationalities),
        fields=tuple(fields),
        documents=tuple(documents),
        sla=_sla(item["sla"], f"{path}.sla"),
        fee_applies=_bool(item["fee_applies"], f"{path}.fee_applies"),
        subject_relations=frozenset(relations),
    )


def _field(raw: object, path: str) -> FieldSpec:
    item = _object(
        raw,
        path,
        required={"name", "type", "label", "help", "required"},
        optional={
            "max_length",
            "options",
            "past_only",
            "names_subject",
            "required_when",
            "script",
            "otherwise_named_by",
        },
    )
    name = _SNAKE_CASE.check(item["name"], f"{path}.name")
    field_type = _enum(item["type"], f"{path}.type", FieldType)

    max_length = DEFAULT_MAX_LENGTH
    if "max_length" in item:
        if field_type is not FieldType.TEXT:
            _fail(f"{path}.max_length", f"only text fields have a max_length, not {field_type}")
        max_length = _int(item["max_length"], f"{path}.max_length", minimum=1)

    options: list[Choice] = []
    if field_type is FieldType.CHOICE:
        if not item.get("options"):
            _fail(f"{path}.options", "a choice field needs at least one option")
        values: dict[str, str] = {}
        for option_path, raw_option in _items(item["options"], f"{path}.options"):
            option = _object(raw_option, option_path, required={"value", "label"})
            value = _SNAKE_CASE.check(option["value"], f"{option_path}.value")
            _claim(values, value, f"{option_path}.value", "option value")
            options.append(
                Choice(value=value, label=_text(option["label"], f"{option_path}.label"))
            )
    elif "options" in item:
        _fail(f"{path}.options", f"only choice fields have options, not {field_type}")

    past_only = False
    if "past_only" in item:
        if field_type is not FieldType.DATE:
            _fail(f"{path}.past_only", f"only date fields can be past_only, not {field_type}")
        past_only = _bool(item["past_only"], f"{path}.past_only")

    names_subject = False
    if "names_subject" in item:
        if field_type not in PERSON_ID_TYPES:
            _fail(
                f"{path}.names_subject",
                f"only a person's ID number can name the subject, not {field_type}",
            )
        names_subject = _bool(item["names_subject"], f"{path}.names_subject")

    script = None
    if "script" in item:
        if field_type is not FieldType.TEXT:
            _fail(f"{path}.script", f"only text fields have a script, not {field_type}")
        script = _enum(item["script"], f"{path}.script", Script)

    required = _bool(item["required"], f"{path}.required")
    required_when = None
    if "required_when" in item:
        if required:
            _fail(f"{path}.required_when", "a required field is required whatever the form holds")
        rule = _object(item["required_when"], f"{path}.required_when", required={"field", "values"})
        when_values: dict[str, str] = {}
        for value_path, raw_value in _items(rule["values"], f"{path}.required_when.values"):
            _claim(when_values, _str(raw_value, value_path), value_path, "value")
        required_when = RequiredWhen(
            field=_str(rule["field"], f"{path}.required_when.field"), values=tuple(when_values)
        )

    named_by: dict[str, str] = {}
    if "otherwise_named_by" in item:
        if not names_subject or required:
            _fail(
                f"{path}.otherwise_named_by",
                "only an optional field that names the subject may be left for others",
            )
        for by_path, raw_by in _items(item["otherwise_named_by"], f"{path}.otherwise_named_by"):
            _claim(named_by, _str(raw_by, by_path), by_path, "field")

    return FieldSpec(
        name=name,
        type=field_type,
        label=_text(item["label"], f"{path}.label"),
        help=_text(item["help"], f"{path}.help"),
        required=required,
        max_length=max_length,
        options=tuple(options),
        past_only=past_only,
        names_subject=names_subject,
        required_when=required_when,
        script=script,
        otherwise_named_by=tuple(named_by),
    )


def _check_required_when(spec: FieldSpec, fields: Sequence[FieldSpec], path: str) -> None:
    """A field's condition names a choice field of its form, by options it has."""
    rule = spec.required_when
    if rule is None:
        return
    choice = next((other for other in fields if other.name == rule.field), None)
    if choice is None or choice is spec or choice.type is not FieldType.CHOICE:
        _fail(f"{path}.field", f"{rule.field!r} is not another choice field of this form")
    options = [option.value for option in choice.options]
    for index, value in enumerate(rule.values):
        if value not in options:
            _fail(
                f"{path}.values[{index}]",
                f"{value!r} is not an option of {rule.field!r}: {', '.join(options)}",
            )


def _check_named_by(spec: FieldSpec, fields: Sequence[FieldSpec], path: str) -> None:
    """The fields that tell an unnumbered person apart are other required fields of the form:
    a key made of an empty value would make every such person one."""
    for index, name in enumerate(spec.otherwise_named_by):
        other = next((f for f in fields if f.name == name), None)
        if other is None or other is spec or not other.required:
            _fail(f"{path}[{index}]", f"{name!r} is not another required field of this form")


def _document(raw: object, path: str) -> DocumentSpec:
    item = _object(
        raw,
        path,
        required={
            "kind",
            "label",
            "required",
            "min_count",
            "max_count",
            "media_types",
            "max_bytes",
        },
    )
    required = _bool(item["required"], f"{path}.required")
    min_count = _int(item["min_count"], f"{path}.min_count", minimum=0)
    max_count = _int(item["max_count"], f"{path}.max_count", minimum=1)
    if min_count > max_count:
        _fail(f"{path}.min_count", f"{min_count} is more than max_count {max_count}")
    if required and min_count == 0:
        _fail(f"{path}.min_count", "a required document needs a min_count of at least 1")
    if not required and min_count > 0:
        _fail(f"{path}.min_count", "an optional document needs a min_count of 0")

    media_types: set[str] = set()
    for media_path, raw_media in _items(item["media_types"], f"{path}.media_types"):
        media_type = _str(raw_media, media_path)
        if media_type not in MEDIA_TYPES:
            _fail(media_path, f"{media_type!r} is not one of {', '.join(sorted(MEDIA_TYPES))}")
        _add(media_types, media_type, media_path, "media type")

    return DocumentSpec(
        kind=_SNAKE_CASE.check(item["kind"], f"{path}.kind"),
        label=_text(item["label"], f"{path}.label"),
        required=required,
        min_count=min_count,
        max_count=max_count,
        media_types=frozenset(media_types),
        max_bytes=_int(item["max_bytes"], f"{path}.max_bytes", minimum=1),
    )


def _sla(raw: object, path: str) -> Sla:
    item = _object(raw, path, required={"amount", "unit"})
    unit = _enum(item["unit"], f"{path}.unit", SlaUnit)
    amount = _int(item["amount"], f"{path}.amount", minimum=1)
    sla = Sla(amount, unit)
    if sla.budget(OfficeHours()) > LONGEST_SLA.budget(OfficeHours()):
        _fail(
            f"{path}.amount",
            f"{amount} {unit} is more than the promised {LONGEST_SLA.amount} working days",
        )
    return sla


# JSON primitives: each checks one value and names its path when it is wrong.


def _fail(path: str, message: str) -> NoReturn:
    raise ValueError(f"{path or '(root)'}: {message}")


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _object(
    raw: object, path: str, *, required: Set[str], optional: Set[str] = frozenset()
) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        _fail(path, f"expected an object, got {_kind(raw)}")
    for key in sorted(required - raw.keys()):
        _fail(_at(path, key), "missing")
    for key in sorted(raw.keys() - required - optional):
        _fail(_at(path, str(key)), "unknown key")
    return raw


def _items(raw: object, path: str, *, allow_empty: bool = False) -> list[tuple[str, object]]:
    if not isinstance(raw, list):
        _fail(path, f"expected a list, got {_kind(raw)}")
    if not raw and not allow_empty:
        _fail(path, "must not be empty")
    return [(f"{path}[{index}]", item) for index, item in enumerate(raw)]


def _str(raw: object, path: str) -> str:
    if not isinstance(raw, str):
        _fail(path, f"expected a string, got {_kind(raw)}")
    if not raw.strip():
        _fail(path, "must not be blank")
    return raw


@dataclass(frozen=True)
class _Shape:
    """The form a code or name must have, so that it stays usable as a key and in URLs."""

    pattern: re.Pattern[str]
    description: str

    def check(self, raw: object, path: str) -> str:
        text = _str(raw, path)
        if not self.pattern.fullmatch(text):
            _fail(path, f"{text!r} is not {self.description}")
        return text


_SNAKE_CASE = _Shape(re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"), "a snake_case name")
_DEPARTMENT_CODE = _Shape(re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*"), "a kebab-case code")
_SUB_SERVICE_CODE = _Shape(
    re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*\.[a-z][a-z0-9]*(?:-[a-z0-9]+)*"),
    "a 'department.kebab-case' code",
)
_ALPHA3 = _Shape(re.compile(r"[A-Z]{3}"), "an ISO 3166-1 alpha-3 code")


def _bool(raw: object, path: str) -> bool:
    if not isinstance(raw, bool):
        _fail(path, f"expected true or false, got {_kind(raw)}")
    return raw


def _int(raw: object, path: str, *, minimum: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        _fail(path, f"expected an integer, got {_kind(raw)}")
    if raw < minimum:
        _fail(path, f"must be at least {minimum}, got {raw}")
    return raw


def _enum(raw: object, path: str, enum: type[_E]) -> _E:
    text = _str(raw, path)
    try:
        return enum(text)
    except ValueError:
        _fail(path, f"{text!r} is not one of {', '.join(member.value for member in enum)}")


def _text(raw: object, path: str) -> Text:
    item = _object(raw, path, required={"ar", "en"})
    ar = _str(item["ar"], f"{path}.ar")
    if not _ARABIC_LETTER.search(ar):
        _fail(f"{path}.ar", f"{ar!r} has no Arabic letters")
    return Text(ar=ar, en=_str(item["en"], f"{path}.en"))


def _claim(seen: dict[str, str], key: str, path: str, what: str) -> None:
    if key in seen:
        _fail(path, f"duplicate {what} {key!r} (first at {seen[key]})")
    seen[key] = path


def _add(seen: set[Any], value: object, path: str, what: str) -> None:
    if value in seen:
        _fail(path, f"duplicate {what} {value!r}")
    seen.add(value)


_JSON_KINDS: dict[type, str] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "true/false",
    int: "an integer",
    float: "a number",
}


def _kind(raw: object) -> str:
    return "null" if raw is None else _JSON_KINDS.get(type(raw), type(raw).__name__)
