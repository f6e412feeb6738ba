"""The gateway's parts without a network: error mapping, CSV rows and their keys, the rate
limiter, and the stand-in sign-in's tokens."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import date
from pathlib import Path

import grpc
import pytest
from tawasul.intake.v1 import intake_pb2
from tawasul_devstack.identity import DevIdentity
from tawasul_devstack.journey import new_citizen
from tawasul_gateway import bulk
from tawasul_gateway.adapters.dev_identity import DevRegistry, DevTokenIssuer, UnknownPerson
from tawasul_gateway.adapters.ratelimit import RateLimiter, retry_after
from tawasul_gateway.entrypoints.errors import ApiError, parse_error_fields
from tawasul_gateway.entrypoints.http import parse_message
from tawasul_platform.i18n import in_locale
from tawasul_platform.identity import IssuerKind, Role, TokenVerifier
from tawasul_sdk import TawasulError

REGISTRY = (
    Path(__file__).resolve().parents[3] / "intake/src/tawasul_intake/adapters/registry.dev.json"
)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.FAILED_PRECONDITION, 409),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.INTERNAL, 502),
        (grpc.StatusCode.UNKNOWN, 502),
    ],
)
def test_each_grpc_status_has_its_http_status(code: grpc.StatusCode, status: int) -> None:
    error = ApiError.of(
        TawasulError(code, "why", fields={"description": "too short"}, from_service=True)
    )
    assert error.status == status
    assert error.body() == {
        "error": {"code": code.name, "message": "why", "fields": {"description": "too short"}}
    }


def test_a_service_past_its_limit_of_calls_is_503_not_the_users_429() -> None:
    """gRPC's own refusal past intake's or docs' limit of calls in flight is no quota of the
    user's: the service is busy, retry shortly; its text stays behind the gateway."""
    busy = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="Concurrent RPC limit exceeded!",
    )
    error = ApiError.of(TawasulError.from_rpc_error(busy))
    assert (error.status, error.headers) == (503, {"Retry-After": "1"})
    assert error.body()["error"]["code"] == "UNAVAILABLE"
    assert "Concurrent" not in error.message


def test_a_call_no_service_answered_is_told_without_grpc_s_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """gRPC's own text names the backends' addresses, in English only: the channels get a
    message in the caller's language, the operators the text in the log."""
    down = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="failed to connect to all addresses; last error: UNKNOWN: ipv4:10.0.3.7:50051",
    )
    with caplog.at_level(logging.WARNING):
        error = ApiError.of(TawasulError.from_rpc_error(down, "ar"))
    assert (error.status, error.headers, error.code) == (503, {"Retry-After": "1"}, "UNAVAILABLE")
    assert error.message == "الخدمة غير متاحة؛ أعد المحاولة بعد قليل"
    assert "10.0.3.7" in caplog.text


def test_grpc_s_own_resource_exhausted_is_no_quota_of_the_caller() -> None:
    """A message past gRPC's size limits is RESOURCE_EXHAUSTED without a service's status: no
    429 (retry later), for a retry would be refused the same."""
    too_large = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="received metadata size exceeds soft limit (13959 vs. 8192)",
    )
    error = ApiError.of(TawasulError.from_rpc_error(too_large))
    assert (error.status, error.headers) == (502, {})
    assert "metadata" not in error.message


def test_already_exists_names_the_existing_request() -> None:
    error = ApiError.of(
        TawasulError(grpc.StatusCode.ALREADY_EXISTS, "open", existing="TW123456789")
    )
    assert error.body()["error"]["existing"] == "TW123456789"
    assert ApiError.of(TawasulError(grpc.StatusCode.UNAVAILABLE, "x")).headers == {
        "Retry-After": "1"
    }


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        (
            "Failed to parse document_ids field: repeated field document_ids must be in [] "
            "which is x at SubmitRequestRequest.",
            {
                "document_ids": "repeated field document_ids must be in [] which is x at "
                "SubmitRequestRequest."
            },
        ),
        (
            'Message type "tawasul.intake.v1.SubmitRequestRequest" has no field named "foo" '
            'at "SubmitRequestRequest".\n Available Fields(except extensions): "[...]"',
            {"foo": "no such field"},
        ),
    ],
)
def test_json_errors_name_their_field(message: str, fields: dict[str, str]) -> None:
    assert parse_error_fields(message) == fields


def test_a_field_value_that_is_not_text_is_named_by_its_field() -> None:
    """protobuf's parser names only the map of a value that is not a string."""
    body = b'{"fields": {"iqama_number": 2034567897, "visa_number": "6012345678"}}'
    with pytest.raises(ApiError) as caught:
        parse_message(body, intake_pb2.SubmitRequestRequest())
    assert caught.value.fields == {"fields.iqama_number": "must be text, in quotes"}


def test_nested_json_errors_give_the_path() -> None:
    found = parse_error_fields(
        "Failed to parse contact field: Failed to parse mobile field: expected string."
    )
    assert list(found) == ["contact.mobile"]


CSV = (
    "subject_id,sub_service_code,description,mobile,field.iqama_number,document_ids\n"
    "2034567897,reports.general-inquiry,Our worker's iqama renewal shows error 17,0551234567,"
    "2034567897,d1;d2\n"
    "\n"
    "2056789015,visas.cancel-visa,Cancel the exit visa issued in error last week,0551234568,,\n"
)


def test_a_csv_file_gives_its_rows() -> None:
    rows = bulk.parse(CSV.encode(), max_rows=10)
    assert len(rows) == 2
    first, second = rows
    assert isinstance(first, bulk.Row)
    assert isinstance(second, bulk.Row)
    assert (first.number, first.subject_id, first.fields, first.document_ids) == (
        1,
        "2034567897",
        {"iqama_number": "2034567897"},
        ("d1", "d2"),
    )
    # Numbered as the file shows it: the blank row between them counts.
    assert (second.number, second.fields, second.document_ids) == (3, {}, ())
    assert first.document_columns == ("document_ids", "document_ids")


def test_a_row_of_the_wrong_shape_is_refused_alone() -> None:
    rows = bulk.parse((CSV + "1,2\n").encode(), max_rows=10)
    assert isinstance(rows[2], bulk.BadRow)
    assert rows[2].number == 4
    assert "cells" in rows[2].fields["row"]


HEADER = "subject_id,sub_service_code,description,mobile\n"


def test_a_quote_left_open_refuses_its_row_instead_of_filing_the_rows_it_swallowed() -> None:
    """Excel writes a cell's line breaks inside quotes; a stray quote reads the rows after it
    into one cell, up to the next quote, and would file them as one worker's description."""
    data = (
        HEADER
        + '2034567897,reports.general-inquiry,"The renewal fails with error 17,0551234567\n'
        + "2056789015,visas.cancel-visa,Cancel the exit visa issued in error,0551234568\n"
        + '2045678903,reports.general-inquiry,Mark this "urgent" please,0551234569\n'
        + "2067890124,visas.cancel-visa,Cancel the visa issued to the wrong worker,0551234560\n"
    )
    rows = bulk.parse(data.encode(), max_rows=10)
    assert [(type(r).__name__, r.number) for r in rows] == [("BadRow", 1), ("Row", 4)]
    refused = rows[0]
    assert isinstance(refused, bulk.BadRow)
    assert refused.fields["row"].startswith(
        'a quote (") opened in this row closes only further down, so row(s) 2, 3 were read'
    )
    # A cell's own line breaks, quoted as Excel writes them, are a cell's, not rows: even a
    # line of it with as many commas as the header has.
    described = "Renewal fails.\nDetails: name, iqama, passport, visa, all checked"
    multiline = HEADER + f'2034567897,reports.general-inquiry,"{described}",0551234567\n'
    (row,) = bulk.parse(multiline.encode(), max_rows=10)
    assert isinstance(row, bulk.Row)
    assert row.description == described


def test_rows_after_a_multi_line_cell_are_numbered_as_a_spreadsheet_shows_them() -> None:
    """A cell's line breaks, quoted as Excel writes them, stay within one row of the
    spreadsheet: the rows after it, and what an open quote further down swallows, are
    numbered by row, not by line of the file."""
    data = (
        HEADER
        + '2034567897,reports.general-inquiry,"The renewal fails\nwith error 17",0551234567\n'
        + "\n"
        + "2056789015,visas.cancel-visa,Cancel the exit visa issued in error,0551234568\n"
        + '2045678903,reports.general-inquiry,"Mark this urgent,0551234569\n'
        + "2067890124,visas.cancel-visa,Cancel the visa issued to the wrong worker,0551234560\n"
        + '2078901235,visas.cancel-visa,Cancel the second visa,0551234561"\n'
    )
    rows = bulk.parse(data.encode(), max_rows=10)
    assert [(type(r).__name__, r.number) for r in rows] == [
        ("Row", 1),
        ("Row", 3),
        ("BadRow", 4),
    ]
    refused = rows[2]
    assert isinstance(refused, bulk.BadRow)
    assert "so row(s) 5, 6 were read" in refused.fields["row"]
    # A row that cannot be read at all is named by its row too.
    unreadable = data.rsplit("2045678903", 1)[0] + "2045678903,x," + "y" * 200_000 + ",1\n"
    with pytest.raises(bulk.BadFile) as caught:
        bulk.parse(unreadable.encode(), max_rows=10)
    assert list(caught.value.fields) == ["rows[4]"]


@pytest.mark.parametrize(
    "subjects",
    [
        # Arabic-Indic digits, as an Arabic keyboard types them (intake refuses them, naming
        # the row's subject_id).
        ("٢٠٥٦٧٨٩٠١٥", "٢٠٤٥٦٧٨٩٠٣"),
        # IDs a digit short: rows still, by their sub-service codes.
        ("205678901", "204567890"),
    ],
)
def test_a_quote_left_open_refuses_its_row_whatever_ids_the_rows_it_swallowed_have(
    subjects: tuple[str, str],
) -> None:
    """Not taken for rows, the lines swallowed were filed inside the first row's description,
    the last one's mobile as the first row's (messages to another worker's number), and the
    rows were missing from the answer."""
    second, third = subjects
    data = (
        HEADER
        + '2034567897,reports.general-inquiry,"The renewal fails with error 17,0551234567\n'
        + f"{second},visas.cancel-visa,Cancel the exit visa issued in error,0551234568\n"
        + f'{third},reports.general-inquiry,Mark this "urgent" please,0551234569\n'
    )
    (refused,) = bulk.parse(data.encode(), max_rows=10)
    assert isinstance(refused, bulk.BadRow)
    assert (refused.number, "so row(s) 2, 3 were read" in refused.fields["row"]) == (1, True)


def test_a_row_repeated_in_the_file_is_filed_once() -> None:
    row = "2034567897,reports.general-inquiry,The renewal fails with error 17,0551234567\n"
    rows = bulk.parse((HEADER + row + "\n" + row).encode(), max_rows=10)
    assert [(type(r).__name__, r.number) for r in rows] == [("Row", 1), ("BadRow", 3)]
    repeated = rows[1]
    assert isinstance(repeated, bulk.BadRow)
    assert repeated.fields["row"] == "the same as row 1, which files it once"


def test_intake_s_field_names_map_back_to_the_file_s_columns() -> None:
    data = (
        "subject_id,sub_service_code,description,mobile,field.iqama_number,document_ids,"
        "document.passport_copy\n"
        "2034567897,reports.general-inquiry,The renewal fails,0551234567,2034567897,d1,d2\n"
    )
    (row,) = bulk.parse(data.encode(), max_rows=10)
    assert isinstance(row, bulk.Row)
    assert [
        row.column(name)
        for name in (
            "contact.mobile",
            "fields.iqama_number",
            "document_ids[0]",
            "document_ids[1]",
            "document_ids",
            "description",
        )
    ] == [
        "mobile",
        "field.iqama_number",
        "document_ids",
        "document.passport_copy",
        "document_ids",
        "description",
    ]


def test_a_row_may_name_the_rejected_request_it_corrects() -> None:
    """SPEC §2: a rejected request is not reopened, a new one linked to it brings the
    corrections; intake refuses a number that is not such a request, and its refusal names
    the column."""
    data = (
        HEADER.strip() + ",cites_request_number\n"
        "2034567897,reports.general-inquiry,The renewal fails with error 17,0551234567,"
        " TW000000018 \n"
        "2056789015,visas.cancel-visa,Cancel the exit visa issued in error,0551234568,\n"
    )
    correcting, plain = bulk.parse(data.encode(), max_rows=10)
    assert isinstance(correcting, bulk.Row)
    assert isinstance(plain, bulk.Row)
    assert (correcting.cites_request_number, plain.cites_request_number) == ("TW000000018", "")
    assert correcting.column("cites_request_number") == "cites_request_number"
    # The link is part of what the row asks: the same row citing another request (or none)
    # is another request; a row citing none keeps the key it had without the column.
    today = date(2026, 12, 7)
    uncited = dataclasses.replace(correcting, cites_request_number="")
    recited = dataclasses.replace(correcting, cites_request_number="TW000000026")
    keys = {r.idempotency_key("7000000013", today) for r in (correcting, uncited, recited)}
    assert len(keys) == 3
    (without,) = bulk.parse(
        (
            HEADER
            + "2056789015,visas.cancel-visa,Cancel the exit visa issued in error,0551234568\n"
        ).encode(),
        max_rows=10,
    )
    assert isinstance(without, bulk.Row)
    assert without.idempotency_key("7000000013", today) == plain.idempotency_key(
        "7000000013", today
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"subject_id,description\n1,2\n", "header"),
        (b"subject_id,sub_service_code,description,mobile,colour\n1,2,3,4,5\n", "header.colour"),
        (b"subject_id,sub_service_code,description,mobile\n", "file"),
        (b"\xff\xfe", "file"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused(data: bytes, field: str) -> None:
    with pytest.raises(bulk.BadFile) as caught:
        bulk.parse(data, max_rows=10)
    assert field in caught.value.fields


def test_too_many_rows_are_refused() -> None:
    with pytest.raises(bulk.BadFile) as caught:
        bulk.parse(CSV.encode(), max_rows=1)
    refused = caught.value.fields["file"]
    assert (refused, in_locale(refused, "ar")) == (
        "at most 1 row a file",
        "صف واحد على الأكثر في الملف",
    )


ARABIC_ROW = "2034567897,reports.general-inquiry,تجديد الإقامة يفشل برسالة الخطأ 17,0551234567\n"


def test_a_file_excel_saved_in_arabic_windows_encoding_is_told_how_to_save_it() -> None:
    """Excel's plain "CSV (Comma delimited)" on Arabic Windows writes Windows-1256: the file
    is refused (a guess at its encoding could store IDs and names wrong), saying how to save
    it as UTF-8, in the caller's language."""
    with pytest.raises(bulk.BadFile) as caught:
        bulk.parse((HEADER + ARABIC_ROW).encode("cp1256"), max_rows=10)
    refused = caught.value.fields["file"]
    assert refused.startswith(f"not UTF-8 text (byte {len(HEADER) + ARABIC_ROW.index('ت')})")
    assert 'Save As, and as the type "CSV UTF-8 (Comma delimited)"' in refused
    ar = in_locale(refused, "ar")
    assert ar is not None
    assert "«حفظ باسم»" in ar
    assert "CSV UTF-8" in ar


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_a_file_excel_saved_as_unicode_text_is_told_how_to_save_it(encoding: str) -> None:
    """Excel's "Unicode Text" is UTF-16 (a BOM first), its cells separated by tabs: it was
    told "not UTF-8 text (byte 0)", which someone who chose "Unicode" does not read as their
    file's encoding; the refusal names what the file is, then how to save it as CSV UTF-8."""
    text = (HEADER + ARABIC_ROW).replace(",", "\t")
    with pytest.raises(bulk.BadFile) as caught:
        bulk.parse(("\ufeff" + text).encode(encoding), max_rows=10)
    refused = caught.value.fields["file"]
    assert refused == (
        'UTF-16 text, as Excel\'s "Unicode Text" saves it, not UTF-8: in Excel, save the file '
        'again with File, Save As, and as the type "CSV UTF-8 (Comma delimited)"'
    )
    assert in_locale(refused, "ar") == (
        "نص بترميز UTF-16 كما يحفظه Excel بنوع «نص Unicode»، لا UTF-8: في Excel احفظ الملف من "
        "جديد من «ملف» ثم «حفظ باسم»، واختر نوع الملف الذي يبدأ بـ CSV UTF-8"
    )


SEMICOLONS = (
    "subject_id;sub_service_code;description;mobile;document_ids\n"
    '2034567897;reports.general-inquiry;"Renewal fails; error 17, twice";0551234567;"d1;d2"\n'
    "2056789015;visas.cancel-visa;Cancel the visa, issued in error;0551234568;\n"
)


def test_a_file_separated_by_semicolons_is_read_by_its_header() -> None:
    """Excel in a locale whose decimal separator is a comma separates cells with ';'. A header
    with no comma cannot be a comma-separated one: split on ';' into the columns, it decides;
    a ';' inside a quoted cell stays the cell's, a comma unquoted is the cell's too."""
    first, second = bulk.parse(SEMICOLONS.encode(), max_rows=10)
    assert isinstance(first, bulk.Row)
    assert isinstance(second, bulk.Row)
    assert (first.description, first.document_ids) == (
        "Renewal fails; error 17, twice",
        ("d1", "d2"),
    )
    assert (second.number, second.description, second.document_ids) == (
        2,
        "Cancel the visa, issued in error",
        (),
    )
    # What an open quote swallowed is told by the file's own separator.
    left_open = (
        SEMICOLONS.replace('twice";0551234567;"d1;d2"', "twice;0551234567;d1")
        + '2045678903;visas.cancel-visa;Mark this "urgent";0551234569;\n'
    )
    (refused,) = bulk.parse(left_open.encode(), max_rows=10)
    assert isinstance(refused, bulk.BadRow)
    assert "so row(s) 2, 3 were read" in refused.fields["row"]
    # A header with a comma is comma-separated, its ';' a column name's.
    with pytest.raises(bulk.BadFile) as caught:
        bulk.parse(b"subject_id,sub_service_code;description,mobile\n1,2,3\n", max_rows=10)
    assert "header.sub_service_code;description" in caught.value.fields


def test_empty_columns_after_the_header_s_last_are_nothing_while_empty() -> None:
    """Some exports end every line with a comma: the header's last column, unnamed, is
    nothing while no row has a value in it; a value there is refused, naming the column."""
    data = (
        HEADER.replace("\n", ",,\n")
        + "2034567897,reports.general-inquiry,The renewal fails with error 17,0551234567,,\n"
        + "2056789015,visas.cancel-visa,Cancel the exit visa issued in error,0551234568,, \n"
        + "2045678903,visas.cancel-visa,Cancel the second visa issued in error,0551234569\n"
        + "2067890124,visas.cancel-visa,Cancel the visa issued to the wrong worker,0551234560,,x\n"
        + "2078901235,visas.cancel-visa,Cancel the visa issued to the other worker,0551234561,y,x\n"
    )
    rows = bulk.parse(data.encode(), max_rows=10)
    assert [(type(r).__name__, r.number) for r in rows] == [
        ("Row", 1),
        ("Row", 2),
        ("Row", 3),
        ("BadRow", 4),
        ("BadRow", 5),
    ]
    refused, both = rows[3:]
    assert isinstance(refused, bulk.BadRow)
    assert refused.fields["row"] == (
        "a value in column 6 (F), which the header leaves unnamed: name the column or empty it"
    )
    assert in_locale(refused.fields["row"], "ar") == (
        "قيمة في العمود 6 (F) ولا اسم له في صف العناوين: سمِّ العمود أو أفرغه"
    )
    assert isinstance(both, bulk.BadRow)
    assert both.fields["row"].startswith("values in columns 5 (E), 6 (F), which the header")
    # An unnamed column before a named one is still refused.
    with pytest.raises(bulk.BadFile) as caught:
        bulk.parse(b"subject_id,,sub_service_code,description,mobile\n1,,2,3,4\n", max_rows=10)
    assert "header.(empty)" in caught.value.fields


def test_a_column_the_header_leaves_unnamed_between_named_ones_is_named_by_its_place() -> None:
    """It was refused as an unknown column, not saying which (and two as a column repeated,
    naming none): the refusal gives each one's number and spreadsheet letter."""
    with pytest.raises(bulk.BadFile) as caught:
        bulk.parse(b"subject_id,, sub_service_code,description,mobile\n1,,2,3,4\n", max_rows=10)
    one = caught.value.fields
    assert list(one) == ["header.(empty)"]
    assert one["header.(empty)"] == (
        "column 2 (B) has no name: name it (a sub-service's field as field.<name>) or delete it"
    )
    assert in_locale(one["header.(empty)"], "ar") == (
        "العمود 2 (B) بلا اسم: سمِّه (حقل الخدمة الفرعية باسم field.<name>) أو احذفه"
    )
    with pytest.raises(bulk.BadFile) as caught:
        bulk.parse(b"subject_id,,sub_service_code,,description,mobile\n", max_rows=10)
    two = caught.value.fields
    assert list(two) == ["header.(empty)"]
    assert two["header.(empty)"] == (
        "columns 2 (B), 4 (D) have no name: name them (a sub-service's field as field.<name>) "
        "or delete them"
    )
    assert in_locale(two["header.(empty)"], "ar") == (
        "الأعمدة 2 (B)، 4 (D) بلا أسماء: سمِّها (حقل الخدمة الفرعية باسم field.<name>) أو احذفها"
    )


def test_empty_cells_a_row_ends_with_past_the_header_are_nothing() -> None:
    """Excel ends a row with a comma for a column once filled then cleared, which the header's
    line may lack: the row was refused as "5 cells where the header has 4 columns". Empty,
    such cells are nothing, as the header's own unnamed last columns are; a value is refused."""
    data = (
        HEADER
        + "2034567897,reports.general-inquiry,The renewal fails with error 17,0551234567,\n"
        + "2056789015,visas.cancel-visa,Cancel the exit visa issued in error,0551234568,, \n"
        + "2067890124,visas.cancel-visa,Cancel the visa issued to the wrong worker,0551234560,,x\n"
        + '2045678903,reports.general-inquiry,"Mark this urgent,0551234569,\n'
        + "2078901235,visas.cancel-visa,Cancel the visa issued to the other worker,0551234561,\n"
        + '2089012346,visas.cancel-visa,Cancel the second visa",0551234562\n'
    )
    rows = bulk.parse(data.encode(), max_rows=10)
    assert [(type(r).__name__, r.number) for r in rows] == [
        ("Row", 1),
        ("Row", 2),
        ("BadRow", 3),
        ("BadRow", 4),
    ]
    first, second, valued, left_open = rows
    assert isinstance(first, bulk.Row)
    assert isinstance(second, bulk.Row)
    assert (first.mobile, second.mobile) == ("0551234567", "0551234568")
    assert isinstance(valued, bulk.BadRow)
    assert valued.fields["row"] == (
        "a value in column 6 (F), which the header leaves unnamed: name the column or empty it"
    )
    # A line so ended, read into an open quote, is a row of its own still.
    assert isinstance(left_open, bulk.BadRow)
    assert "so row(s) 5, 6 were read" in left_open.fields["row"]


def test_every_byte_order_mark_before_the_header_is_dropped() -> None:
    """A file saved twice with a BOM starts with two: the second was read into the first
    column's name, refused as an unknown column."""
    data = "\ufeff\ufeff" + HEADER + ARABIC_ROW
    (row,) = bulk.parse(data.encode(), max_rows=10)
    assert isinstance(row, bulk.Row)
    assert row.subject_id == "2034567897"


def test_a_rows_key_depends_on_its_content_establishment_and_day_only() -> None:
    (first, second) = bulk.parse(CSV.encode(), max_rows=10)
    assert isinstance(first, bulk.Row)
    assert isinstance(second, bulk.Row)
    today = date(2026, 12, 7)
    key = first.idempotency_key("7000000013", today)
    assert uuid.UUID(key).version == 5
    # The same row in another place of another file, the same day: the same key.
    header, row_one, _, row_two = CSV.strip().split("\n")
    moved = bulk.parse(f"{header}\n{row_two}\n{row_one}\n".encode(), max_rows=10)[1]
    assert isinstance(moved, bulk.Row)
    assert moved.number == 2
    assert moved.idempotency_key("7000000013", today) == key
    assert first.idempotency_key("7000000005", today) != key
    assert second.idempotency_key("7000000013", today) != key
    # Filed again on another day, it is a new request (intake refuses it while one is open).
    assert first.idempotency_key("7000000013", date(2027, 12, 7)) != key


def test_the_rate_limiter_allows_a_burst_then_paces() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0])
    assert limiter.take("a") == 0
    assert limiter.take("a") == 0
    wait = limiter.take("a")
    assert wait == pytest.approx(1.0)
    assert retry_after(wait) == "1"
    assert limiter.take("b") == 0  # each key its own bucket
    now[0] += 1.0
    assert limiter.take("a") == 0
    assert limiter.take("a") > 0


def test_the_rate_limiter_forgets_the_oldest_keys() -> None:
    limiter = RateLimiter(rate=0.001, burst=1, max_keys=2, clock=lambda: 0.0)
    for key in ("a", "b", "c"):
        assert limiter.take(key) == 0
    assert limiter.take("a") == 0  # forgotten: a full bucket again
    assert limiter.take("c") > 0


def test_the_registry_lists_people_and_establishments() -> None:
    registry = DevRegistry(REGISTRY)
    by_id = {p.id: p for p in registry.people}
    assert by_id["1000000008"].role == "citizen"
    assert by_id["2000000006"].role == "resident"
    assert by_id["3000000129"].role == "resident"  # a visitor, with a border number
    establishment = by_id["7000000005"]
    assert (establishment.role, establishment.relations) == (
        "establishment",
        (("2000000006", "sponsored_worker"), ("2023456789", "sponsored_worker")),
    )
    synthetic = new_citizen()
    assert (registry.find(synthetic).id, registry.find(synthetic).role) == (synthetic, "citizen")
    with pytest.raises(UnknownPerson):
        registry.find("1234")


async def test_signed_tokens_are_what_intake_and_docs_verify(tmp_path: Path) -> None:
    provider = DevIdentity(tmp_path)
    issuer = DevTokenIssuer(tmp_path, ttl_seconds=600)
    registry = DevRegistry(REGISTRY)
    for audience in ("tawasul-intake", "tawasul-docs"):
        verifier = TokenVerifier(
            provider.issuers(), audience=audience, max_lifetime_seconds=12 * 3600
        )
        verifier.load()
        token, _ = issuer.issue(registry.find("7000000005"))
        principal = verifier.verify(token)
        assert (principal.subject, principal.role, principal.channel) == (
            "7000000005",
            Role.ESTABLISHMENT,
            "establishment-portal",
        )
        citizen = verifier.verify(issuer.issue(registry.find("1000000008"))[0])
        assert (citizen.role, citizen.channel) == (Role.CITIZEN, "web")
    assert provider.jwks_file(IssuerKind.USERS).is_file()


def test_a_number_excel_showed_in_scientific_notation_is_refused_on_its_column() -> None:
    """Excel shows (and saves) a mobile typed in its international form, 966551234567, as
    9.66551E+11 in a General column: intake refused it as not a Saudi mobile, which gives
    no hint that Excel lost its digits. A description may say such a thing on purpose."""
    data = (
        "subject_id,sub_service_code,description,mobile,field.border_number\n"
        "2034567897,reports.general-inquiry,The renewal fails with error 17,9.66551E+11,\n"
        "2.05679E+9,visas.cancel-visa,Cancel the visa issued in error,0551234568,3E+9\n"
        "2067890124,reports.general-inquiry,Error 2E+3 on renewal,0551234560,\n"
    )
    mobile, two, described = bulk.parse(data.encode(), max_rows=10)
    assert isinstance(mobile, bulk.BadRow)
    assert mobile.fields == {
        "mobile": (
            "9.66551E+11 is how Excel shows a long number, its last digits lost: format the "
            "column as Text, type the number again, and save the file again"
        )
    }
    assert in_locale(mobile.fields["mobile"], "ar") == (
        "9.66551E+11 هو ما يعرضه Excel لرقم طويل وقد ضاعت آخر أرقامه: اجعل تنسيق العمود «نص» "
        "واكتب الرقم من جديد ثم احفظ الملف مرة أخرى"
    )
    assert isinstance(two, bulk.BadRow)
    assert sorted(two.fields) == ["field.border_number", "subject_id"]
    assert str(two.fields["subject_id"]).startswith("2.05679E+9 is how Excel shows")
    assert isinstance(described, bulk.Row)
    assert described.description == "Error 2E+3 on renewal"
