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
from tawasul_platform.i18n import ACCEPT_LANGUAGE, DEFAULT_LOCALE, Bilingual, in_locale
from tawasul_platform.tls import open_channel, tls_config

from tawasul_review_cli.terminal import clean, line, value

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_T = TypeVar("_T")


class Failure(Exception):
    """A problem this CLI found itself (its `Bilingual` message), printed as `error: …` with
    exit status 1."""

    def __init__(self, message: Bilingual) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Session:
    address: str
    token: str
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    # The language the service's messages and the CLI's own are printed in: "ar" (the
    # default) or "en".
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

    async def connected(self) -> bool:
        """Whether the channel connects to the service, waited for (within the calls'
        deadline) before a call that must know if it was sent: a call goes on a connection
        only, so one made after this said False was never sent (the service down, refusing or
        unreachable), and one that fails after it said True may have been. Asked before the
        call, not watched during it: a connection made and lost while the call was on it may
        be gone before a watcher looks."""
        state = self._channel.get_state(try_to_connect=True)
        try:
            async with asyncio.timeout(DEFAULT_DEADLINE_SECONDS):
                while state in _CONNECTING:
                    await self._channel.wait_for_state_change(state)
                    state = self._channel.get_state(try_to_connect=True)
        except TimeoutError:
            return False
        return state is grpc.ChannelConnectivity.READY


_CONNECTING = (grpc.ChannelConnectivity.IDLE, grpc.ChannelConnectivity.CONNECTING)


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


def in_language(message: str, language: str) -> str:
    """A message of the CLI's own in the language of the service's (--language): in English
    when it has no Arabic."""
    return in_locale(message, language) or message


def fail(message: str, language: str) -> NoReturn:
    console(stderr=True).print(
        line("error: ", clean(in_language(message, language))), soft_wrap=True
    )
    raise typer.Exit(1)


def not_text(what: Bilingual) -> Bilingual:
    """Why `what` cannot be sent: it holds bytes that are not UTF-8 (Python keeps them as lone
    surrogates), such as a note in a Windows-1256 file passed as "$(cat note.txt)"."""
    return Bilingual(
        f"{what} is not UTF-8 text: convert it first, e.g. iconv -f cp1256 -t utf-8",
        f"{what.ar} ليس نصًا بترميز UTF-8: حوّله أولًا، مثلًا iconv -f cp1256 -t utf-8",
    )


def is_text(raw: str) -> bool:
    """Whether a string from the command line or the environment is text: no lone surrogate."""
    try:
        raw.encode()
    except UnicodeEncodeError:
        return False
    return True


def language_of(ctx: typer.Context) -> str:
    """The language the command was asked for (--language, TAWASUL_LANGUAGE)."""
    session = ctx.obj
    return session.language if isinstance(session, Session) else DEFAULT_LOCALE


_NO_TOKEN = Bilingual(
    "no reviewer token: pass --token or set TAWASUL_REVIEWER_TOKEN",
    "لا رمز للمراجع: مرّر --token أو اضبط TAWASUL_REVIEWER_TOKEN",
)
_NOT_A_TOKEN = Bilingual(
    "the reviewer token is not a token: only printable ASCII, as the provider gave it",
    "رمز المراجع ليس رمزًا: أحرف ASCII قابلة للطباعة فقط، كما أعطاه المزوّد",
)


def run(ctx: typer.Context, work: Callable[[Review], Awaitable[_T]]) -> _T:
    """Runs one command's calls on a channel of their own; errors end in exit status 1."""
    session, language = ctx.obj, language_of(ctx)
    if not isinstance(session, Session) or not session.token.strip():
        fail(_NO_TOKEN, language)
    # A token file saved with Windows line endings keeps its CR through $(cat …).
    token = session.token.strip()
    if not (token.isascii() and token.isprintable()):
        fail(_NOT_A_TOKEN, language)

    try:
        tls = tls_config(
            cert_file=session.tls_cert, key_file=session.tls_key, ca_file=session.tls_ca
        )
    except ValueError as exc:
        # Named in English only, by tawasul_platform.tls.
        fail(f"{exc} (--tls-cert, --tls-key, --tls-ca)", language)

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
        fail(exc.message, language)
    except UnicodeEncodeError as exc:
        # A lone surrogate (main() names the argument; a setting, or a caller other than
        # main(), ends here) is not text a request can carry; anything else is a bug.
        if is_text(exc.object[exc.start : exc.end]):
            raise
        fail(
            not_text(Bilingual("an argument or a TAWASUL_ setting", "وسيط أو إعداد TAWASUL_")),
            language,
        )
