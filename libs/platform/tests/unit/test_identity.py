import pytest
from tawasul_platform.errors import Unauthenticated
from tawasul_platform.identity import Principal, Role, issue_token, verify_token

REVIEWER = Principal("E100", Role.REVIEWER, frozenset({"passports"}))


def test_a_token_round_trips_its_principal() -> None:
    assert verify_token("s", issue_token("s", REVIEWER)) == REVIEWER


@pytest.mark.parametrize(
    ("token", "secret", "now"),
    [
        ("garbage", "s", None),
        (issue_token("other-secret", REVIEWER), "s", None),
        (issue_token("s", REVIEWER, ttl_seconds=10, now=1000), "s", 1011.0),
    ],
    ids=["malformed", "wrong-secret", "expired"],
)
def test_bad_tokens_are_refused(token: str, secret: str, now: float | None) -> None:
    with pytest.raises(Unauthenticated):
        verify_token(secret, token, now=now)


def test_a_tampered_body_is_refused() -> None:
    body, _, signature = issue_token("s", REVIEWER).partition(".")
    forged = issue_token("s", Principal("E999", Role.REVIEWER)).partition(".")[0]
    with pytest.raises(Unauthenticated):
        verify_token("s", f"{forged}.{signature}")
    assert verify_token("s", f"{body}.{signature}") == REVIEWER
