"""The gate: one rule per method, checked before the method runs."""

from __future__ import annotations

from typing import Any

import pytest
from tawasul.notify.v1 import notify_pb2
from tawasul_devstack.identity import DevIdentity
from tawasul_platform.authz import BENEFICIARIES, PUBLIC, SIGNED_IN, STAFF, Gate, services
from tawasul_platform.errors import PermissionDenied, Unauthenticated
from tawasul_platform.identity import Principal, Role, TokenVerifier

SERVICE = notify_pb2.DESCRIPTOR.services_by_name["NotifyService"].full_name
RULES = {
    "SendOneTimeCode": services("intake"),
    "ListDeliveries": SIGNED_IN,
    "ListInbox": BENEFICIARIES,
    "MarkInboxRead": BENEFICIARIES,
    "PreviewTemplate": STAFF,
}


class Context:
    """What the gate reads of a call: its metadata and its peer's certificate."""

    def __init__(self, token: str | None = None, peer: str | None = None) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._peer = peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_common_name": [self._peer.encode()]} if self._peer else {}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> DevIdentity:
    return DevIdentity(tmp_path_factory.mktemp("identity"))


@pytest.fixture(scope="module")
def gate(provider: DevIdentity) -> Gate:
    verifier = TokenVerifier(
        provider.issuers(), audience="tawasul-notify", max_lifetime_seconds=3600
    )
    verifier.load()
    return Gate(verifier, {SERVICE: RULES})


def admit(gate: Gate, method: str, context: Context) -> Principal | None:
    call: Any = context
    return gate.admit(f"/{SERVICE}/{method}", call)


def test_a_service_without_a_rule_for_every_method_does_not_start(gate: Gate) -> None:
    verifier = TokenVerifier([], audience="tawasul-notify", max_lifetime_seconds=60)
    partial = {m: r for m, r in RULES.items() if m != "PreviewTemplate"}
    with pytest.raises(RuntimeError, match="no access rule for \\['PreviewTemplate'\\]"):
        Gate(verifier, {SERVICE: partial})
    with pytest.raises(RuntimeError, match="Typo"):
        Gate(verifier, {SERVICE: {**RULES, "Typo": PUBLIC}})


def test_each_rule_admits_whom_it_names(gate: Gate, provider: DevIdentity) -> None:
    citizen = provider.token("1000000008", Role.CITIZEN, channel="mobile")
    reviewer = provider.token("E1", Role.REVIEWER, ["visas"])
    assert admit(gate, "ListInbox", Context(citizen)) == Principal(
        "1000000008", Role.CITIZEN, channel="mobile"
    )
    assert admit(gate, "PreviewTemplate", Context(reviewer)) == Principal(
        "E1", Role.REVIEWER, frozenset({"visas"})
    )
    assert admit(gate, "ListDeliveries", Context(citizen)) is not None
    assert admit(gate, "ListDeliveries", Context(reviewer)) is not None
    with pytest.raises(PermissionDenied):
        admit(gate, "PreviewTemplate", Context(citizen))
    with pytest.raises(PermissionDenied) as refused:
        admit(gate, "ListInbox", Context(reviewer))
    (said,) = refused.value.args
    assert (said, said.ar) == ("a reviewer may not call this", "هذه العملية غير متاحة لحساب موظف")
    with pytest.raises(Unauthenticated) as unsigned:
        admit(gate, "ListInbox", Context())
    assert unsigned.value.args[0].ar == "سجّل الدخول أولًا"


def test_a_service_rule_wants_that_services_certificate_not_a_token(
    gate: Gate, provider: DevIdentity
) -> None:
    assert admit(gate, "SendOneTimeCode", Context(peer="intake")) is None
    reviewer = provider.token("E1", Role.REVIEWER, ["visas"])
    for refused in (Context(peer="review"), Context(reviewer), Context()):
        with pytest.raises(PermissionDenied, match="service intake"):
            admit(gate, "SendOneTimeCode", refused)


def test_methods_of_unguarded_services_are_open(gate: Gate) -> None:
    call: Any = Context()
    assert gate.admit("/grpc.health.v1.Health/Check", call) is None


def test_the_rules_are_listed_by_full_method_path(gate: Gate) -> None:
    assert gate.rules[f"/{SERVICE}/PreviewTemplate"].describe() == "reviewer"
    assert gate.rules[f"/{SERVICE}/SendOneTimeCode"].describe() == "service intake"
    assert gate.services == (SERVICE,)
