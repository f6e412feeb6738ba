import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from tawasul_platform import errors
from tawasul_platform.catalog import load_catalog
from tawasul_platform.grpc import to_status


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
