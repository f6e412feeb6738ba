"""Who is calling: end users and employees, from the JWTs their identity providers sign.

Two issuers: one for end users (the stand-in for Nafath/Absher; the token names the channel
that asked) and one for employees (the staff directory; the token lists their departments).
Services hold the issuers' public keys only, as a JWKS per issuer from a file or a URL, so no
service can mint a token; in development tawasul_devstack.identity plays both providers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import jwt
from pydantic import BaseModel

from tawasul_platform.errors import Unauthenticated

log = logging.getLogger(__name__)


class Role(StrEnum):
    CITIZEN = "citizen"
    RESIDENT = "resident"
    ESTABLISHMENT = "establishment"
    REVIEWER = "reviewer"


BENEFICIARY_ROLES = frozenset({Role.CITIZEN, Role.RESIDENT, Role.ESTABLISHMENT})
# Each kind of account as a refusal names it to the person: "a {citizen} account".
ROLE_AR = {
    Role.CITIZEN: "مواطن",
    Role.RESIDENT: "مقيم",
    Role.ESTABLISHMENT: "منشأة",
    Role.REVIEWER: "موظف",
}


class IssuerKind(StrEnum):
    USERS = "users"
    STAFF = "staff"


# What each issuer may vouch for: the end-user provider can never make an employee.
ROLES_OF = {IssuerKind.USERS: BENEFICIARY_ROLES, IssuerKind.STAFF: frozenset({Role.REVIEWER})}
# As RequestSubmitted.channel names them (routing rules match on it).
CHANNELS = frozenset({"web", "mobile", "establishment-portal"})
# Asymmetric only: an HS256 token would let anyone holding the "public" key sign.
ALGORITHMS = frozenset({"ES256", "ES384", "RS256", "PS256", "EdDSA"})
_REQUIRED = ["iss", "aud", "sub", "exp", "nbf", "iat"]
# The background re-read waits at least this long between tries (an interval of 0 re-reads
# at every call, not in a busy loop).
_LEAST_PAUSE = 0.1
# An employee id, as review stores it as an actor or an assignee and names a reviewer's record:
# a staff token naming anything else is refused at the door, not by the first write it makes.
EMPLOYEE_ID = re.compile(r"[A-Za-z0-9_.-]{1,50}")
EMPLOYEE_ID_FORM = "1 to 50 letters, digits, '.', '_' or '-'"
# An end user's national ID, iqama or establishment number, as the services store it as an
# applicant or an owner (intake checks the kind of number against the role when it matters).
BENEFICIARY_ID = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True)
class Principal:
    """Who is calling: national ID / iqama / establishment number, or an employee id."""

    subject: str
    role: Role
    departments: frozenset[str] = field(default_factory=frozenset)
    # The channel an end user came through (web, mobile, establishment-portal); empty for
    # employees.
    channel: str = ""

    @property
    def is_beneficiary(self) -> bool:
        return self.role in BENEFICIARY_ROLES

    def narrowed(self, record: StaffRecord | None) -> Principal:
        """The caller as review's record of them leaves them (unchanged without one)."""
        if record is None:
            return self
        return replace(self, departments=record.narrows(self.departments))


@dataclass(frozen=True)
class StaffRecord:
    """What review's record of a reviewer decides of their departments. Identity grants them;
    the record only takes some away: within `scope` (None: every department) the reviewer
    keeps those of `departments`, outside it they follow their token."""

    reviewer_id: str
    departments: frozenset[str]
    scope: frozenset[str] | None
    version: int = 0

    def narrows(self, granted: frozenset[str]) -> frozenset[str]:
        """The departments of `granted` (a token's) this record leaves the reviewer in."""
        departments = self.departments
        if self.scope is not None:
            departments |= granted - self.scope
        return departments & granted


class Issuer(BaseModel):
    """One trusted identity provider: its `iss`, what it vouches for, and its public keys."""

    issuer: str
    kind: IssuerKind
    # A JWKS file, or an http(s) URL serving one.
    jwks: str


def _read_jwks(source: str) -> Any:
    if source.startswith(("https://", "http://")):
        with urllib.request.urlopen(source, timeout=10) as answer:
            return json.load(answer)
    return json.loads(Path(source).read_text())


class _Key(NamedTuple):
    jwk: jwt.PyJWK
    # The key as its JWKS lists it: a key id its provider reuses for another key is another
    # key, and the tokens verified with the old one are not served from the cache.
    material: str


def _read_keys(source: str) -> dict[str, _Key]:
    """An issuer's usable keys by id. A JWKS listing none means every key was withdrawn (not
    an error, unlike PyJWKSet); an answer that is no JWKS at all is a ValueError."""
    jwks = _read_jwks(source)
    listed = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(listed, list):
        raise ValueError("not a JWKS: no list of keys")
    keys: dict[str, _Key] = {}
    for data in listed:
        try:
            key = jwt.PyJWK(data)
        except (jwt.PyJWTError, AttributeError, TypeError):
            continue  # an unusable key (not a JWK, an unknown type): skipped as PyJWKSet does
        if key.key_id and key.algorithm_name in ALGORITHMS:
            keys[key.key_id] = _Key(key, json.dumps(data, sort_keys=True))
    return keys


def _is_seconds(value: object) -> bool:
    """A time claim as a number of seconds: not a bool (an int to Python), nor NaN or an
    infinity, which slip past the comparisons that check expiry and lifetime."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


class _Verified(NamedTuple):
    principal: Principal
    expires: float
    # The clock as it was checked: stepped back before it, the token may not be valid yet.
    checked: float
    # The key that signed it: once its issuer no longer lists it as it was, the token is not
    # served.
    issuer: str
    key_id: str
    material: str


class TokenVerifier:
    """Verifies a bearer token into a Principal: signature with an allowed algorithm, a known
    issuer, this service's audience, expiry, not-before, a maximum lifetime and the claims
    its issuer must give. Verified tokens are cached until they expire or their key is
    withdrawn or changed.

    The keys are re-read in the background once they are older than the refresh interval, so
    a token naming a rotated key gets in, and one signed by a key its provider withdrew is
    refused, within about that long. A cached verification stands while the key that signed
    it is held as it was, however old: a provider that cannot be read keeps its keys held,
    and checking a token's signature again against them would only accept it again, at a
    signature check a call; no call waits for the network."""

    def __init__(
        self,
        issuers: Sequence[Issuer],
        *,
        audience: str,
        max_lifetime_seconds: int,
        leeway_seconds: int = 30,
        clock: Callable[[], float] = time.time,
        cache_size: int = 10_000,
        refresh_interval_seconds: float = 60.0,
    ) -> None:
        self._issuers = {i.issuer: i for i in issuers}
        self._audience = audience
        self._max_lifetime = max_lifetime_seconds
        self._leeway = leeway_seconds
        self._clock = clock
        self._keys: dict[str, dict[str, _Key]] = {}
        self._cache: OrderedDict[str, _Verified] = OrderedDict()
        self._cache_size = cache_size
        self._interval = refresh_interval_seconds
        self._refreshed = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None

    def load(self) -> None:
        """Reads every issuer's keys; blocking, so at start or in a thread. Each issuer on its
        own: one whose keys cannot be read now keeps those it had (none at start) and the
        others' users still get in; the next token makes it try again."""
        keys = dict(self._keys)
        complete = True
        for name, issuer in self._issuers.items():
            try:
                keys[name] = _read_keys(issuer.jwks)
            except (OSError, ValueError) as exc:
                complete = False
                log.warning(
                    "could not load the keys of identity provider %s from %s (will retry; "
                    "keeping the %d it had): %r",
                    name,
                    issuer.jwks,
                    len(keys.get(name, {})),
                    exc,
                )
        self._keys = keys
        if complete:  # else the first token retries at once, not an interval later
            self._refreshed = self._clock()

    async def refresh(self) -> None:
        await asyncio.to_thread(self.load)

    def verify(self, token: str) -> Principal:
        now = self._clock()
        self._refresh_soon(now)
        cached = self._cache.get(token)
        if cached is not None and cached.checked <= now < cached.expires and self._holds(cached):
            self._cache.move_to_end(token)
            return cached.principal
        verified = self._verify(token, now)
        self._cache[token] = verified
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return verified.principal

    def _holds(self, cached: _Verified) -> bool:
        """Whether a cached verification still stands: its key is held as it was listed."""
        key = self._keys.get(cached.issuer, {}).get(cached.key_id)
        return key is not None and key.material == cached.material

    def _verify(self, token: str, now: float) -> _Verified:
        try:
            # Read once unverified, for the issuer and key to verify it with.
            unverified = jwt.decode_complete(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("malformed token") from exc
        header, payload = unverified["header"], unverified["payload"]
        issuer = self._issuers.get(str(payload.get("iss", "")))
        if issuer is None:
            raise Unauthenticated("token from an unknown issuer")
        key_id = str(header.get("kid", ""))
        held = self._keys.get(issuer.issuer, {}).get(key_id)
        if held is None:
            raise Unauthenticated("token signed with an unknown key")
        try:
            claims = jwt.decode(
                token,
                held.jwk.key,
                algorithms=[held.jwk.algorithm_name],
                audience=self._audience,
                issuer=issuer.issuer,
                # The times are checked below against this verifier's clock.
                options={
                    "require": _REQUIRED,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated(f"token not meant for {self._audience}") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        principal, expires = self._principal(issuer, claims, now)
        return _Verified(principal, expires, now, issuer.issuer, key_id, held.material)

    def _principal(
        self, issuer: Issuer, claims: dict[str, Any], now: float
    ) -> tuple[Principal, float]:
        issued, starts, expires = claims["iat"], claims["nbf"], claims["exp"]
        if not all(_is_seconds(t) for t in (issued, starts, expires)):
            raise Unauthenticated("token times are not numbers")
        if expires <= now - self._leeway:
            raise Unauthenticated("token expired")
        if starts > now + self._leeway or issued > now + self._leeway:
            raise Unauthenticated("token not valid yet")
        if expires - issued > self._max_lifetime:
            raise Unauthenticated(f"token lives longer than {self._max_lifetime} s")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("token has no subject")
        try:
            role = Role(str(claims.get("role")))
        except ValueError as exc:
            raise Unauthenticated("token has no valid role") from exc
        if role not in ROLES_OF[issuer.kind]:
            raise Unauthenticated(f"{issuer.issuer} cannot vouch for a {role.value}")
        departments = claims.get("departments", [])
        channel = claims.get("channel", "")
        if issuer.kind is IssuerKind.STAFF:
            if not EMPLOYEE_ID.fullmatch(subject):
                raise Unauthenticated(
                    f"employee token's subject is not an employee id: {EMPLOYEE_ID_FORM}"
                )
            if not isinstance(departments, list) or not all(
                isinstance(d, str) for d in departments
            ):
                raise Unauthenticated("employee token without a list of departments")
            return Principal(subject, role, frozenset(departments)), float(expires)
        if not BENEFICIARY_ID.fullmatch(subject):
            raise Unauthenticated("end-user token's subject is not an ID number: 1 to 20 digits")
        if channel not in CHANNELS:
            raise Unauthenticated(f"end-user token's channel is not one of {sorted(CHANNELS)}")
        return Principal(subject, role, channel=channel), float(expires)

    def _refresh_soon(self, now: float) -> None:
        """Re-reads the keys once they are older than the refresh interval (a clock stepped
        back counts as older), off the call that finds them so: it is checked against the keys
        held. Under an event loop the keys are kept fresh from the first call on, calls or
        none (`_keep`)."""
        if self._keeper is None or self._keeper.done():
            with contextlib.suppress(RuntimeError):  # no event loop: a tool or a test
                self._keeper = asyncio.get_running_loop().create_task(self._keep())
        if 0 <= now - self._refreshed < self._interval:
            return
        if self._refreshing is not None and not self._refreshing.done():
            return
        self._refreshed = now
        try:
            self._refreshing = asyncio.get_running_loop().create_task(self.refresh())
        except RuntimeError:  # no event loop: a tool or a test, which may wait
            self.load()

    async def _keep(self) -> None:
        """Re-reads the keys each time they reach the refresh interval, with no call to find
        them so: after an idle spell the first call is checked against keys read less than an
        interval ago, not against those of before the spell while the re-read runs."""
        while True:
            age = self._clock() - self._refreshed
            due = self._interval - age if 0 <= age < self._interval else 0.0
            await asyncio.sleep(max(due, _LEAST_PAUSE))
            self._refresh_soon(self._clock())
            if self._refreshing is not None:
                await asyncio.wait([self._refreshing])
