"""The end user's sign-in token: a fixed one, or a provider asked again near expiry."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

AUTHORIZATION = "authorization"


@dataclass(frozen=True)
class Token:
    """A bearer token and when it expires (seconds since the epoch; None: unknown)."""

    value: str
    expires_at: float | None = None

    @classmethod
    def of(cls, value: str) -> Token:
        """The token, its expiry read from the JWT's `exp` claim when it has one (unverified:
        only to know when to ask for a new one; the services verify it)."""
        return cls(value, jwt_expiry(value))


TokenProvider = Callable[[], Awaitable["str | Token"]]


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, read without verifying it; None when there is none."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    expiry = claims.get("exp") if isinstance(claims, dict) else None
    return float(expiry) if isinstance(expiry, int | float) else None


class Credentials:
    """Gives the current token: a fixed one, or the provider's, asked again once the token is
    within `refresh_margin` seconds of its expiry (or after `invalidate`, when a service
    answered UNAUTHENTICATED). Concurrent callers share one refresh."""

    def __init__(
        self,
        source: str | Token | TokenProvider,
        *,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._provider: TokenProvider | None = None
        self._token: Token | None = None
        if isinstance(source, str):
            self._token = Token.of(source)
        elif isinstance(source, Token):
            self._token = source
        else:
            self._provider = source
        self._margin = refresh_margin
        self._clock = clock
        self._lock = asyncio.Lock()

    @property
    def refreshable(self) -> bool:
        return self._provider is not None

    def _fresh(self, token: Token | None) -> bool:
        if token is None:
            return False
        return token.expires_at is None or token.expires_at - self._margin > self._clock()

    async def token(self) -> str:
        if self._provider is None:
            assert self._token is not None
            return self._token.value
        if self._fresh(self._token):
            assert self._token is not None
            return self._token.value
        async with self._lock:
            if not self._fresh(self._token):
                given = await self._provider()
                self._token = Token.of(given) if isinstance(given, str) else given
            assert self._token is not None
            return self._token.value

    def invalidate(self) -> None:
        """Forget the provider's token: the next call asks for a new one."""
        if self._provider is not None:
            self._token = None
