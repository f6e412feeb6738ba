"""The development stand-ins for the identity providers: Nafath/Absher for end users and the
staff directory for employees.

Each has an ES256 key pair made once in the stack's state dir; services get only the public
halves (a JWKS file per issuer). The demo, the review CLI's users and the tests get their
tokens here, as `tawasul-stack token` prints them.
"""

from __future__ import annotations

import functools
import json
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tawasul_platform.identity import Issuer, IssuerKind, Principal, Role

from tawasul_devstack.pki import keep_secret, write_whole

USERS_ISSUER = "https://sso.tawasul.dev/users"
STAFF_ISSUER = "https://staff.tawasul.dev"
# The services each kind of token is for: an end user's token reaches docs and notify through
# intake's forwarding or the channel; an employee's every service but intake.
AUDIENCES = {
    IssuerKind.USERS: ("tawasul-intake", "tawasul-docs", "tawasul-notify"),
    IssuerKind.STAFF: ("tawasul-review", "tawasul-routing", "tawasul-docs", "tawasul-notify"),
}
ISSUERS = {IssuerKind.USERS: USERS_ISSUER, IssuerKind.STAFF: STAFF_ISSUER}


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    pem = keep_secret(
        path,
        lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    loaded = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return loaded


class DevIdentity:
    """Both development providers, their keys in `directory` (made on first use)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._keys = {kind: _key(directory / f"{kind.value}.key.pem") for kind in IssuerKind}
        self._kids = {kind: self._kid(kind) for kind in IssuerKind}
        for kind in IssuerKind:
            # Whole or not at all: a service starting meanwhile reads the keys.
            write_whole(self.jwks_file(kind), json.dumps(self._jwks(kind)).encode())

    def jwks_file(self, kind: IssuerKind) -> Path:
        return self.directory / f"{kind.value}.jwks.json"

    def issuers(self) -> list[Issuer]:
        """What services are told to trust (TAWASUL_IDENTITY_ISSUERS)."""
        return [
            Issuer(issuer=ISSUERS[kind], kind=kind, jwks=str(self.jwks_file(kind)))
            for kind in IssuerKind
        ]

    def issuers_json(self) -> str:
        return json.dumps([i.model_dump(mode="json") for i in self.issuers()])

    def token(
        self,
        subject: str,
        role: Role,
        departments: Iterable[str] = (),
        *,
        channel: str = "web",
        ttl_seconds: int = 3600,
        now: float | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> str:
        """A token as the provider for `role` would sign it; `overrides` replace claims, or
        drop them when None (tests use them for wrong audiences, issuers, missing claims)."""
        kind = IssuerKind.STAFF if role is Role.REVIEWER else IssuerKind.USERS
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": ISSUERS[kind],
            "aud": list(AUDIENCES[kind]),
            "sub": subject,
            "role": role.value,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl_seconds,
            "jti": str(uuid.uuid4()),
        }
        if kind is IssuerKind.STAFF:
            claims["departments"] = sorted(departments)
        else:
            claims["channel"] = channel
        claims.update(overrides or {})
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(
            claims, self._keys[kind], algorithm="ES256", headers={"kid": self._kids[kind]}
        )

    def token_for(self, principal: Principal) -> str:
        return self.token(
            principal.subject,
            principal.role,
            principal.departments,
            channel=principal.channel or "web",
        )

    def _kid(self, kind: IssuerKind) -> str:
        public = (
            self._keys[kind]
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return f"{kind.value}-{uuid.uuid5(uuid.NAMESPACE_OID, public.hex()).hex[:12]}"

    def _jwks(self, kind: IssuerKind) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._keys[kind].public_key()))
        jwk.update(kid=self._kids[kind], alg="ES256", use="sig")
        return {"keys": [jwk]}


@functools.cache
def throwaway() -> DevIdentity:
    """Providers with keys in a temporary dir, one pair per process: for tests that run
    services in-process."""
    return DevIdentity(Path(tempfile.mkdtemp(prefix="tawasul-identity-")))
