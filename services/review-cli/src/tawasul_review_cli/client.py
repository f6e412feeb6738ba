"""The review service as a command calls it: one channel, the reviewer's token and a deadline
on every call, and every failure printed on stderr with exit status 1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TypeVar

import grpc
import typer
from google.rpc import error_details_pb2
from rich.console import Console
from tawasul.review.v1 import review_pb2_grpc
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer, status_details
from tawasul_platform.i18n import ACCEPT_LANGUAGE, DEFAULT_LOCALE
from tawasul_platform.tls import open_channel, tls_config

from tawasul_review_cli.terminal import clean, line, value

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_T = TypeVar("_T")


class Failure(Exception):
    """A problem this CLI found itself, printed as `error: …` with exit status 1."""


@dataclass(frozen=True)
class Session:
    address: str
    token: str
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    # The language the service's messages are printed in: "ar" (the default) or "en".
    language: str = DEFAULT_LOCALE
    # Those of the options above typed on the command line, the token never among them: the
    # next page's command (`more:`) repeats them.
    typed: tuple[tuple[str, str], ...] = ()


class Review:
    """The review stubs on one channel, the reviewer's token and language, and where to print."""

    def __init__(
        self, channel: grpc.aio.Channel, token: str, out: Console, language: str = DEFAULT_LOCALE
    ) -> None:
        self._channel = channel
        self.service = review_pb2_grpc.ReviewServiceStub(channel)
        self.admin = review_pb2_grpc.ReviewAdminServiceStub(channel)
        self.out = out
        self.language = language
        self._metadata = (*bearer(token), (ACCEPT_LANGUAGE, language))

    async def call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[_Req, _Resp],
        request: _Req,
        *,
        wait_for_ready: bool = False,
    ) -> _Resp:
        """Every call: the reviewer's token and language, and a deadline (which, with
        `wait_for_ready`, a channel reconnecting may take up)."""
        return await method(
            request,
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=self._metadata,
            wait_for_ready=wait_for_ready,
        )

    def connected(self) -> bool:
        """Whether the channel has reached the service: it is connected, or idle since its
        connection closed. A call that failed on a channel still connecting, or that could not
        connect (TRANSIENT_FAILURE: the service down, refusing or unreachable), was never sent."""
        state = self._channel.get_state(try_to_connect=False)
        return state in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.IDLE)


def said(error: grpc.aio.AioRpcError) -> tuple[str, dict[str, str]]:
    """A refusal's message and each field's, in the language the call asked in where the
    service has them in it (google.rpc.LocalizedMessage), in English otherwise."""
    status = status_details(error)
    message = error.details() or ""
    fields: dict[str, str] = {}
    for detail in status.details if status else ():
        localized, bad = error_details_pb2.LocalizedMessage(), error_details_pb2.BadRequest()
        if detail.Unpack(localized):
            message = localized.message or message
        elif detail.Unpack(bad):
            fields |= {
                v.field: v.localized_message.message or v.description for v in bad.field_violations
            }
    return message, fields


def console(*, stderr: bool = False) -> Console:
    # No markup, emoji codes or highlighting: a "[link=…]" or ":…:" in data stays as typed.
    return Console(stderr=stderr, markup=False, emoji=False, highlight=False)


def fail(message: str) -> NoReturn:
    console(stderr=True).print(line("error: ", clean(message)), soft_wrap=True)
    raise typer.Exit(1)


def not_text(what: str) -> str:
    """Why `what` cannot be sent: it holds bytes that are not UTF-8 (Python keeps them as lone
    surrogates), such as a note in a Windows-1256 file passed as "$(cat note.txt)"."""
    return f"{what} is not UTF-8 text: convert it first, e.g. iconv -f cp1256 -t utf-8"


def is_text(raw: str) -> bool:
    """Whether a string from the command line or the environment is text: no lone surrogate."""
    try:
        raw.encode()
    except UnicodeEncodeError:
        return False
    return True


def run(ctx: typer.Context, work: Callable[[Review], Awaitable[_T]]) -> _T:
    """Runs one command's calls on a channel of their own; errors end in exit status 1."""
    session = ctx.obj
    if not isinstance(session, Session) or not session.token.strip():
        fail("no reviewer token: pass --token or set TAWASUL_REVIEWER_TOKEN")
    # A token file saved with Windows line endings keeps its CR through $(cat …).
    token = session.token.strip()
    if not (token.isascii() and token.isprintable()):
        fail("the reviewer token is not a token: only printable ASCII, as the provider gave it")

    try:
        tls = tls_config(
            cert_file=session.tls_cert, key_file=session.tls_key, ca_file=session.tls_ca
        )
    except ValueError as exc:
        fail(f"{exc} (--tls-cert, --tls-key, --tls-ca)")

    async def connected() -> _T:
        async with open_channel(session.address, tls) as channel:
            return await work(Review(channel, token, console(), session.language))

    try:
        return asyncio.run(connected())
    except grpc.aio.AioRpcError as exc:
        err = console(stderr=True)
        message, problems = said(exc)
        err.print(line("error: ", exc.code().name, ": ", clean(message)), soft_wrap=True)
        for field, problem in problems.items():
            err.print(line("  ", clean(field), ": ", value(problem)), soft_wrap=True)
        # What the command knows of the failure that the status does not say.
        for note in getattr(exc, "__notes__", ()):
            err.print(note, soft_wrap=True)
        raise typer.Exit(1) from None
    except Failure as exc:
        fail(str(exc))
    except UnicodeEncodeError as exc:
        # A lone surrogate (main() names the argument; a setting, or a caller other than
        # main(), ends here) is not text a request can carry; anything else is a bug.
        if is_text(exc.object[exc.start : exc.end]):
            raise
        fail(not_text("an argument or a TAWASUL_ setting"))
