"""The language of the person an HTTP call is for, for the call's duration: the page's or the
app's Accept-Language ("ar" or "en"). The SDK asks intake and docs for it, and the gateway's
own refusals use it; a caller naming neither gets Arabic, the default."""

from __future__ import annotations

from contextvars import ContextVar, Token

from tawasul_platform.i18n import in_locale, preferred_locale

_LOCALE: ContextVar[str | None] = ContextVar("tawasul_gateway_locale", default=None)


def current() -> str | None:
    return _LOCALE.get()


def enter(accept_language: str | None) -> Token[str | None]:
    return _LOCALE.set(preferred_locale(accept_language))


def leave(token: Token[str | None]) -> None:
    _LOCALE.reset(token)


def said(message: str) -> str:
    """`message` in the call's language where the gateway has it in it, else as it is."""
    locale = _LOCALE.get()
    return (in_locale(message, locale) if locale else None) or message
