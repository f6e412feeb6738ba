"""Token verification against the providers' public keys, tried as an attacker would."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.server
import json
import threading
from pathlib import Path
from typing import Any

import jwt
import pytest
from tawasul_devstack.identity import USERS_ISSUER, DevIdentity
from tawasul_platform.errors import Unauthenticated
from tawasul_platform.identity import Issuer, IssuerKind, Principal, Role, TokenVerifier

NOW = 1_900_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> DevIdentity:
    return DevIdentity(tmp_path_factory.mktemp("identity"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(provider: DevIdentity, clock: Clock) -> TokenVerifier:
    verifier = TokenVerifier(
        provider.issuers(), audience="tawasul-docs", max_lifetime_seconds=7200, clock=clock
    )
    verifier.load()
    return verifier


def test_an_end_users_token_names_them_and_their_channel(
    provider: DevIdentity, verifier: TokenVerifier
) -> None:
    token = provider.token("1000000008", Role.CITIZEN, channel="mobile", now=NOW)
    assert verifier.verify(token) == Principal("1000000008", Role.CITIZEN, channel="mobile")


def test_an_employees_token_carries_their_departments(
    provider: DevIdentity, verifier: TokenVerifier
) -> None:
    token = provider.token("E1001", Role.REVIEWER, ["visas", "passports"], now=NOW)
    assert verifier.verify(token) == Principal(
        "E1001", Role.REVIEWER, frozenset({"passports", "visas"})
    )


def _unsigned(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key="", algorithm="none")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with_public_key(provider: DevIdentity) -> str:
    """Algorithm confusion: the published public key used as an HMAC secret."""
    public = provider.jwks_file(IssuerKind.USERS).read_text()
    kid = json.loads(public)["keys"][0]["kid"]
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    claims = {
        "iss": USERS_ISSUER,
        "aud": "tawasul-docs",
        "sub": "1000000008",
        "role": "citizen",
        "channel": "web",
        "iat": int(NOW),
        "nbf": int(NOW),
        "exp": int(NOW) + 60,
    }
    body = f"{header}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(public.encode(), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(signature)}"


C = "1000000008"
REFUSED: dict[str, Any] = {
    "expired": lambda p: p.token(C, Role.CITIZEN, now=NOW - 7200, ttl_seconds=3600),
    "not yet valid": lambda p: p.token(C, Role.CITIZEN, now=NOW, overrides={"nbf": NOW + 600}),
    "issued in the future": lambda p: p.token(C, Role.CITIZEN, now=NOW + 600),
    "lives too long": lambda p: p.token(C, Role.CITIZEN, now=NOW, ttl_seconds=86400),
    "another service's": lambda p: p.token(C, Role.CITIZEN, now=NOW, overrides={"aud": "x"}),
    "unknown issuer": lambda p: p.token(C, Role.CITIZEN, now=NOW, overrides={"iss": "x"}),
    "user issuer makes an employee": lambda p: p.token(
        "E1", Role.CITIZEN, now=NOW, overrides={"role": "reviewer", "departments": ["visas"]}
    ),
    "staff issuer makes a citizen": lambda p: p.token(
        "1000000008", Role.REVIEWER, now=NOW, overrides={"role": "citizen"}
    ),
    "staff token without departments": lambda p: p.token(
        "E1", Role.REVIEWER, now=NOW, overrides={"departments": "visas"}
    ),
    "employee id too long": lambda p: p.token("E" * 51, Role.REVIEWER, ["visas"], now=NOW),
    "employee id not an id": lambda p: p.token("E1\x00", Role.REVIEWER, ["visas"], now=NOW),
    "end user's id too long": lambda p: p.token("7" * 21, Role.ESTABLISHMENT, now=NOW),
    "end user's id not a number": lambda p: p.token("1000000008\x00", Role.CITIZEN, now=NOW),
    "end user's id in other digits": lambda p: p.token("١٠٠٠٠٠٠٠٠٨", Role.CITIZEN, now=NOW),
    "unknown channel": lambda p: p.token(C, Role.CITIZEN, now=NOW, channel="fax"),
    "no subject": lambda p: p.token("", Role.CITIZEN, now=NOW),
    "no expiry": lambda p: p.token(C, Role.CITIZEN, now=NOW, overrides={"exp": None}),
    "unsigned": lambda p: _unsigned(
        {"iss": USERS_ISSUER, "aud": "tawasul-docs", "sub": "1", "role": "citizen"}
    ),
    "HMAC with the public key": _hs256_with_public_key,
    "garbage": lambda p: "not.a.token",
}


@pytest.mark.parametrize("case", REFUSED)
def test_bad_tokens_are_refused(provider: DevIdentity, verifier: TokenVerifier, case: str) -> None:
    token = REFUSED[case](provider)
    with pytest.raises(Unauthenticated):
        verifier.verify(token)


@pytest.mark.parametrize(
    "times",
    [
        {"exp": float("nan")},
        {"iat": float("nan")},
        {"nbf": float("nan")},
        {"exp": float("inf")},
        {"nbf": float("-inf")},
        {"nbf": True},
        {"iat": False, "nbf": False},
        {"exp": "1900003600"},
    ],
    ids=repr,
)
def test_times_that_are_not_numbers_of_seconds_are_refused(
    provider: DevIdentity, verifier: TokenVerifier, times: dict[str, Any]
) -> None:
    # Signed by the provider's own key: only the claims are wrong.
    token = provider.token(C, Role.CITIZEN, now=NOW, overrides=times)
    with pytest.raises(Unauthenticated, match="token times are not numbers"):
        verifier.verify(token)


def test_a_token_signed_by_a_key_the_service_was_not_given_is_refused(
    verifier: TokenVerifier, tmp_path: Path
) -> None:
    impostor = DevIdentity(tmp_path).token("1000000008", Role.CITIZEN, now=NOW)
    with pytest.raises(Unauthenticated, match="unknown key"):
        verifier.verify(impostor)


def test_a_tampered_payload_fails_its_signature(
    provider: DevIdentity, verifier: TokenVerifier
) -> None:
    header, _, signature = provider.token("E1", Role.REVIEWER, ["visas"], now=NOW).split(".")
    payload = provider.token("E1", Role.REVIEWER, ["visas", "passports"], now=NOW).split(".")[1]
    with pytest.raises(Unauthenticated):
        verifier.verify(f"{header}.{payload}.{signature}")


def test_a_cached_token_still_expires(
    provider: DevIdentity, verifier: TokenVerifier, clock: Clock
) -> None:
    token = provider.token("1000000008", Role.CITIZEN, now=NOW, ttl_seconds=60)
    assert verifier.verify(token).subject == "1000000008"
    clock.now = NOW + 61 + 30
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(token)


def test_a_rotated_key_is_picked_up_from_the_jwks(tmp_path: Path, clock: Clock) -> None:
    old = DevIdentity(tmp_path / "old")
    verifier = TokenVerifier(
        old.issuers(),
        audience="tawasul-review",
        max_lifetime_seconds=7200,
        clock=clock,
        refresh_interval_seconds=0,
    )
    verifier.load()
    new = DevIdentity(tmp_path / "new")
    token = new.token("E1", Role.REVIEWER, ["visas"], now=NOW)
    with pytest.raises(Unauthenticated, match="unknown key"):
        verifier.verify(token)
    # The provider publishes its new key where the service reads the old one.
    staff = old.jwks_file(IssuerKind.STAFF)
    staff.write_text(new.jwks_file(IssuerKind.STAFF).read_text())
    verifier.load()
    assert verifier.verify(token).departments == {"visas"}


def test_the_keys_may_come_from_the_providers_url(provider: DevIdentity, clock: Clock) -> None:
    jwks = provider.jwks_file(IssuerKind.USERS).read_bytes()

    class Jwks(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
        verifier = TokenVerifier(
            [Issuer(issuer=USERS_ISSUER, kind=IssuerKind.USERS, jwks=url)],
            audience="tawasul-intake",
            max_lifetime_seconds=7200,
            clock=clock,
        )
        verifier.load()
        token = provider.token(C, Role.RESIDENT, now=NOW)
        assert verifier.verify(token) == Principal(C, Role.RESIDENT, channel="web")
    finally:
        server.shutdown()


def test_a_provider_down_at_start_is_tried_again_when_a_token_comes(
    provider: DevIdentity, clock: Clock, tmp_path: Path
) -> None:
    jwks = tmp_path / "users.jwks.json"
    verifier = TokenVerifier(
        [Issuer(issuer=USERS_ISSUER, kind=IssuerKind.USERS, jwks=str(jwks))],
        audience="tawasul-intake",
        max_lifetime_seconds=7200,
        clock=clock,
    )
    verifier.load()  # not there yet: the service still starts
    token = provider.token(C, Role.CITIZEN, now=NOW)
    jwks.write_text(provider.jwks_file(IssuerKind.USERS).read_text())
    assert verifier.verify(token).subject == C


@pytest.fixture
def own_provider(tmp_path: Path) -> DevIdentity:
    """A provider of this test's own, whose JWKS it may change."""
    return DevIdentity(tmp_path / "identity")


def _withdraw_users_keys(provider: DevIdentity) -> None:
    # The key leaked; the operator withdraws it: the users' JWKS now lists none.
    provider.jwks_file(IssuerKind.USERS).write_text(json.dumps({"keys": []}))


def _refreshing(provider: DevIdentity, clock: Clock, audience: str) -> TokenVerifier:
    """A verifier of `provider`'s tokens, its keys loaded, re-read once a minute old."""
    verifier = TokenVerifier(
        provider.issuers(),
        audience=audience,
        max_lifetime_seconds=7200,
        clock=clock,
        refresh_interval_seconds=60,
    )
    verifier.load()
    return verifier


def test_a_key_its_provider_withdraws_is_refused_once_the_keys_are_re_read(
    own_provider: DevIdentity, clock: Clock
) -> None:
    verifier = _refreshing(own_provider, clock, "tawasul-docs")
    cached = own_provider.token(C, Role.CITIZEN, now=NOW)
    assert verifier.verify(cached).subject == C
    _withdraw_users_keys(own_provider)
    clock.now = NOW + 30  # within the refresh interval the keys held still count
    assert verifier.verify(cached).subject == C
    clock.now = NOW + 61
    forged = own_provider.token("1999999999", Role.CITIZEN, now=clock.now)
    with pytest.raises(Unauthenticated, match="unknown key"):
        verifier.verify(forged)
    # The token verified before is not served from the cache either.
    with pytest.raises(Unauthenticated, match="unknown key"):
        verifier.verify(cached)
    # The other provider's keys are untouched.
    employee = own_provider.token("E1", Role.REVIEWER, ["visas"], now=clock.now)
    assert verifier.verify(employee).subject == "E1"


async def test_the_keys_are_re_read_in_the_background_not_by_the_call(
    own_provider: DevIdentity, clock: Clock
) -> None:
    verifier = _refreshing(own_provider, clock, "tawasul-intake")
    token = own_provider.token(C, Role.CITIZEN, now=NOW)
    assert verifier.verify(token).subject == C
    _withdraw_users_keys(own_provider)
    clock.now = NOW + 61
    # The call that finds the keys old is checked against them; the re-read follows it.
    assert verifier.verify(token).subject == C
    for _ in range(500):
        await asyncio.sleep(0.01)
        try:
            verifier.verify(token)
        except Unauthenticated:
            break
    else:
        pytest.fail("the withdrawn key was still accepted 5 s after the keys were re-read")
    with pytest.raises(Unauthenticated, match="unknown key"):
        verifier.verify(token)


def test_a_key_id_its_provider_reuses_for_a_new_key_drops_the_old_keys_tokens(
    own_provider: DevIdentity, clock: Clock, tmp_path: Path
) -> None:
    verifier = _refreshing(own_provider, clock, "tawasul-docs")
    cached = own_provider.token(C, Role.CITIZEN, now=NOW)
    assert verifier.verify(cached).subject == C
    # The provider rotates its key but keeps the key id.
    jwks = own_provider.jwks_file(IssuerKind.USERS)
    (old,) = json.loads(jwks.read_text())["keys"]
    other = DevIdentity(tmp_path / "other")
    (new,) = json.loads(other.jwks_file(IssuerKind.USERS).read_text())["keys"]
    jwks.write_text(json.dumps({"keys": [{**new, "kid": old["kid"]}]}))
    clock.now = NOW + 61
    with pytest.raises(Unauthenticated, match="Signature verification failed"):
        verifier.verify(cached)


async def test_keys_are_re_read_during_an_idle_spell_not_after_it(
    own_provider: DevIdentity,
) -> None:
    """The first call after the spell finds the withdrawn key gone: the keys were re-read
    meanwhile, not by that call while it was served from the cache."""
    verifier = TokenVerifier(
        own_provider.issuers(),
        audience="tawasul-docs",
        max_lifetime_seconds=7200,
        refresh_interval_seconds=0.3,
    )
    verifier.load()
    token = own_provider.token(C, Role.CITIZEN)
    assert verifier.verify(token).subject == C
    _withdraw_users_keys(own_provider)
    await asyncio.sleep(1.0)  # no calls
    with pytest.raises(Unauthenticated, match="unknown key"):
        verifier.verify(token)


def test_a_cached_token_stays_a_cache_hit_while_its_provider_cannot_be_read(
    own_provider: DevIdentity, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider that cannot be read leaves the keys held: a token they verified is served
    from the cache as long as they are held (a signature check is ~0.1 ms a call), a token
    they have not verified is checked, and a key withdrawn is refused once it is read."""
    verifier = _refreshing(own_provider, clock, "tawasul-docs")
    token = own_provider.token(C, Role.CITIZEN, now=NOW)
    assert verifier.verify(token).subject == C
    checked: list[str] = []
    real = jwt.decode

    def decode(token: str, *args: Any, **kwargs: Any) -> Any:
        checked.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", decode)
    clock.now = NOW + 30
    assert verifier.verify(token).subject == C
    assert checked == []  # from the cache
    jwks = own_provider.jwks_file(IssuerKind.USERS)
    listed = jwks.read_text()
    jwks.write_text("not json")
    for clock.now in (NOW + 61, NOW + 61, NOW + 200, NOW + 200):
        assert verifier.verify(token).subject == C  # the keys held still count
    assert checked == []
    # A token the keys held have not verified is checked against them, tampered or not.
    other = own_provider.token("1999999999", Role.CITIZEN, now=clock.now)
    assert verifier.verify(other).subject == "1999999999"
    assert checked == [other]
    header, _, signature = token.split(".")
    forged = f"{header}.{other.split('.')[1]}.{signature}"
    with pytest.raises(Unauthenticated, match="Signature verification failed"):
        verifier.verify(forged)
    # A clock stepped back before the check checks the token again.
    clock.now = NOW - 10
    assert verifier.verify(token).subject == C
    assert checked == [other, forged, token]
    # The provider is back, the key withdrawn: its tokens are refused, cached or not.
    jwks.write_text(listed)
    _withdraw_users_keys(own_provider)
    clock.now = NOW + 300
    with pytest.raises(Unauthenticated, match="unknown key"):
        verifier.verify(token)
    with pytest.raises(Unauthenticated, match="unknown key"):
        verifier.verify(other)


@pytest.mark.parametrize("answer", ["{}", "[]", '{"keys": "none"}'])
def test_an_answer_that_is_no_jwks_does_not_withdraw_the_keys(
    own_provider: DevIdentity, clock: Clock, answer: str
) -> None:
    verifier = TokenVerifier(
        own_provider.issuers(),
        audience="tawasul-intake",
        max_lifetime_seconds=7200,
        clock=clock,
        refresh_interval_seconds=0,
    )
    verifier.load()
    own_provider.jwks_file(IssuerKind.USERS).write_text(answer)
    assert verifier.verify(own_provider.token(C, Role.CITIZEN, now=NOW)).subject == C


def test_one_providers_unreadable_keys_leave_the_others_users_in(
    provider: DevIdentity, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    users, staff = provider.issuers()
    staff_jwks = tmp_path / "staff.jwks.json"
    staff_jwks.write_text(provider.jwks_file(IssuerKind.STAFF).read_text())
    verifier = TokenVerifier(
        [users, Issuer(issuer=staff.issuer, kind=staff.kind, jwks=str(staff_jwks))],
        audience="tawasul-docs",
        max_lifetime_seconds=7200,
        clock=clock,
    )
    verifier.load()
    employee = provider.token("E1", Role.REVIEWER, ["visas"], now=NOW)
    assert verifier.verify(employee).subject == "E1"
    # The staff directory's JWKS becomes unreadable (a typo in its path, its URL down).
    staff_jwks.write_text("<html>502 Bad Gateway</html>")
    with caplog.at_level("WARNING", logger="tawasul_platform.identity"):
        verifier.load()
    citizen = provider.token(C, Role.CITIZEN, now=NOW)
    assert verifier.verify(citizen).subject == C
    # The staff keys it had are kept, so employees are not locked out either.
    fresh = provider.token("E2", Role.REVIEWER, ["visas"], now=NOW)
    assert verifier.verify(fresh).subject == "E2"
    [warning] = [r.getMessage() for r in caplog.records]
    assert staff.issuer in warning
    assert str(staff_jwks) in warning
    assert "keeping the 1 it had" in warning
