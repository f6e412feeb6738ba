"""validate_submission: every rule, the field it reports, and what it never echoes back."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date
from typing import TypedDict, Unpack

import pytest
from tawasul_intake.domain.fields import FOREIGN_DIGITS
from tawasul_intake.domain.model import (
    MAX_DOCUMENTS,
    MAX_FIELDS,
    Answer,
    Locale,
    Submission,
    validate_answer,
    validate_submission,
)
from tawasul_platform.catalog import load_catalog
from tawasul_platform.errors import InvalidArgument, PermissionDenied
from tawasul_platform.i18n import Bilingual
from tawasul_platform.identity import Principal, Role
from tawasul_platform.request_numbers import new_request_number

CATALOG = load_catalog()
TODAY = date(2026, 1, 4)
CITIZEN = Principal("1000000008", Role.CITIZEN)
RESIDENT = Principal("2000000006", Role.RESIDENT)
ESTABLISHMENT = Principal("7000000005", Role.ESTABLISHMENT)
PASSPORT = "passports.issue-renewal-problem"
INQUIRY = "reports.general-inquiry"
DESCRIPTION = "The photo does not appear when renewing passport A123 after payment"
PASSPORT_FIELDS = {"national_id": "1000000008", "request_type": "renewal", "problem": "other"}
# Long and unique, so that finding it in an error can only mean the input was echoed.
MARK = "Zq9UniqueInputMarker"
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
# A well-formed request number (TW, 8 digits, Damm check digit); which one does not matter.
NUMBER = new_request_number(lambda _: 48291357)
WRONG_CHECK = NUMBER[:-1] + str((int(NUMBER[-1]) + 1) % 10)


class Form(TypedDict, total=False):
    caller: Principal
    idempotency_key: str
    sub_service_code: str
    description: str
    subject_id: str
    fields: Mapping[str, str]
    document_ids: list[str]
    mobile: str
    email: str
    locale: str
    cites_number: str


def validate(**form: Unpack[Form]) -> Submission:
    """A valid citizen's passport request, but for what `form` overrides."""
    return validate_submission(
        caller=form.get("caller", CITIZEN),
        catalog=CATALOG,
        today=TODAY,
        idempotency_key=form.get("idempotency_key", "key-1"),
        sub_service_code=form.get("sub_service_code", PASSPORT),
        description=form.get("description", DESCRIPTION),
        subject_id=form.get("subject_id", ""),
        fields=form.get("fields", PASSPORT_FIELDS),
        document_ids=form.get("document_ids", []),
        mobile=form.get("mobile", "0551234567"),
        email=form.get("email", ""),
        locale=form.get("locale", ""),
        cites_number=form.get("cites_number", ""),
    )


def violations(**form: Unpack[Form]) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        validate(**form)
    return caught.value.violations


def passport(**fields: str) -> dict[str, str]:
    return {**PASSPORT_FIELDS, **fields}


CANCEL_VISA = {"visa_type": "final_exit", "visa_number": "1234567890", "iqama_number": "2000000006"}
IQAMA = {"request_type": "issue", "passport_number": "A1234567"}
TRANSFER = {"iqama_number": "2000000006", "new_employer_number": "7000000005"}
PROFESSION = {
    "iqama_number": "2000000006",
    "current_profession": "Driver",
    "new_profession": "Cook",
}
LOST = {"national_id": "1000000008", "loss_date": "2025-12-01", "loss_place": "inside_kingdom"}
# Whichever is corrected, its correct entry is there.
CORRECTION = {
    "id_number": "1000000008",
    "correction": "name",
    "correct_name_ar": "محمد عبدالله القحطاني",
    "correct_name_en": "Mohammed Abdullah Al-Qahtani",
    "correct_date_of_birth": "1990-05-01",
}
PASSPORT_DATA = {
    "iqama_number": "2000000006",
    "new_passport_number": "A1234567",
    "new_passport_expiry_date": "2031-01-01",
    "nationality": "EGY",
}

REJECTED: list[tuple[Form, str, str]] = [
    # idempotency_key
    (Form(idempotency_key=""), "idempotency_key", "required"),
    (Form(idempotency_key="   "), "idempotency_key", "required"),
    (Form(idempotency_key="k" * 101), "idempotency_key", "at most 100 characters"),
    # sub_service_code
    (Form(sub_service_code="passports.no-such-thing"), "sub_service_code", "not a sub-service"),
    (Form(sub_service_code="x" * 101), "sub_service_code", "at most 100 characters"),
    (
        Form(caller=RESIDENT, subject_id="1000000008"),
        "sub_service_code",
        "not open to a resident account",
    ),
    (
        Form(caller=ESTABLISHMENT, subject_id="1000000008"),
        "sub_service_code",
        "establishment account",
    ),
    # description
    (Form(description="d" * 4001), "description", "at most 4000 characters"),
    (Form(description="The site is not working, please help urgently!"), "description", "general"),
    (Form(description="help me"), "description", "too short"),
    (Form(description=DESCRIPTION + "\x07"), "description", "control characters"),
    (Form(description=DESCRIPTION + "\x00"), "description", "control characters"),
    (Form(description="\u202e" + DESCRIPTION), "description", "text-direction"),
    # subject_id
    (Form(caller=ESTABLISHMENT, sub_service_code=INQUIRY, fields={}), "subject_id", "required"),
    (Form(subject_id="12345"), "subject_id", "10 digits"),
    (Form(subject_id="5000000001"), "subject_id", "10 digits"),
    (Form(subject_id="10000000O8"), "subject_id", "10 digits"),
    (Form(subject_id="1" * 21), "subject_id", "at most 20 characters"),
    # every field type, through real sub-services
    (Form(fields=passport(national_id="")), "fields.national_id", "required"),
    (Form(fields=passport(national_id="1000000007")), "fields.national_id", "check digit"),
    (Form(fields=passport(national_id="2000000006")), "fields.national_id", "start with 1"),
    (Form(fields=passport(request_type="replace")), "fields.request_type", "not one of"),
    (Form(fields=passport(problem="")), "fields.problem", "required"),
    (Form(fields=passport(passport_number="AB12")), "fields.passport_number", "6 to 9"),
    (Form(fields=passport(passport_number="ABCDEFG")), "fields.passport_number", "one digit"),
    (
        Form(sub_service_code="visas.cancel-visa", fields={**CANCEL_VISA, "iqama_number": "1"}),
        "fields.iqama_number",
        "10 digits",
    ),
    (
        Form(
            sub_service_code="visas.cancel-visa",
            fields={**CANCEL_VISA, "iqama_number": "1000000008"},
        ),
        "fields.iqama_number",
        "start with 2",
    ),
    (
        Form(
            sub_service_code="visas.cancel-visa",
            subject_id="2000000006",
            fields={**CANCEL_VISA, "visa_number": "123"},
        ),
        "fields.visa_number",
        "10 digits",
    ),
    (
        Form(
            sub_service_code="residents.iqama-issue-renewal",
            fields={**IQAMA, "border_number": "5000000000"},
        ),
        "fields.border_number",
        "start with 3 or 4",
    ),
    (
        Form(
            caller=RESIDENT,
            sub_service_code="residents.transfer-of-services",
            fields={**TRANSFER, "new_employer_number": "2000000006"},
        ),
        "fields.new_employer_number",
        "start with 7",
    ),
    (
        Form(sub_service_code="passports.lost-passport-report", fields={**LOST, "loss_date": ""}),
        "fields.loss_date",
        "required",
    ),
    (
        Form(
            sub_service_code="passports.lost-passport-report",
            fields={**LOST, "loss_date": "2026-01-05"},
        ),
        "fields.loss_date",
        "future",
    ),
    (
        Form(
            sub_service_code="passports.lost-passport-report",
            fields={**LOST, "loss_date": "2025-02-29"},
        ),
        "fields.loss_date",
        "not a valid date",
    ),
    (
        Form(
            sub_service_code="passports.lost-passport-report",
            fields={**LOST, "loss_date": "01/12/2025"},
        ),
        "fields.loss_date",
        "YYYY-MM-DD",
    ),
    (
        Form(
            sub_service_code="passports.lost-passport-report",
            fields={**LOST, "loss_date": "1899-12-31"},
        ),
        "fields.loss_date",
        "1900-01-01",
    ),
    (
        Form(
            caller=RESIDENT,
            sub_service_code="residents.profession-change",
            fields={**PROFESSION, "current_profession": "c" * 101},
        ),
        "fields.current_profession",
        "at most 100 characters",
    ),
    (
        Form(
            caller=RESIDENT,
            sub_service_code="residents.profession-change",
            fields={**PROFESSION, "new_profession": "Cook\x1b[2J"},
        ),
        "fields.new_profession",
        "control characters",
    ),
    (
        Form(
            sub_service_code="corrections.name-or-birth-date",
            fields={**CORRECTION, "id_number": "3000000129"},
        ),
        "fields.id_number",
        "start with 1 or 2",
    ),
    (
        Form(
            caller=RESIDENT,
            sub_service_code="corrections.passport-data-update",
            fields={**PASSPORT_DATA, "nationality": "XXX"},
        ),
        "fields.nationality",
        "not a known country code",
    ),
    (
        Form(
            caller=RESIDENT,
            sub_service_code="corrections.passport-data-update",
            fields={**PASSPORT_DATA, "nationality": "Egypt"},
        ),
        "fields.nationality",
        "three-letter",
    ),
    # field names, counts and sizes
    (Form(fields=passport(colour="red")), "fields.colour", "not a field of this sub-service"),
    (Form(fields=passport(Colour="red")), "fields", "lower-case letters"),
    (Form(fields=passport(national_id="1" * 1001)), "fields.national_id", "at most 200"),
    (
        Form(sub_service_code=INQUIRY, fields={f"f{i}": "x" for i in range(MAX_FIELDS + 1)}),
        "fields",
        f"at most {MAX_FIELDS} fields",
    ),
    # document_ids
    (
        Form(document_ids=[str(uuid.uuid4()) for _ in range(MAX_DOCUMENTS + 1)]),
        "document_ids",
        f"at most {MAX_DOCUMENTS} documents",
    ),
    (Form(document_ids=["not-a-uuid"]), "document_ids[0]", "not a document id"),
    (Form(document_ids=[str(uuid.uuid4()), ""]), "document_ids[1]", "not a document id"),
    # contact
    (Form(mobile=""), "contact.mobile", "Saudi mobile"),
    (Form(mobile="0112345678"), "contact.mobile", "Saudi mobile"),
    (Form(mobile="+971501234567"), "contact.mobile", "Saudi mobile"),
    (Form(mobile="055123456"), "contact.mobile", "Saudi mobile"),
    (Form(mobile="0" * 33), "contact.mobile", "at most 32 characters"),
    (Form(email="no-at-sign.example.com"), "contact.email", "not an e-mail address"),
    (Form(email="a b@example.com"), "contact.email", "not an e-mail address"),
    (Form(email="a" * 250 + "@x.sa"), "contact.email", "at most 254 characters"),
    (Form(locale="fr"), "contact.locale", "'ar' or 'en'"),
    (Form(locale="english!!"), "contact.locale", "at most 8 characters"),
    # cites_request_number
    (Form(cites_number="TW" + "1" * 19), "cites_request_number", "at most 20 characters"),
    (Form(cites_number="TW123"), "cites_request_number", "not a request number"),
    (Form(cites_number=NUMBER[:-1]), "cites_request_number", "not a request number"),
    (Form(cites_number=WRONG_CHECK), "cites_request_number", "not a request number"),
    (Form(cites_number="request 1"), "cites_request_number", "not a request number"),
    # the account itself
    (Form(caller=Principal("1000000007", Role.CITIZEN)), "applicant_id", "check digit"),
    (
        Form(caller=Principal("1000000016", Role.RESIDENT), sub_service_code=INQUIRY, fields={}),
        "applicant_id",
        "start with 2 or 3 or 4",
    ),
    (
        Form(caller=Principal("2000000017", Role.RESIDENT), sub_service_code=INQUIRY, fields={}),
        "applicant_id",
        "check digit",
    ),
]


def test_a_visitor_files_from_the_account_of_their_border_number() -> None:
    """A visitor has no iqama, only a border number, which carries no check digit."""
    submission = validate(
        caller=Principal("3000000129", Role.RESIDENT), sub_service_code=INQUIRY, fields={}
    )
    assert (submission.applicant_id, submission.subject_id) == ("3000000129", "3000000129")


@pytest.mark.parametrize(
    ("form", "field", "problem"),
    [pytest.param(*case, id=f"{case[1]}:{case[2]}") for case in REJECTED],
)
def test_each_rule_reports_its_field(form: Form, field: str, problem: str) -> None:
    found = violations(**form)
    assert set(found) == {field}
    assert problem in found[field]


def test_every_bad_field_is_reported_at_once() -> None:
    found = violations(
        idempotency_key=" ",
        description="site broken",
        subject_id="12",
        fields=passport(national_id="1000000007", colour="red"),
        document_ids=["nope"],
        mobile="12",
        email="x",
        locale="fr",
    )
    assert set(found) == {
        "idempotency_key",
        "description",
        "subject_id",
        "fields.national_id",
        "fields.colour",
        "document_ids[0]",
        "contact.mobile",
        "contact.email",
        "contact.locale",
    }


def test_an_unknown_sub_service_skips_the_field_checks() -> None:
    assert violations(sub_service_code="passports.nope", fields={"anything": "x"}) == {
        "sub_service_code": "not a sub-service of the catalog"
    }


def test_reviewers_do_not_submit_requests() -> None:
    with pytest.raises(PermissionDenied):
        validate(caller=Principal("E1001", Role.REVIEWER, frozenset({"passports"})))


# Each input carries the needle; the problem must say what is wrong without repeating it.
ECHO: list[tuple[Form, str]] = [
    (Form(idempotency_key=MARK * 6), MARK),
    (Form(sub_service_code=f"passports.{MARK}"), MARK),
    (Form(sub_service_code=MARK * 6), MARK),
    (Form(description=MARK * 201), MARK),
    (Form(description=f"{MARK}\x07 photo missing after paying the renewal fee"), MARK),
    (Form(description=f"{MARK} {MARK} {MARK} {MARK}"), MARK),
    (Form(subject_id=MARK), MARK),
    (Form(subject_id=MARK * 2), MARK),
    (Form(caller=ESTABLISHMENT, sub_service_code=INQUIRY, subject_id=MARK, fields={}), MARK),
    (Form(fields=passport(national_id=MARK)), MARK),
    (Form(fields=passport(request_type=MARK)), MARK),
    (Form(fields=passport(passport_number=MARK)), MARK),
    (Form(fields=passport(national_id=MARK * 60)), MARK),
    (
        Form(sub_service_code="passports.lost-passport-report", fields={**LOST, "loss_date": MARK}),
        MARK,
    ),
    (
        Form(
            caller=RESIDENT,
            sub_service_code="corrections.passport-data-update",
            fields={**PASSPORT_DATA, "nationality": MARK},
        ),
        MARK,
    ),
    (
        Form(
            caller=RESIDENT,
            sub_service_code="residents.profession-change",
            fields={**PROFESSION, "new_profession": MARK * 6},
        ),
        MARK,
    ),
    (Form(document_ids=[MARK]), MARK),
    (Form(document_ids=[MARK] * 11), MARK),
    (Form(mobile=MARK), MARK),
    (Form(mobile=MARK * 2), MARK),
    (Form(email=MARK), MARK),
    (Form(email=MARK * 13), MARK),
    (Form(locale=MARK[:8]), MARK[:8]),
    (Form(locale=MARK), MARK),
    (Form(cites_number=MARK * 2), MARK),
    (Form(cites_number=MARK), MARK),
]


@pytest.mark.parametrize(("form", "needle"), ECHO)
def test_problems_never_echo_the_input(form: Form, needle: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate(**form)
    assert caught.value.violations
    assert needle not in str(caught.value)
    for field, problem in caught.value.violations.items():
        assert needle not in field
        assert needle not in problem


# --- what is accepted, and how it is normalized -------------------------------------------


def test_a_valid_request_is_normalized() -> None:
    document = uuid.uuid4()
    submission = validate(
        idempotency_key="  key-1  ",
        description="  The photo   does not appear\r\nwhen renewing passport A123  ",
        fields=passport(
            national_id=" 1000000008 ",
            passport_number=" a1234567 ",
        ),
        document_ids=[str(document).upper()],
        mobile="055 123 4567",
        email="  someone@example.sa ",
        locale="en",
        cites_number=f" {NUMBER[:6].lower()} {NUMBER[6:]} ",
    )
    assert submission == Submission(
        applicant_id="1000000008",
        applicant_role=Role.CITIZEN,
        subject_id="1000000008",
        idempotency_key="key-1",
        sub_service_code=PASSPORT,
        description="The photo does not appear\nwhen renewing passport A123",
        fields={
            "national_id": "1000000008",
            "request_type": "renewal",
            "problem": "other",
            "passport_number": "A1234567",
        },
        document_ids=(document,),
        contact=submission.contact,
        cites_number=NUMBER,
    )
    assert submission.contact.mobile == "+966551234567"
    assert submission.contact.email == "someone@example.sa"
    assert submission.contact.locale is Locale.EN


@pytest.mark.parametrize(
    "mobile",
    [
        "0551234567",
        "551234567",
        "+966551234567",
        "00966551234567",
        "+966 55 123 4567",
        "055-123-4567",
    ],
)
def test_saudi_mobiles_in_any_usual_form(mobile: str) -> None:
    assert validate(mobile=mobile).contact.mobile == "+966551234567"


@pytest.mark.parametrize(
    ("name", "typed"),
    [
        ("contact.mobile", {"mobile": "٠٥٥١٢٣٤٥٦٧"}),
        ("contact.mobile", {"mobile": "+٩٦٦٥٥١٢٣٤٥٦٧"}),
        ("contact.mobile", {"mobile": "۰۵۵۱۲۳۴۵۶۷"}),
        ("subject_id", {"subject_id": " ١٠١٢٣٤٥٦٧٢ "}),
        ("cites_request_number", {"cites_number": NUMBER.translate(ARABIC_INDIC)}),
        ("fields.national_id", {"fields": passport(national_id="١٠٠٠٠٠٠٠٠٨")}),
        # One foreign digit among ASCII ones is as wrong as all of them.
        ("fields.national_id", {"fields": passport(national_id="100000000٨")}),
    ],
)
def test_other_scripts_digits_are_refused_by_name(name: str, typed: Form) -> None:
    assert violations(**typed) == {name: FOREIGN_DIGITS}


def test_a_field_name_must_be_a_name_to_its_end() -> None:
    # `$` would have matched before the newline; a path must not carry it either.
    assert violations(fields={**PASSPORT_FIELDS, "problem\n": "other"}) == {
        "fields": "field names are lower-case letters, digits and '_'"
    }


def test_defaults_the_subject_to_the_account_and_the_locale_to_arabic() -> None:
    submission = validate()
    assert submission.subject_id == CITIZEN.subject
    assert submission.contact.locale is Locale.AR
    assert submission.cites_number is None
    assert submission.contact.email == ""


def test_a_subject_is_trimmed() -> None:
    submission = validate(subject_id=" 1012345672 ", fields=passport(national_id="1012345672"))
    assert submission.subject_id == "1012345672"


def test_blank_optional_fields_are_left_out() -> None:
    submission = validate(fields=passport(passport_number="   "))
    assert "passport_number" not in submission.fields
    assert set(submission.fields) == {"national_id", "request_type", "problem"}


def test_a_field_of_only_invisible_characters_is_blank() -> None:
    """Zero-width characters and direction marks show nothing: a required text of them is
    missing, an optional one left out, as blanks are."""
    blank = "\u200b\u200f\ufeff"
    assert "passport_number" not in validate(fields=passport(passport_number=blank)).fields
    assert violations(
        caller=RESIDENT,
        sub_service_code="residents.profession-change",
        fields={**PROFESSION, "new_profession": blank},
    ) == {"fields.new_profession": "required"}


def test_an_establishment_files_for_a_worker() -> None:
    submission = validate(
        caller=ESTABLISHMENT, sub_service_code=INQUIRY, subject_id="2023456789", fields={}
    )
    assert (submission.applicant_id, submission.subject_id) == ("7000000005", "2023456789")
    assert submission.applicant_role is Role.ESTABLISHMENT


@pytest.mark.parametrize(
    ("kind", "value", "normalized"),
    [
        ("national_id", " 1000000008", "1000000008"),
        ("iqama_number", " 2000000006 ", "2000000006"),
        ("id_number", "2000000006", "2000000006"),
        ("border_number", "3000000129", "3000000129"),
        ("visa_number", "0123456789", "0123456789"),
        ("passport_number", "a1234567", "A1234567"),
        ("establishment_number", "7000000005", "7000000005"),
        ("date", "2025-12-31", "2025-12-31"),
        ("text", "  Ahmed   Mahmoud ", "Ahmed Mahmoud"),
        ("choice", "both", "both"),
        ("nationality", "egy", "EGY"),
    ],
)
def test_every_field_type_normalizes_a_good_value(kind: str, value: str, normalized: str) -> None:
    """One real sub-service and caller per field type; the value lands normalized."""
    forms: dict[str, tuple[Form, str]] = {
        "national_id": (Form(fields=passport(national_id=value)), "national_id"),
        "iqama_number": (
            Form(
                sub_service_code="visas.cancel-visa",
                subject_id=value,
                fields={**CANCEL_VISA, kind: value},
            ),
            kind,
        ),
        "id_number": (
            Form(
                sub_service_code="corrections.name-or-birth-date",
                subject_id=value,
                fields={**CORRECTION, kind: value},
            ),
            kind,
        ),
        "border_number": (
            Form(
                sub_service_code="residents.iqama-issue-renewal",
                subject_id=value,
                fields={**IQAMA, kind: value},
            ),
            kind,
        ),
        "visa_number": (
            Form(
                sub_service_code="visas.cancel-visa",
                subject_id="2000000006",
                fields={**CANCEL_VISA, kind: value},
            ),
            kind,
        ),
        "passport_number": (Form(fields=passport(passport_number=value)), kind),
        "establishment_number": (
            Form(
                caller=RESIDENT,
                sub_service_code="residents.transfer-of-services",
                fields={**TRANSFER, "new_employer_number": value},
            ),
            "new_employer_number",
        ),
        "date": (
            Form(
                sub_service_code="passports.lost-passport-report",
                fields={**LOST, "loss_date": value},
            ),
            "loss_date",
        ),
        "text": (
            Form(
                sub_service_code="corrections.name-or-birth-date",
                fields={**CORRECTION, "correct_name_en": value},
            ),
            "correct_name_en",
        ),
        "choice": (
            Form(
                sub_service_code="corrections.name-or-birth-date",
                fields={**CORRECTION, "correction": value},
            ),
            "correction",
        ),
        "nationality": (
            Form(
                caller=RESIDENT,
                sub_service_code="corrections.passport-data-update",
                fields={**PASSPORT_DATA, kind: value},
            ),
            kind,
        ),
    }
    form, name = forms[kind]
    spec = next(
        spec
        for spec in CATALOG.sub_services[form.get("sub_service_code", PASSPORT)].fields
        if spec.name == name
    )
    assert spec.type.value == kind
    assert validate(**form).fields[name] == normalized


def test_the_field_type_table_covers_every_catalog_field_type() -> None:
    used = {spec.type.value for s in CATALOG.sub_services.values() for spec in s.fields}
    assert used == {
        "national_id",
        "iqama_number",
        "id_number",
        "border_number",
        "visa_number",
        "passport_number",
        "establishment_number",
        "date",
        "text",
        "choice",
        "nationality",
    }


@pytest.mark.parametrize(
    "typed",
    [
        NUMBER,
        NUMBER.lower(),
        NUMBER[2:],
        f"TW-{NUMBER[2:6]}-{NUMBER[6:]}",
        f" {NUMBER} ",
    ],
)
def test_a_cited_number_is_stored_canonical(typed: str) -> None:
    assert validate(cites_number=typed).cites_number == NUMBER


def test_the_future_is_measured_from_today_passed_in() -> None:
    """past_only compares with `today`, not with the machine's clock."""
    fields = {**LOST, "loss_date": "2026-01-04"}
    submission = validate(sub_service_code="passports.lost-passport-report", fields=fields)
    assert submission.fields["loss_date"] == "2026-01-04"


# --- inputs that once slipped through ------------------------------------------------------


def test_a_document_id_with_trailing_garbage_is_refused() -> None:
    assert violations(document_ids=[f"{uuid.uuid4()}{MARK}"]) == {
        "document_ids[0]": "not a document id"
    }


def test_an_idempotency_key_with_control_characters_is_refused() -> None:
    assert "idempotency_key" in violations(idempotency_key="key\x00-1")


def test_an_email_with_control_characters_is_refused() -> None:
    assert "contact.email" in violations(email="someone@example.sa\x00")


@pytest.mark.parametrize(
    "email",
    [
        "postmaster,someone@example.sa",  # two recipients: a local mailbox, and someone
        "anyone:someone@example.sa",  # a group: mail goes to someone@, not what was stored
        "anyone<someone@example.sa",  # a display name: the same
        "someone;x@example.sa",
        "(note)someone@example.sa",
        '"someone"@example.sa',
        "someone>@example.sa",
        "some\\one@example.sa",
        "[someone]@example.sa",
        ".someone@example.sa",
        "some..one@example.sa",
    ],
)
def test_an_email_is_one_plain_mailbox(email: str) -> None:
    """What an SMTP client would read as other recipients than the one stored is refused."""
    assert violations(email=email) == {"contact.email": "not an e-mail address"}


@pytest.mark.parametrize(
    "email", ["someone@example.sa", "some.one+tawasul@mail.example.sa", "o'neil_x-1@x.sa"]
)
def test_plain_mailboxes_are_taken(email: str) -> None:
    assert validate(email=email).contact.email == email


def test_a_subject_with_non_ascii_digits_is_refused() -> None:
    assert "subject_id" in violations(subject_id="100000000\u00b2")


def test_a_subject_with_a_wrong_check_digit_is_refused() -> None:
    assert violations(subject_id="1000000007") == {"subject_id": "check digit does not match"}


def test_an_establishments_overlong_subject_is_reported_as_too_long() -> None:
    found = violations(
        caller=ESTABLISHMENT, sub_service_code=INQUIRY, subject_id="2" * 21, fields={}
    )
    assert found == {"subject_id": "at most 20 characters"}


# --- an ID field names the person the request is about (SPEC §2) ----------------------------

NOT_THE_SUBJECT = "must be the ID number of the person the request is about"
ABSENCE = "reports.absence-report"
ABSENCE_FIELDS = {"absence_date": "2025-12-20", "worker_type": "domestic_worker"}
# Someone else's worker: the citizen has no relation to them.
STRANGER_IQAMA = "2000000006"
OWN_DRIVER = "2045678907"


def test_an_iqama_field_naming_a_stranger_is_refused_though_the_subject_is_the_caller() -> None:
    found = violations(
        sub_service_code=ABSENCE, fields={**ABSENCE_FIELDS, "iqama_number": STRANGER_IQAMA}
    )
    assert set(found) == {"fields.iqama_number"}
    assert NOT_THE_SUBJECT in found["fields.iqama_number"]


def test_an_id_field_must_be_the_subject_the_request_names() -> None:
    found = violations(
        sub_service_code=ABSENCE,
        subject_id=OWN_DRIVER,
        fields={**ABSENCE_FIELDS, "iqama_number": STRANGER_IQAMA},
    )
    assert set(found) == {"fields.iqama_number"}
    assert NOT_THE_SUBJECT in found["fields.iqama_number"]
    assert STRANGER_IQAMA not in str(found)
    assert OWN_DRIVER not in str(found)


def test_a_national_id_field_naming_another_citizen_is_refused() -> None:
    found = violations(fields=passport(national_id="1000000016"))
    assert set(found) == {"fields.national_id"}
    assert NOT_THE_SUBJECT in found["fields.national_id"]


def test_a_dependent_is_the_subject_their_id_field_names() -> None:
    fields = {
        "request_type": "add_dependent",
        "dependent_id_number": "1023456781",
        "dependent_name": "Abdullah",
        "dependent_date_of_birth": "2015-03-01",
        "relationship": "son",
    }
    code = "residents.dependents-services"
    assert set(violations(sub_service_code=code, fields=fields)) == {"fields.dependent_id_number"}
    submission = validate(sub_service_code=code, subject_id="1023456781", fields=fields)
    assert submission.fields["dependent_id_number"] == submission.subject_id == "1023456781"


def test_an_id_field_equal_to_the_subject_is_taken_after_normalizing() -> None:
    submission = validate(
        sub_service_code=ABSENCE,
        subject_id=f" {OWN_DRIVER} ",
        fields={**ABSENCE_FIELDS, "iqama_number": f"{OWN_DRIVER} "},
    )
    assert submission.fields["iqama_number"] == submission.subject_id == OWN_DRIVER


def test_an_optional_id_field_left_empty_names_no_one() -> None:
    submission = validate(
        sub_service_code="residents.iqama-issue-renewal",
        subject_id="3000000129",
        fields={**IQAMA, "border_number": "3000000129"},
    )
    assert "iqama_number" not in submission.fields


def test_a_bad_subject_is_reported_once_not_again_on_the_field() -> None:
    assert violations(subject_id="1000000007", fields=passport(national_id="1000000016")) == {
        "subject_id": "check digit does not match"
    }


def answer(subject_id: str, **fields: str) -> Answer:
    return validate_answer(
        sub_service=CATALOG.sub_services[ABSENCE],
        subject_id=subject_id,
        filed=ABSENCE_FIELDS,
        today=TODAY,
        message="",
        fields=fields,
        document_ids=[],
    )


def test_an_answer_s_id_field_must_name_the_request_s_subject() -> None:
    with pytest.raises(InvalidArgument) as caught:
        answer(OWN_DRIVER, iqama_number=STRANGER_IQAMA)
    assert set(caught.value.violations) == {"fields.iqama_number"}
    assert NOT_THE_SUBJECT in caught.value.violations["fields.iqama_number"]
    assert answer(OWN_DRIVER, iqama_number=OWN_DRIVER).fields == {"iqama_number": OWN_DRIVER}


NAME_OR_BIRTH = "corrections.name-or-birth-date"
IQAMA_RENEWAL = "residents.iqama-issue-renewal"
NAMES = {"correct_name_ar": "محمد عبدالله", "correct_name_en": "Mohammed Abdullah"}


def arabic(message: str) -> str:
    assert isinstance(message, Bilingual)
    return message.ar


@pytest.mark.parametrize(
    ("correction", "missing"),
    [
        ("name", {"correct_name_ar", "correct_name_en"}),
        ("date_of_birth", {"correct_date_of_birth"}),
        ("both", {"correct_name_ar", "correct_name_en", "correct_date_of_birth"}),
    ],
)
def test_a_correction_needs_the_correct_entry(correction: str, missing: set[str]) -> None:
    fields = {"id_number": "1000000008", "correction": correction}
    found = violations(sub_service_code=NAME_OR_BIRTH, fields=fields)
    assert set(found) == {f"fields.{name}" for name in missing}
    chosen = {"name": "Name", "date_of_birth": "Date of birth"}.get(correction)
    said = found[min(found)]
    assert said == f'required when "What to correct" is "{chosen or "Name and date of birth"}"'
    assert arabic(said).startswith("مطلوب عند اختيار «")
    assert "«البيان المطلوب تصحيحه»" in arabic(said)
    # The entry the option does not need may stay empty.
    given = {name: CORRECTION[name] for name in missing}
    assert set(validate(sub_service_code=NAME_OR_BIRTH, fields={**fields, **given}).fields) == {
        "id_number",
        "correction",
        *missing,
    }


def test_an_iqama_renewal_needs_the_iqama_and_a_first_issue_the_border_number() -> None:
    renewal = {"request_type": "renewal", "passport_number": "A1234567"}
    found = violations(sub_service_code=IQAMA_RENEWAL, subject_id=OWN_DRIVER, fields=renewal)
    assert found == {"fields.iqama_number": 'required when "Request type" is "Renewal"'}
    assert arabic(found["fields.iqama_number"]) == "مطلوب عند اختيار «تجديد» في «نوع الطلب»"
    found = violations(sub_service_code=IQAMA_RENEWAL, fields=IQAMA)
    assert found == {"fields.border_number": 'required when "Request type" is "First issue"'}
    renewed = validate(
        sub_service_code=IQAMA_RENEWAL,
        subject_id=OWN_DRIVER,
        fields={**renewal, "iqama_number": OWN_DRIVER},
    )
    assert "border_number" not in renewed.fields


def correction_answer(filed: Mapping[str, str], **fields: str) -> Answer:
    return validate_answer(
        sub_service=CATALOG.sub_services[NAME_OR_BIRTH],
        subject_id="1000000008",
        filed=filed,
        today=TODAY,
        message="",
        fields=fields,
        document_ids=[],
    )


def test_an_answer_that_chooses_an_option_brings_what_it_needs() -> None:
    filed = {"id_number": "1000000008", "correction": "name", **NAMES}
    with pytest.raises(InvalidArgument) as caught:
        correction_answer(filed, correction="both")
    assert caught.value.violations == {
        "fields.correct_date_of_birth": 'required when "What to correct" is'
        ' "Name and date of birth"'
    }
    answer = correction_answer(filed, correction="both", correct_date_of_birth="1990-05-01")
    assert answer.fields == {"correction": "both", "correct_date_of_birth": "1990-05-01"}
    # What the request holds already counts: the names need not be typed again.
    assert correction_answer(filed, correct_name_en="Muhammad Abdullah").fields == {
        "correct_name_en": "Muhammad Abdullah"
    }


def test_an_answer_may_not_blank_what_the_chosen_option_needs() -> None:
    filed = {"id_number": "1000000008", "correction": "name", **NAMES}
    with pytest.raises(InvalidArgument) as caught:
        correction_answer(filed, correct_name_ar="  ")
    assert set(caught.value.violations) == {"fields.correct_name_ar"}
    assert "required" in caught.value.violations["fields.correct_name_ar"]


def test_a_first_iqamas_border_number_is_the_workers_the_request_is_about() -> None:
    """An establishment files a first iqama for worker A: B's border number is refused."""
    fields = {**IQAMA, "border_number": "3000000129"}
    found = violations(
        caller=ESTABLISHMENT, sub_service_code=IQAMA_RENEWAL, subject_id="3000000137", fields=fields
    )
    assert set(found) == {"fields.border_number"}
    assert NOT_THE_SUBJECT in found["fields.border_number"]
    submission = validate(
        caller=ESTABLISHMENT, sub_service_code=IQAMA_RENEWAL, subject_id="3000000129", fields=fields
    )
    assert submission.fields["border_number"] == submission.subject_id == "3000000129"


def test_a_hijri_date_of_loss_is_refused_as_not_gregorian() -> None:
    found = violations(
        sub_service_code="passports.lost-passport-report",
        fields={**LOST, "loss_date": "1446-06-10"},
    )
    assert found == {
        "fields.loss_date": "must be a Gregorian date (YYYY-MM-DD); Hijri dates are not taken"
    }


def test_the_correct_names_are_each_in_their_own_script() -> None:
    swapped = {
        **CORRECTION,
        "correct_name_ar": "Mohammed Abdullah",
        "correct_name_en": "محمد عبدالله القحطاني",
    }
    found = violations(sub_service_code=NAME_OR_BIRTH, fields=swapped)
    assert set(found) == {"fields.correct_name_ar", "fields.correct_name_en"}
    assert "Arabic letters" in found["fields.correct_name_ar"]
    assert "Latin letters" in found["fields.correct_name_en"]
    assert "الحروف العربية" in arabic(found["fields.correct_name_ar"])
    fields = {**CORRECTION, "correct_name_ar": "مُحَمَّد عبدالله القحطـاني"}
    taken = validate(sub_service_code=NAME_OR_BIRTH, fields=fields).fields
    assert taken["correct_name_ar"] == "مُحَمَّد عبدالله القحطـاني"


def passport_answer(**fields: str) -> Answer:
    return validate_answer(
        sub_service=CATALOG.sub_services[PASSPORT],
        subject_id="1000000008",
        filed=PASSPORT_FIELDS,
        today=TODAY,
        message="Here is the passport number you asked for",
        fields=fields,
        document_ids=[],
    )


def test_a_blank_optional_field_in_an_answer_is_left_out_as_in_a_submission() -> None:
    """A form sends its empty inputs too: the passport number left blank is no answer."""
    answer = passport_answer(passport_number="  ", problem="photo_not_shown")
    assert answer.fields == {"problem": "photo_not_shown"}
    assert passport_answer(passport_number="\u200b").fields == {}


def test_an_answer_may_not_blank_a_required_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        passport_answer(problem=" ", passport_number="A1234567")
    assert caught.value.violations == {"fields.problem": "required"}


def test_an_answer_may_blank_what_the_option_it_chooses_no_longer_needs() -> None:
    filed = {"id_number": "1000000008", "correction": "name", **NAMES}
    answer = correction_answer(
        filed, correction="date_of_birth", correct_date_of_birth="1990-05-01", correct_name_ar=""
    )
    assert answer.fields == {"correction": "date_of_birth", "correct_date_of_birth": "1990-05-01"}
