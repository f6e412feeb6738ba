"""Whose tracking attempts a call counts against: a trusted forwarder's named address, else the
caller's own."""

from __future__ import annotations

from typing import Any

import pytest
from tawasul_intake.entrypoints.grpc import caller_key

GATEWAY = frozenset({"gateway"})


class Context:
    def __init__(self, peer: str, certificate: str | None, metadata: dict[str, str]) -> None:
        self._peer = peer
        self._certificate = certificate
        self._metadata = tuple(metadata.items())

    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        if self._certificate is None:
            return {}
        return {"x509_common_name": [self._certificate.encode()]}

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def key(certificate: str | None, forwarded: str | None, trusted: frozenset[str] = GATEWAY) -> str:
    metadata = {"x-forwarded-for": forwarded} if forwarded is not None else {}
    context: Any = Context("ipv4:10.1.2.3:53412", certificate, metadata)
    return caller_key(context, trusted)


def test_the_gateway_names_the_person_it_calls_for() -> None:
    assert key("gateway", "203.0.113.7") == "203.0.113.7"
    assert key("gateway", " 2001:db8::1 ") == "2001:db8::/64"


@pytest.mark.parametrize(
    ("certificate", "forwarded"),
    [
        ("client", "203.0.113.7"),  # anyone else's header is ignored
        (None, "203.0.113.7"),  # so is a plaintext caller's
        ("gateway", None),  # the gateway on its own account
        ("gateway", "not an address"),
        ("gateway", "203.0.113.7, 10.0.0.1"),  # a list is no single person's address
    ],
)
def test_otherwise_the_callers_own_address_counts(
    certificate: str | None, forwarded: str | None
) -> None:
    assert key(certificate, forwarded) == "ipv4:10.1.2.3"


def test_no_forwarder_is_trusted_unless_configured() -> None:
    assert key("gateway", "203.0.113.7", trusted=frozenset()) == "ipv4:10.1.2.3"


def peer_key(peer: str) -> str:
    context: Any = Context(peer, None, {})
    return caller_key(context, GATEWAY)


def test_one_ipv6_subscriber_is_one_caller() -> None:
    """A subscriber is given a whole /64: counting each of its addresses apart would give
    them 2**64 limits."""
    assert key("gateway", "2001:db8:1:2:aaaa::1") == key("gateway", "2001:db8:1:2:ffff::9")
    assert key("gateway", "2001:db8:1:2::1") != key("gateway", "2001:db8:1:3::1")
    direct = peer_key("ipv6:%5B2001:db8:1:2::1%5D:53412")
    assert direct == peer_key("ipv6:%5B2001:db8:1:2:abcd::7%5D:40000")
    assert direct != peer_key("ipv6:%5B2001:db8:1:3::1%5D:53412")
    # An IPv4 client on an IPv6 socket is its IPv4 address.
    assert key("gateway", "::ffff:203.0.113.7") == key("gateway", "203.0.113.7")
    assert peer_key("ipv6:%5B::ffff:10.1.2.3%5D:53412") == "ipv4:10.1.2.3"
