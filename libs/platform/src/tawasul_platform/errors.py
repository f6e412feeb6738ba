"""Errors that domain and application code raise; entrypoints map each to one gRPC status.

Pure Python on purpose: domain modules import this and nothing transport-specific.
"""

from __future__ import annotations

from collections.abc import Mapping

from tawasul_platform.i18n import Bilingual


class DomainError(Exception):
    """Base of every expected failure; anything else reaching a client is a bug."""


class InvalidArgument(DomainError):
    """The input is wrong; `violations` maps each bad field to what is wrong with it (in
    Arabic too, for the person who typed it, when each is i18n.Bilingual)."""

    def __init__(self, violations: Mapping[str, str]) -> None:
        self.violations = dict(violations)
        english = "; ".join(f"{f}: {d}" for f, d in self.violations.items())
        arabic = {f: d.ar for f, d in self.violations.items() if isinstance(d, Bilingual)}
        if len(arabic) < len(self.violations):
            super().__init__(english)
        else:
            super().__init__(Bilingual(english, "؛ ".join(f"{f}: {d}" for f, d in arabic.items())))


class NotFound(DomainError):
    pass


class AlreadyExists(DomainError):
    """`existing` names what already exists (e.g. the open request's number)."""

    def __init__(self, message: str, existing: str = "") -> None:
        self.existing = existing
        super().__init__(message)


class FailedPrecondition(DomainError):
    """The target is in a state that does not allow the operation."""


class PermissionDenied(DomainError):
    pass


class Unauthenticated(DomainError):
    pass


class ResourceExhausted(DomainError):
    pass


class Unavailable(DomainError):
    """A service this one depends on cannot answer now; the caller may retry."""


class DeadlineExceeded(DomainError):
    """The call ran past a limit of the service's own (an upload's time), not a dependency's."""


class Conflict(Exception):
    """A dependency undid the call for a concurrent one's sake (its ABORTED: a deadlock or a
    serialization failure there): the same call tried again goes through.

    Not a DomainError, which names one status for the caller's input: this is the kind of
    failure a local deadlock is (faults.is_conflict), so it is answered ABORTED and a consumer
    applies the event again after a jittered wait instead of dead-lettering it."""
