"""Development only: the stand-in for the national single sign-on, and the sample people.

It signs end users' tokens as the development users' provider does (the stack's
`<state>/identity/users.key.pem`, ES256, the key id its JWKS publishes), with the claims intake
and docs verify: issuer, their audiences, subject, role, channel, a lifetime. It reads the
development registry as a file: the gateway imports no service.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# As the development users' provider (tawasul_devstack.identity) signs them.
USERS_ISSUER = "https://sso.tawasul.dev/users"
AUDIENCES = ("tawasul-intake", "tawasul-docs", "tawasul-notify")
# Who signs in as what: the registry's kinds, and establishments (numbers starting 7, the
# holders of sponsored workers).
ROLE_OF_KIND = {"citizen": "citizen", "resident": "resident", "visitor": "resident"}
CHANNEL_OF_ROLE = {"citizen": "web", "resident": "web", "establishment": "establishment-portal"}


class UnknownPerson(LookupError):
    pass


@dataclass(frozen=True)
class Person:
    id: str
    kind: str
    name_ar: str
    name_en: str
    # Whom they may file for besides themselves: (id, relation) pairs.
    relations: tuple[tuple[str, str], ...] = ()

    @property
    def role(self) -> str:
        return ROLE_OF_KIND.get(self.kind, self.kind)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "role": self.role,
            "name_ar": self.name_ar,
            "name_en": self.name_en,
            "relations": [{"id": i, "kind": k} for i, k in self.relations],
        }


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


class DevRegistry:
    """The development registry's people and establishments, from its JSON file."""

    def __init__(self, path: Path) -> None:
        raw: dict[str, Any] = json.loads(path.read_text("utf-8"))
        relations: dict[str, list[tuple[str, str]]] = {}
        for relation in raw.get("relations", []):
            relations.setdefault(relation["holder"], []).append(
                (relation["person"], relation["kind"])
            )
        people = [
            Person(
                id=p["id"],
                kind=p["kind"],
                name_ar=p["name_ar"],
                name_en=p["name_en"],
                relations=tuple(relations.get(p["id"], ())),
            )
            for p in raw.get("people", [])
        ]
        known = {p.id for p in people}
        establishments = [
            Person(
                id=holder,
                kind="establishment",
                name_ar=f"منشأة {holder}",
                name_en=f"Establishment {holder}",
                relations=tuple(held),
            )
            for holder, held in sorted(relations.items())
            if holder not in known and holder.startswith("7")
        ]
        self.people = [*people, *establishments]
        self._by_id = {p.id: p for p in self.people}
        self._synthetic = str(raw.get("synthetic_citizens", {}).get("prefix", ""))

    def find(self, id_number: str) -> Person:
        """A sample person or establishment, or one of the registry's synthetic citizens (any
        valid national ID under its prefix)."""
        if id_number in self._by_id:
            return self._by_id[id_number]
        if (
            self._synthetic
            and id_number.startswith(self._synthetic)
            and len(id_number) == 10
            and id_number.isascii()
            and id_number.isdigit()
            and _luhn(id_number)
        ):
            return Person(id_number, "citizen", "مواطن تجريبي", "Test citizen")
        raise UnknownPerson(id_number)


class DevTokenIssuer:
    """Signs end users' tokens with the development users' key."""

    def __init__(self, identity_dir: Path, *, ttl_seconds: int = 3600) -> None:
        loaded = serialization.load_pem_private_key(
            (identity_dir / "users.key.pem").read_bytes(), password=None
        )
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{identity_dir}/users.key.pem is not an EC private key")
        self._key = loaded
        self._kid = self._published_kid(identity_dir / "users.jwks.json")
        self._ttl = ttl_seconds

    def _published_kid(self, jwks_file: Path) -> str:
        """The id under which the provider's JWKS publishes this key's public half."""
        mine = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        for key in json.loads(jwks_file.read_text())["keys"]:
            if (key.get("x"), key.get("y")) == (mine["x"], mine["y"]):
                return str(key["kid"])
        raise ValueError(f"{jwks_file} does not publish the key of users.key.pem")

    def issue(self, person: Person, *, now: float | None = None) -> tuple[str, float]:
        """A token for `person` and when it expires (seconds since the epoch)."""
        issued = int(time.time() if now is None else now)
        expires = issued + self._ttl
        claims = {
            "iss": USERS_ISSUER,
            "aud": list(AUDIENCES),
            "sub": person.id,
            "role": person.role,
            "channel": CHANNEL_OF_ROLE.get(person.role, "web"),
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "jti": str(uuid.uuid4()),
        }
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self._kid})
        return token, float(expires)
