"""Who may call each RPC: one explicit rule per method, checked before the method runs.

A rule says who gets in; what they may see once in (their own requests, their departments'
queues) is the domain's to decide. A service whose methods do not all have a rule does not
start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pool

from tawasul_platform.errors import PermissionDenied, Unauthenticated
from tawasul_platform.i18n import Bilingual
from tawasul_platform.identity import BENEFICIARY_ROLES, ROLE_AR, Principal, Role, TokenVerifier
from tawasul_platform.settings import ServiceSettings
from tawasul_platform.tls import peer_name

AUTHORIZATION = "authorization"


@dataclass(frozen=True)
class Rule:
    """Callers admitted: signed-in principals with one of `roles`, services whose client
    certificate names one of `services`, or anyone when `public`."""

    roles: frozenset[Role] = frozenset()
    services: frozenset[str] = frozenset()
    public: bool = False

    def describe(self) -> str:
        if self.public:
            return "anyone, no sign-in"
        who = [
            *sorted(r.value for r in self.roles),
            *(f"service {s}" for s in sorted(self.services)),
        ]
        return ", ".join(who)


PUBLIC = Rule(public=True)
BENEFICIARIES = Rule(roles=BENEFICIARY_ROLES)
STAFF = Rule(roles=frozenset({Role.REVIEWER}))
SIGNED_IN = Rule(roles=frozenset(Role))


def services(*names: str) -> Rule:
    return Rule(services=frozenset(names))


def bearer_token(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The caller's raw token, to forward on calls made on their behalf."""
    value = dict(context.invocation_metadata() or ()).get(AUTHORIZATION)
    if not isinstance(value, str) or not value.startswith("Bearer "):
        raise Unauthenticated(
            Bilingual("missing bearer token in 'authorization' metadata", "سجّل الدخول أولًا")
        )
    return value.removeprefix("Bearer ")


class Gate:
    """Admits or refuses each call of the services it guards; other services (health,
    reflection) are open."""

    def __init__(self, verifier: TokenVerifier, rules: Mapping[str, Mapping[str, Rule]]) -> None:
        self._verifier = verifier
        self._rules: dict[str, Rule] = {}
        self._services = tuple(rules)
        pool = descriptor_pool.Default()
        for service, by_method in rules.items():
            methods = {m.name for m in pool.FindServiceByName(service).methods}
            missing, unknown = methods - by_method.keys(), by_method.keys() - methods
            if missing or unknown:
                raise RuntimeError(
                    f"{service}: no access rule for {sorted(missing)}; "
                    f"rules for methods it lacks: {sorted(unknown)}"
                )
            self._rules.update({f"/{service}/{m}": r for m, r in by_method.items()})

    @classmethod
    def from_settings(
        cls, settings: ServiceSettings, rules: Mapping[str, Mapping[str, Rule]]
    ) -> Gate:
        verifier = TokenVerifier(
            settings.identity_issuers,
            audience=settings.identity_audience,
            max_lifetime_seconds=settings.identity_max_token_seconds,
            refresh_interval_seconds=settings.identity_refresh_seconds,
        )
        verifier.load()
        return cls(verifier, rules)

    @property
    def services(self) -> tuple[str, ...]:
        return self._services

    @property
    def rules(self) -> Mapping[str, Rule]:
        """Each guarded method's rule, by its full path (`/package.Service/Method`)."""
        return self._rules

    def admit(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Principal | None:
        """The caller's principal (None when the rule needs none); raises when refused."""
        rule = self._rules.get(method)
        if rule is None or rule.public:
            return None
        if rule.services and peer_name(context) in rule.services:
            return None
        if not rule.roles:
            raise PermissionDenied(f"only {rule.describe()} may call this")
        principal = self._verifier.verify(bearer_token(context))
        if principal.role not in rule.roles:
            raise PermissionDenied(
                Bilingual(
                    f"a {principal.role.value} may not call this",
                    f"هذه العملية غير متاحة لحساب {ROLE_AR[principal.role]}",
                )
            )
        return principal
