"""Signed end-user and employee tokens passed by channels and the review client.

A token is `base64url(json claims).base64url(HMAC-SHA256)`. Channels (after Nafath/Absher
login) and the review client's identity provider hold the secret; services only verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from enum import StrEnum

from tawasul_platform.errors import Unauthenticated


class Role(StrEnum):
    CITIZEN = "citizen"
    RESIDENT = "resident"
    ESTABLISHMENT = "establishment"
    REVIEWER = "reviewer"


BENEFICIARY_ROLES = frozenset({Role.CITIZEN, Role.RESIDENT, Role.ESTABLISHMENT})


@dataclass(frozen=True)
class Principal:
    """Who is calling: national ID / iqama / establishment number, or an employee id."""

    subject: str
    role: Role
    departments: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_beneficiary(self) -> bool:
        return self.role in BENEFICIARY_ROLES


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, body: str) -> str:
    return _b64(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest())


def issue_token(
    secret: str, principal: Principal, *, ttl_seconds: int = 3600, now: float | None = None
) -> str:
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": principal.subject,
        "role": principal.role.value,
        "dept": sorted(principal.departments),
        "exp": issued + ttl_seconds,
    }
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{body}.{_sign(secret, body)}"


def verify_token(secret: str, token: str, *, now: float | None = None) -> Principal:
    body, _, signature = token.partition(".")
    if not body or not signature:
        raise Unauthenticated("malformed token")
    if not hmac.compare_digest(signature, _sign(secret, body)):
        raise Unauthenticated("bad token signature")
    try:
        claims = json.loads(_unb64(body))
        subject, role, departments, expires = (
            str(claims["sub"]),
            Role(claims["role"]),
            frozenset(str(d) for d in claims["dept"]),
            int(claims["exp"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise Unauthenticated("malformed token claims") from exc
    if expires < (time.time() if now is None else now):
        raise Unauthenticated("token expired")
    if not subject:
        raise Unauthenticated("token has no subject")
    return Principal(subject=subject, role=role, departments=departments)
