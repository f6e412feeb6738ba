"""The end user's sign-in token: a fixed one, or a provider asked again near expiry."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
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
    """Gives the current token: a fixed one, or the provider's. The provider is asked again
    `refresh_margin` seconds before the token expires, or halfway through what was left of it
    when given if that is later (a 60-second token is used for 30 seconds, not asked for at
    every call), and after `invalidate` (a service answered UNAUTHENTICATED). Concurrent
    callers share one refresh."""

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
        # When the provider's token is to be renewed, and how many it has given.
        self._renew_at = math.inf
        self._given = 0

    @property
    def refreshable(self) -> bool:
        return self._provider is not None

    async def token(self) -> str:
        if self._provider is None:
            assert self._token is not None
            return self._token.value
        if self._token is not None and self._clock() < self._renew_at:
            return self._token.value
        seen = self._given
        async with self._lock:
            if self._token is not None and self._given != seen:
                # Given while this caller waited for the lock: asking again would make every
                # call waiting here wait on the provider in turn.
                return self._token.value
            given = await self._provider()
            token = Token.of(given) if isinstance(given, str) else given
            self._token, self._renew_at = token, self._renewal(token)
            self._given += 1
            return token.value

    def _renewal(self, token: Token) -> float:
        """When to ask for a token after `token`, just given: the margin before it expires,
        but not before half of what is left of it has gone. The margin only brings the next
        token forward: a token given with less left (a provider may hand out its cached one
        in its last minute) is still used, not asked for again at once."""
        if token.expires_at is None:
            return math.inf
        lifetime = token.expires_at - self._clock()
        return token.expires_at - min(self._margin, lifetime / 2)

    def invalidate(self, refused: str | None = None) -> None:
        """Forget the provider's token: the next call asks for a new one. Given the `refused`
        token, only while it is still the current one: calls refused with an old token must
        not throw away the one another call was given meanwhile (each would ask again)."""
        if self._provider is None or self._token is None:
            return
        if refused is None or self._token.value == refused:
            self._token = None
