"""How refusals leave the gateway: one JSON shape, gRPC status → HTTP status.

    {"error": {"code": "INVALID_ARGUMENT", "message": "...", "fields": {"description": "..."}}}

`code` is the gRPC status name (the gateway's own refusals use the closest one, and
PAYLOAD_TOO_LARGE for a body past its limit); `fields` carries the field violations intake or
docs sent, unchanged; ALREADY_EXISTS adds `existing`, the open request's number. The message
and the fields' are in the call's language (language.py) where they have text in it: intake
and docs were asked for it, and the gateway's own are i18n.Bilingual. A call intake or docs
did not answer (down, out of time) gets the SDK's message for its code, in that language;
gRPC's own text, which names addresses, goes to the log only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import grpc
from tawasul_platform.i18n import Bilingual
from tawasul_sdk import TawasulError

from tawasul_gateway.entrypoints.language import said

log = logging.getLogger(__name__)
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}
# INTERNAL, UNKNOWN, DATA_LOSS: a bug behind the gateway.
UPSTREAM_BUG = 502


class ApiError(Exception):
    """A refusal of the gateway itself, or one of intake or docs translated."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: Mapping[str, str] | None = None,
        existing: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields or {})
        self.existing = existing
        self.headers = dict(headers or {})

    @classmethod
    def of(cls, error: TawasulError) -> ApiError:
        status = HTTP_STATUS.get(error.code, UPSTREAM_BUG)
        if error.detail:
            log.warning("%s, no service's status: %s", error.code_name, error.detail)
        if error.code is grpc.StatusCode.RESOURCE_EXHAUSTED and not error.from_service:
            # gRPC's own: a message past its size limits, no quota of the caller's that a
            # retry later would mend (the gateway's bodies and tokens fit them).
            status = UPSTREAM_BUG
        headers = {"Retry-After": "1"} if status == 503 else {}
        return cls(
            status,
            error.code_name,
            error.message,
            fields=error.fields,
            existing=error.existing,
            headers=headers,
        )

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.fields, existing=self.existing)


def error_body(
    code: str, message: str, fields: Mapping[str, str] | None = None, *, existing: str = ""
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": code,
        "message": said(message),
        "fields": {field: said(problem) for field, problem in (fields or {}).items()},
    }
    if existing:
        error["existing"] = existing
    return {"error": error}


NOT_VALID = Bilingual("the request is not valid", "البيانات المدخلة غير صالحة")


def bad_request(fields: Mapping[str, Bilingual], message: Bilingual = NOT_VALID) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message, fields=fields)


_NESTED = re.compile(r"Failed to parse (\w+) field")
_UNKNOWN = re.compile(r'has no field named "([^"]+)"')


def parse_error_fields(message: str) -> dict[str, Bilingual]:
    """The field a json_format.ParseError is about, with its path ("contact.mobile"), and what
    is wrong; "body" when it names none."""
    path = _NESTED.findall(message)
    unknown = _UNKNOWN.search(message)
    if unknown:
        path.append(unknown.group(1))
    reason = message.rsplit(": ", 1)[-1] if ": " in message else message
    said = (
        Bilingual("no such field", "لا يوجد حقل بهذا الاسم")
        if unknown
        else Bilingual(reason.split("\n", 1)[0].strip(), "قيمة غير صالحة لهذا الحقل")
    )
    return {".".join(path) if path else "body": said}
