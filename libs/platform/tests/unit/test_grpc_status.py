import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from tawasul_platform import errors
from tawasul_platform.catalog import load_catalog
from tawasul_platform.grpc import existing_resource, field_violations, status_details, to_status
from tawasul_platform.i18n import Bilingual


def test_invalid_argument_carries_every_field_violation() -> None:
    status = to_status(errors.InvalidArgument({"description": "too short", "contact.mobile": "x"}))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    rich = status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"])
    bad = error_details_pb2.BadRequest()
    assert rich.details[0].Unpack(bad)
    assert {v.field: v.description for v in bad.field_violations} == {
        "description": "too short",
        "contact.mobile": "x",
    }


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExists("x", existing="TW2600000001"), grpc.StatusCode.ALREADY_EXISTS),
        (errors.FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.PermissionDenied("x"), grpc.StatusCode.PERMISSION_DENIED),
        (errors.Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED),
        (errors.ResourceExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.Unavailable("x"), grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_each_domain_error_has_its_own_code(
    error: errors.DomainError, code: grpc.StatusCode
) -> None:
    assert to_status(error).code == code


def test_catalog_departments_cover_every_sub_service() -> None:
    catalog = load_catalog()
    assert catalog.sub_services["passports.issue-renewal-problem"].department == "passports"
    assert {s.department for s in catalog.sub_services.values()} == set(catalog.departments)


def _rich(status: grpc.Status) -> status_pb2.Status:
    return status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"])


def _violations(status: grpc.Status) -> list[error_details_pb2.BadRequest.FieldViolation]:
    bad = error_details_pb2.BadRequest()
    assert _rich(status).details[0].Unpack(bad)
    return list(bad.field_violations)


def test_field_messages_in_arabic_when_the_caller_asks_and_english_stays_the_description() -> None:
    error = errors.InvalidArgument(
        {"description": Bilingual("too short", "قصير جدًا"), "page_token": "not a token"}
    )
    by_field = {v.field: v for v in _violations(to_status(error, "ar"))}
    assert by_field["description"].description == "too short"
    assert by_field["description"].localized_message.locale == "ar"
    assert by_field["description"].localized_message.message == "قصير جدًا"
    # No Arabic written for it: no localized message, the client shows the description.
    assert not by_field["page_token"].HasField("localized_message")


def test_english_asked_is_the_description_and_nothing_asked_is_arabic() -> None:
    """Arabic is the default (SPEC §2): a caller who names no language gets it too."""
    error = errors.InvalidArgument({"description": Bilingual("too short", "قصير جدًا")})
    (english,) = _violations(to_status(error, "en"))
    assert (english.localized_message.locale, english.localized_message.message) == (
        "en",
        "too short",
    )
    (plain,) = _violations(to_status(error))
    assert (plain.description, plain.localized_message.locale) == ("too short", "ar")
    assert plain.localized_message.message == "قصير جدًا"


def test_an_errors_own_message_in_arabic_as_a_localized_message_detail() -> None:
    error = errors.FailedPrecondition(Bilingual("the request is closed", "الطلب مغلق"))
    rich = _rich(to_status(error, "ar"))
    said = error_details_pb2.LocalizedMessage()
    assert rich.message == "the request is closed"
    assert [d.Unpack(said) for d in rich.details] == [True]
    assert (said.locale, said.message) == ("ar", "الطلب مغلق")
    assert not _rich(to_status(errors.FailedPrecondition("closed"), "ar")).details


def test_a_status_trailer_that_is_not_a_status_reads_as_none() -> None:
    """A corrupt grpc-status-details-bin (a proxy's, a broken server's) must not make the
    client that reads it fail: the code and message still say what happened."""
    garbage = grpc.aio.AioRpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(("grpc-status-details-bin", b"\xff\xff\xff")),
        details="bad",
    )
    assert status_details(garbage) is None
    assert field_violations(garbage) == {}
    assert existing_resource(garbage) == ""
