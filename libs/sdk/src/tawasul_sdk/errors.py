"""Errors of Tawasul's APIs as one exception, with the details services attach.

Services answer INVALID_ARGUMENT with a google.rpc.BadRequest (one violation per field) and
ALREADY_EXISTS with a google.rpc.ResourceInfo (the open request's number), packed in the
`grpc-status-details-bin` trailer, with each message in the client's `locale` (Arabic unless
it is English) as a google.rpc.LocalizedMessage. The SDK reads them with its own copies of
those messages (in a private descriptor pool), so that it needs protobuf only, not
googleapis-common-protos.

A call no service answered (a connection refused, a deadline, a message past gRPC's size
limits) has gRPC's own text, which names addresses and internals: it is kept for operators'
logs (`detail`), and the caller is told what happened in its language. So are the SDK's own
refusals (a token it cannot send, a call out of time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

_DETAILS_TRAILER = "grpc-status-details-bin"


def _rpc_messages() -> dict[str, type[Message]]:
    """google.rpc.Status, BadRequest (with FieldViolation), ResourceInfo and LocalizedMessage:
    the fields the SDK reads, with the numbers of googleapis' google/rpc/*.proto."""
    T = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="tawasul_sdk/google_rpc_subset.proto", package="google.rpc", syntax="proto3"
    )
    file.dependency.append("google/protobuf/any.proto")

    def add(name: str, *fields: tuple[str, int, Any, Any, str]) -> descriptor_pb2.DescriptorProto:
        message = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
        return message

    one, many = T.LABEL_OPTIONAL, T.LABEL_REPEATED
    add(
        "Status",
        ("code", 1, T.TYPE_INT32, one, ""),
        ("message", 2, T.TYPE_STRING, one, ""),
        ("details", 3, T.TYPE_MESSAGE, many, ".google.protobuf.Any"),
    )
    bad = add(
        "BadRequest",
        ("field_violations", 1, T.TYPE_MESSAGE, many, ".google.rpc.BadRequest.FieldViolation"),
    )
    violation = bad.nested_type.add(name="FieldViolation")
    for field_name, number in (("field", 1), ("description", 2)):
        violation.field.add(name=field_name, number=number, type=T.TYPE_STRING, label=one)
    violation.field.add(
        name="localized_message",
        number=4,
        type=T.TYPE_MESSAGE,
        label=one,
        type_name=".google.rpc.LocalizedMessage",
    )
    add(
        "LocalizedMessage",
        ("locale", 1, T.TYPE_STRING, one, ""),
        ("message", 2, T.TYPE_STRING, one, ""),
    )
    add(
        "ResourceInfo",
        ("resource_type", 1, T.TYPE_STRING, one, ""),
        ("resource_name", 2, T.TYPE_STRING, one, ""),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(file.SerializeToString())
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"google.rpc.{name}"))
        for name in ("Status", "BadRequest", "ResourceInfo", "LocalizedMessage")
    }


_MESSAGES = _rpc_messages()

# A message in each language the services speak, by locale ("en" the fallback).
Said = Mapping[str, str]

BUSY: Final[Said] = {
    "en": "the service is busy; try again shortly",
    "ar": "الخدمة مشغولة؛ أعد المحاولة بعد قليل",
}
TIMED_OUT: Final[Said] = {
    "en": "the service did not answer in time",
    "ar": "لم تُجب الخدمة في الوقت المحدد",
}
OUT_OF_TIME: Final[Said] = {
    "en": "the call's timeout ran out",
    "ar": "انتهت مهلة الطلب",
}
NO_TOKEN: Final[Said] = {
    "en": "the token provider gave no token within the call's timeout",
    "ar": "لم يُعطِ مزوّد الرمز رمزًا خلال مهلة الطلب",
}
NOT_BEARER: Final[Said] = {
    "en": "the token is not a bearer token: letters, digits and - . _ ~ + / = only",
    "ar": "الرمز ليس رمز Bearer: أحرف لاتينية وأرقام و - . _ ~ + / = فقط",
}
# What gRPC's own ending of a call (no service's status) tells the caller, by its code.
_NO_ANSWER: Final[Mapping[grpc.StatusCode, Said]] = {
    grpc.StatusCode.UNAVAILABLE: {
        "en": "the service is unavailable; try again shortly",
        "ar": "الخدمة غير متاحة؛ أعد المحاولة بعد قليل",
    },
    grpc.StatusCode.DEADLINE_EXCEEDED: TIMED_OUT,
    grpc.StatusCode.CANCELLED: {
        "en": "the call was cancelled before the service answered",
        "ar": "أُلغي الطلب قبل أن تُجيب الخدمة",
    },
    grpc.StatusCode.RESOURCE_EXHAUSTED: {
        "en": "the call or its answer is larger than the service takes",
        "ar": "الطلب أو إجابته أكبر مما تقبله الخدمة",
    },
    grpc.StatusCode.UNAUTHENTICATED: {
        "en": "the sign-in was not accepted; sign in again",
        "ar": "لم يُقبل تسجيل الدخول؛ سجّل الدخول مجددًا",
    },
}
_FAILED: Final[Said] = {
    "en": "the service could not answer the call",
    "ar": "تعذّر على الخدمة إجابة الطلب",
}


# The services' language for a call that names none (Arabic, Tawasul's default): the SDK's own
# messages follow it, so that one refusal is not told half in each language.
DEFAULT_LOCALE: Final = "ar"


def said(message: Said, locale: str | None) -> str:
    """`message` in `locale`: English when asked for, Arabic otherwise, as the services do."""
    return message.get(locale or "", message[DEFAULT_LOCALE])


# What gRPC's server answers a call past its limit of calls in flight (maximum_concurrent_rpcs),
# and Tawasul's services (tawasul_platform.grpc, which holds that limit itself) in its words.
CONCURRENT_RPC_LIMIT = "Concurrent RPC limit exceeded!"


def too_busy_to_start(error: grpc.aio.AioRpcError) -> bool:
    """gRPC's own refusal of a server past its limit of calls in flight, not a service's
    refusal of the caller (those carry its status): the call never ran, and is not the
    caller's quota. gRPC answers RESOURCE_EXHAUSTED for a message past a size limit too,
    which is no such thing: a request too large never gets through, and a reply too large
    comes from a call the server has run."""
    return (
        error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        and not _has_status(error)
        and error.details() == CONCURRENT_RPC_LIMIT
    )


def _has_status(error: grpc.aio.AioRpcError) -> bool:
    """Whether a Tawasul service answered with its status (every refusal of theirs has one)."""
    return any(key == _DETAILS_TRAILER for key, _ in error.trailing_metadata() or ())


def _details(error: grpc.aio.AioRpcError) -> list[Any]:
    for key, value in error.trailing_metadata() or ():
        if key == _DETAILS_TRAILER and isinstance(value, bytes):
            try:
                status = _MESSAGES["Status"].FromString(value)
            except DecodeError:
                return []
            return list(getattr(status, "details"))  # noqa: B009 (a dynamic message class)
    return []


def _unpacked(details: list[Any], kind: str) -> list[Any]:
    cls = _MESSAGES[kind]
    found = []
    for detail in details:
        if detail.type_url.endswith(f"/google.rpc.{kind}"):
            try:
                found.append(cls.FromString(detail.value))
            except DecodeError:
                continue
    return found


class TawasulError(Exception):
    """A refusal or failure of a Tawasul API call.

    `code` is the gRPC status; `fields` maps each bad field (as the request message names it:
    "description", "fields.iqama_number", "document_ids[0]") to what is wrong with it; and
    `existing` names what already exists (ALREADY_EXISTS: the open request's number). The
    message and each field's are in the client's `locale` (Arabic, the services' default, when
    it has none) where the service has them in it, in English otherwise.

    `from_service` says whether a Tawasul service answered with its status; when none did
    (gRPC ended the call, or the SDK refused it), the message is the SDK's and `detail`
    holds gRPC's own text, for logs only: it names addresses and internals.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        fields: dict[str, str] | None = None,
        existing: str = "",
        from_service: bool = False,
        detail: str = "",
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.fields = dict(fields or {})
        self.existing = existing
        self.from_service = from_service
        self.detail = detail

    @property
    def code_name(self) -> str:
        """ "INVALID_ARGUMENT", "NOT_FOUND", ..."""
        return self.code.name

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError, locale: str | None = None) -> TawasulError:
        """The error a call ended with; one no service answered is told in `locale`."""
        if not _has_status(error):
            detail = error.details() or ""
            if too_busy_to_start(error):
                # No quota of the caller's: the server never ran the call.
                return cls(grpc.StatusCode.UNAVAILABLE, said(BUSY, locale), detail=detail)
            code = error.code()
            return cls(code, said(_NO_ANSWER.get(code, _FAILED), locale), detail=detail)
        details = _details(error)
        fields = {
            str(v.field): str(v.localized_message.message or v.description)
            for bad in _unpacked(details, "BadRequest")
            for v in bad.field_violations
        }
        existing = next(
            (str(info.resource_name) for info in _unpacked(details, "ResourceInfo")), ""
        )
        message = next(
            (str(m.message) for m in _unpacked(details, "LocalizedMessage") if m.message),
            error.details() or "",
        )
        return cls(error.code(), message, fields=fields, existing=existing, from_service=True)
