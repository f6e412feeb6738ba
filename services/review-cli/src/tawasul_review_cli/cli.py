"""`tawasul-review-cli`: reviewers work their queues from a terminal, over the review gRPC API.

Sign-in is the reviewer's token from the employee identity provider, in TAWASUL_REVIEWER_TOKEN
or --token; the service's address is TAWASUL_REVIEW_ADDRESS or --address. The review service
serves mutual TLS: --tls-cert, --tls-key and --tls-ca (or TAWASUL_TLS_CERT_FILE,
TAWASUL_TLS_KEY_FILE, TAWASUL_TLS_CA_FILE) give the CLI's client certificate, its key and the
office's CA; with none of them it speaks plaintext (a local test server). Every call carries
the token and a deadline. A failed call prints its gRPC status and each field violation on
stderr, in Arabic where the service has them in it (English with --language en or
TAWASUL_LANGUAGE=en), and exits 1; the CLI's own errors likewise, in that language (but for
the usage errors of typer, what TLS files and the system say, in English).

Whatever the server sends back may hold text an applicant typed (descriptions, messages,
answers, file names), so all of it is printed through `clean`: no terminal escape, control
character or bidi override of theirs reaches the reviewer's terminal.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import grpc
import httpx
import typer
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Group
from rich.table import Table
from rich.text import Text
from tawasul.common.v1 import common_pb2
from tawasul.review.v1 import review_pb2
from tawasul_calendar import RIYADH
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS
from tawasul_platform.i18n import DEFAULT_LOCALE, Bilingual
from tawasul_platform.tls import ENV_CA, ENV_CERT, ENV_KEY
from typer._click.core import ParameterSource

from tawasul_review_cli.client import (
    Failure,
    Review,
    Session,
    console,
    fail,
    in_language,
    is_text,
    language_of,
    not_text,
    run,
)
from tawasul_review_cli.pending import Busy, PendingClaim, state_file, token_subject
from tawasul_review_cli.terminal import Cell, clean, line, value
from tawasul_review_cli.wire import (
    KIND_SHOWN,
    KIND_TO_WIRE,
    SLA_TO_WIRE,
    STATE_TO_WIRE,
    KindName,
    Language,
    SlaName,
    StateName,
    missing_line,
    riyadh_time,
    state_text,
    title_line,
)

# Review on the development stack (deploy/local: the services from port 19101, review fourth).
DEFAULT_ADDRESS = "127.0.0.1:19104"
# A presigned link's file may be large; connecting is held to the usual deadline.
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=DEFAULT_DEADLINE_SECONDS)


app = typer.Typer(
    name="tawasul-review-cli",
    help="Reviewers of the General Directorate of Passports work their queues.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def sign_in(
    ctx: typer.Context,
    token: Annotated[
        str,
        typer.Option(
            envvar="TAWASUL_REVIEWER_TOKEN",
            show_default=False,
            help="The reviewer's token from the employee identity provider.",
        ),
    ] = "",
    address: Annotated[
        str, typer.Option(envvar="TAWASUL_REVIEW_ADDRESS", help="The review service, host:port.")
    ] = DEFAULT_ADDRESS,
    tls_cert: Annotated[
        Path | None,
        typer.Option(envvar=ENV_CERT, help="Your client certificate (PEM), from the office's CA."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(envvar=ENV_KEY, help="The key of --tls-cert (PEM).")
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option(envvar=ENV_CA, help="The office's CA (PEM), which signed the service."),
    ] = None,
    language: Annotated[
        Language,
        typer.Option(
            envvar="TAWASUL_LANGUAGE",
            help="The language of the service's messages and of this CLI's errors: ar"
            " (Arabic, the default) or en.",
        ),
    ] = Language.ar,
) -> None:
    # The token and TLS files are checked when a command calls the service, so
    # `COMMAND --help` needs none.
    given = {
        "address": address,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "tls_ca": tls_ca,
        "language": language.value,
    }
    # One set in the environment holds for the next page's command too, in the same shell.
    typed = tuple(
        (f"--{name.replace('_', '-')}", str(value))
        for name, value in given.items()
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    )
    ctx.obj = Session(
        address=address,
        token=token,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_ca=tls_ca,
        language=language.value,
        typed=typed,
    )


RequestId = Annotated[str, typer.Argument(help="The request's id (from `queue` or `next`).")]
Department = Annotated[str, typer.Argument(help="A department code, e.g. passports.")]
PageToken = Annotated[
    str, typer.Option(help="The previous page's `more:` token, for the next page.")
]
PROG = "tawasul-review-cli"


@dataclass(frozen=True)
class Command:
    """A listing command as it was given, to print as the command for its next page."""

    name: str
    positionals: list[str]
    options: list[tuple[str, str | int | bool]]
    # The options before the command typed on the command line (Session.typed).
    before: tuple[tuple[str, str], ...] = ()

    def typed(self, page_token: str) -> list[str]:
        """As it would be typed: the options before the command, the command, each of its
        options given (a flag when True; left out when empty, 0 or False), the page's token,
        then the arguments, after `--` when one of them looks like an option."""
        words = [PROG, *(word for option in self.before for word in option), self.name]
        for name, given in [*self.options, ("--page-token", page_token)]:
            if given is True:
                words.append(name)
            elif given:
                words += [name, str(given)]
        if any(p.startswith("-") for p in self.positionals):
            words.append("--")
        return [*words, *self.positionals]


def typed_before(ctx: typer.Context) -> tuple[tuple[str, str], ...]:
    """The options typed before the command, but the token, for its next page's command."""
    session = ctx.obj
    return session.typed if isinstance(session, Session) else ()


def print_more(review: Review, again: Command, page_token: str) -> None:
    """The command that gives the next page: the same one, with every option given (but the
    token, and those from the environment, which hold there anyway), and the page's token.
    Whole and unwrapped on its line, so it can be copied as it is; its values are quoted for
    the shell, and not isolated, since the isolate marks would be copied into the
    arguments."""
    if page_token:
        review.out.print(
            Text(f"more: {clean(shlex.join(again.typed(page_token)))}"), soft_wrap=True
        )


# --- the queue ------------------------------------------------------------------------------


def _queue_table(items: list[review_pb2.WorkItem]) -> Table:
    # Three columns, each item a few lines: the request's number, id (whole, for `claim` and
    # `show`), whom it is about (their ID) and description; its state, holder and priority;
    # its due date and SLA used.
    # The description wraps, so the table fits even 80 columns without cutting an id.
    table = Table(show_lines=True)
    table.add_column("request")
    table.add_column("state")
    table.add_column("due", no_wrap=True)
    for item in items:
        state = [state_text(item)]
        if item.assignee_id:
            state.append(f"by {clean(item.assignee_id)}")
        if item.priority:
            state.append(f"priority {item.priority}")
        due = ["-"]
        if item.HasField("due_at"):
            due = riyadh_time(item.due_at).split(" ")
        subject = [Text(f"subject {clean(item.subject_id)}")] if item.subject_id else []
        table.add_row(
            Group(
                Text(f"{clean(item.request_number)}\n{clean(item.request_id)}", style="bold"),
                *subject,
                Cell(item.description, clip=240),
            ),
            Text("\n".join(state), overflow="fold"),
            Text("\n".join([*due, f"{item.sla_percent_used} % used"])),
        )
    return table


async def list_queue(review: Review, request: review_pb2.ListQueueRequest, again: Command) -> None:
    page = await review.call(review.service.ListQueue, request)
    review.out.print(
        line("queue ", clean(request.department_code), f": {len(page.items)} on this page"),
        soft_wrap=True,
    )
    if page.items:
        review.out.print(_queue_table(list(page.items)))
    print_more(review, again, page.next_page_token)


@app.command()
def queue(
    ctx: typer.Context,
    department: Department,
    page_token: PageToken = "",
    sub_service: Annotated[str, typer.Option(help="Only this sub-service code.")] = "",
    assignee: Annotated[str, typer.Option(help="Only items held by this employee id.")] = "",
    state: Annotated[StateName | None, typer.Option(help="Only items in this state.")] = None,
    page_size: Annotated[
        int, typer.Option(min=0, max=200, help="Items a page; the service's default when 0.")
    ] = 0,
) -> None:
    """List a department's open requests: most followed-up first, then oldest."""
    request = review_pb2.ListQueueRequest(
        department_code=department,
        page_token=page_token,
        page_size=page_size,
        sub_service_code=sub_service,
        assignee_id=assignee,
        state=STATE_TO_WIRE[state] if state else review_pb2.WORK_ITEM_STATE_UNSPECIFIED,
    )
    again = Command(
        "queue",
        [department],
        [
            ("--sub-service", sub_service),
            ("--assignee", assignee),
            ("--state", state.value if state else ""),
            ("--page-size", page_size),
        ],
        typed_before(ctx),
    )
    run(ctx, lambda review: list_queue(review, request, again))


# --- search -----------------------------------------------------------------------------


# The days whose bounds review takes: it refuses an instant outside 2000-01-01T00:00Z to
# 2100-01-01T00:00Z, and Riyadh's midnight of 2000-01-01 is 1999-12-31T21:00Z.
FIRST_DAY, LAST_DAY = date(2000, 1, 2), date(2099, 12, 31)


def _day(name: str, raw: str, language: str, *, after: bool = False) -> Timestamp | None:
    """A date (YYYY-MM-DD) as the start of that day in Riyadh, or of the next with `after`."""
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=RIYADH)
    except ValueError:
        fail(
            Bilingual(f"--{name}: a date such as 2026-01-31", f"--{name}: تاريخ مثل 2026-01-31"),
            language,
        )
    if not FIRST_DAY <= day.date() <= LAST_DAY:
        fail(
            Bilingual(
                f"--{name}: a date from {FIRST_DAY} to {LAST_DAY}",
                f"--{name}: تاريخ من {FIRST_DAY} إلى {LAST_DAY}",
            ),
            language,
        )
    stamp = Timestamp()
    stamp.FromDatetime(day + timedelta(days=1) if after else day)
    return stamp


async def search_requests(
    review: Review, request: review_pb2.SearchRequestsRequest, again: Command
) -> None:
    found = await review.call(review.service.SearchRequests, request)
    kind = KIND_SHOWN.get(found.kind, "text")
    review.out.print(
        line(f"search ({kind}): {len(found.items)} on this page"),
        soft_wrap=True,
    )
    if found.items:
        review.out.print(_queue_table(list(found.items)))
    if found.suggestions:
        review.out.print("no request has that number; did you mean:", soft_wrap=True)
        review.out.print(_queue_table(list(found.suggestions)))
    print_more(review, again, found.next_page_token)


@app.command()
def search(
    ctx: typer.Context,
    query: Annotated[
        str,
        typer.Argument(
            help="A request number, national ID or iqama, mobile, or words of a name, the"
            " description or a message, typed as you like (أحمد = احمد, فاطمة = فاطمه)."
            " Empty lists by the options alone."
        ),
    ] = "",
    kind: Annotated[
        KindName | None, typer.Option(help="Take the query as this; by its shape when unset.")
    ] = None,
    department: Annotated[str, typer.Option(help="Only this department of yours.")] = "",
    sub_service: Annotated[str, typer.Option(help="Only this sub-service code.")] = "",
    state: Annotated[
        list[StateName] | None, typer.Option(help="Only items in this state (repeatable).")
    ] = None,
    since: Annotated[str, typer.Option(help="Submitted on or after this date (YYYY-MM-DD).")] = "",
    until: Annotated[str, typer.Option(help="Submitted on or before this date (YYYY-MM-DD).")] = "",
    sla: Annotated[SlaName | None, typer.Option(help="Only open items in this SLA state.")] = None,
    page_token: PageToken = "",
    page_size: Annotated[
        int, typer.Option(min=0, max=200, help="Items a page; the service's default when 0.")
    ] = 0,
) -> None:
    """Find requests of your departments, newest first (a mistyped number gets suggestions)."""
    request = review_pb2.SearchRequestsRequest(
        query=query,
        kind=KIND_TO_WIRE[kind] if kind else review_pb2.SEARCH_KIND_UNSPECIFIED,
        department_code=department,
        sub_service_code=sub_service,
        states=[STATE_TO_WIRE[s] for s in state or []],
        sla_state=SLA_TO_WIRE[sla] if sla else review_pb2.SLA_STATE_UNSPECIFIED,
        page_size=page_size,
        page_token=page_token,
    )
    language = language_of(ctx)
    start, end = _day("since", since, language), _day("until", until, language, after=True)
    if start is not None:
        request.submitted_from.CopyFrom(start)
    if end is not None:
        request.submitted_before.CopyFrom(end)
    again = Command(
        "search",
        [query] if query else [],
        [
            ("--kind", kind.value if kind else ""),
            ("--department", department),
            ("--sub-service", sub_service),
            *(("--state", s.value) for s in state or []),
            ("--since", since),
            ("--until", until),
            ("--sla", sla.value if sla else ""),
            ("--page-size", page_size),
        ],
        typed_before(ctx),
    )
    run(ctx, lambda review: search_requests(review, request, again))


def _claimed(review: Review, item: review_pb2.WorkItem) -> None:
    until = f" until {riyadh_time(item.claimed_until)}" if item.HasField("claimed_until") else ""
    review.out.print(line("claimed ", title_line(item), until), soft_wrap=True)
    review.out.print(line("  ", value(item.description)), soft_wrap=True)


# A claim whose answer was lost (the service reached, but it went away or was too slow to
# answer) is asked for once more under its key, once the channel is up again: the service
# answers the item it claimed, not a second one. Lost again, the key is kept for the next
# `next` (PendingClaim). One never sent (the service down) fails at once, as any command does.
_CLAIM_AGAIN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_CLAIM_KEPT = Bilingual(
    "a request may have been claimed for you: run `next` again to get it (the same request,"
    " not a second one)",
    "ربما حُجز لك طلب: أعد تشغيل next لتحصل عليه (الطلب نفسه، لا طلبًا ثانيًا)",
)
_CLAIMING = Bilingual(
    "another `next` is running on this account (in another terminal): run `next` again once"
    " it has answered",
    "أمر next آخر قيد التشغيل على هذا الحساب (في نافذة أخرى): أعد تشغيل next بعد أن يصله الرد",
)


async def claim_next(review: Review, pending: PendingClaim) -> None:
    try:
        with pending.held():
            await _claim_next(review, pending, await review.connected())
    except Busy:
        raise Failure(_CLAIMING) from None


async def _claim_next(review: Review, pending: PendingClaim, reached: bool) -> None:
    request = review_pb2.ClaimNextRequest(
        department_code=pending.department, idempotency_key=pending.key(datetime.now(UTC))
    )
    try:
        answer = await review.call(review.service.ClaimNext, request)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in _CLAIM_AGAIN and reached:
            answer = await _claim_again(review, pending, request)
        else:
            # Refused, nothing was claimed under the key; or never sent (the service down),
            # and its key, kept, claims anew (or gets an earlier lost answer's item).
            if exc.code() not in _CLAIM_AGAIN:
                pending.answered(datetime.now(UTC))
            raise
    if answer.HasField("item"):
        _claimed(review, answer.item)
    else:
        review.out.print("nothing is waiting in your queues")
    pending.answered(datetime.now(UTC))


async def _claim_again(
    review: Review, pending: PendingClaim, request: review_pb2.ClaimNextRequest
) -> review_pb2.ClaimNextResponse:
    """A claim whose answer was lost, sent again once the channel is up again."""
    try:
        return await review.call(review.service.ClaimNext, request, wait_for_ready=True)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in _CLAIM_AGAIN:
            exc.add_note(in_language(_CLAIM_KEPT, review.language))
        else:  # refused: nothing was claimed under the key
            pending.answered(datetime.now(UTC))
        raise


@app.command(name="next")
def next_item(
    ctx: typer.Context,
    department: Annotated[
        str, typer.Option(help="Only this department's queue; all of yours by default.")
    ] = "",
) -> None:
    """Claim the next request of your queues: highest priority, then earliest due. Run again
    after its answer was lost, it gets the request that run claimed, not a second one."""
    session: Session = ctx.obj
    pending = PendingClaim(
        address=session.address,
        reviewer=token_subject(session.token.strip()),
        department=department,
        path=state_file(),
    )
    run(ctx, lambda review: claim_next(review, pending))


async def claim_one(review: Review, request_id: str) -> None:
    answer = await review.call(
        review.service.ClaimRequest, review_pb2.ClaimRequestRequest(request_id=request_id)
    )
    _claimed(review, answer.item)


@app.command()
def claim(ctx: typer.Context, request_id: RequestId) -> None:
    """Claim a request by its id; the claim lapses when you leave it idle."""
    run(ctx, lambda review: claim_one(review, request_id))


# --- a case ---------------------------------------------------------------------------------


def _facts(item: review_pb2.WorkItem, corrects: review_pb2.CitedRejection | None) -> Table:
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim", no_wrap=True)
    facts.add_column()
    state = state_text(item)
    if item.assignee_id:
        state += f" by {clean(item.assignee_id)}"
    if item.HasField("claimed_until"):
        state += f" until {riyadh_time(item.claimed_until)}"
    facts.add_row("state", Text(state))
    # Whom the request is about: their ID, and each of their names in its own direction.
    if item.subject_id:
        facts.add_row("subject", Text(clean(item.subject_id)))
    for number, name in enumerate(item.subject_names):
        facts.add_row("" if number else "names", Cell(name))
    if item.reason_code:
        facts.add_row("reason", Text(clean(item.reason_code)))
    facts.add_row("department", Text(clean(item.department_code)))
    facts.add_row("sub-service", Text(clean(item.sub_service_code)))
    facts.add_row("priority", Text(str(item.priority)))
    if item.HasField("submitted_at"):
        facts.add_row("submitted", Text(riyadh_time(item.submitted_at)))
    due = riyadh_time(item.due_at) if item.HasField("due_at") else "-"
    facts.add_row("due", Text(f"{due}  (SLA {item.sla_percent_used} % used)"))
    if item.HasField("respond_by"):
        facts.add_row("respond by", Text(riyadh_time(item.respond_by)))
    if item.appeal_of_reviewer_id:
        facts.add_row("appeal", Text(f"not to be decided by {clean(item.appeal_of_reviewer_id)}"))
    if item.cites_request_number:
        # Filed anew with the corrections to a rejected request (SPEC §2): why it was
        # rejected when it is in one of your departments; search finds it there.
        # The reason and the reviewer's message are rows of their own, as Cells: wrapped in a
        # narrow terminal, each line of Arabic is isolated by itself.
        code = f": {clean(corrects.reason_code)}" if corrects is not None else ""
        facts.add_row("corrects", Text(f"{clean(item.cites_request_number)} (rejected{code})"))
        if corrects is not None:
            facts.add_row("", Cell(corrects.reason.en or corrects.reason.ar))
            if corrects.message:
                facts.add_row("", Cell(corrects.message))
    return facts


def _history(entries: list[review_pb2.HistoryEntry]) -> Table:
    table = Table(title="history", title_justify="left")
    table.add_column("when", no_wrap=True)
    table.add_column("who", overflow="fold")
    table.add_column("action", overflow="fold")
    table.add_column("text")
    for entry in entries:
        action = Text(clean(entry.action), overflow="fold")
        if entry.internal:
            # Only the office sees these; the beneficiary never does.
            action.append(" (internal)", style="yellow")
        table.add_row(
            Text(riyadh_time(entry.at)),
            Text(clean(entry.actor)),
            action,
            Cell(entry.text, style="yellow" if entry.internal else ""),
        )
    return table


async def show_case(review: Review, request_id: str) -> None:
    case = await review.call(
        review.service.GetCase, review_pb2.GetCaseRequest(request_id=request_id)
    )
    out, item = review.out, case.item
    out.print(title_line(item), soft_wrap=True)
    out.print(_facts(item, case.corrects if case.HasField("corrects") else None))
    out.print("description", style="bold")
    out.print(line("  ", value(item.description)), soft_wrap=True)
    if item.fields:
        out.print("fields", style="bold")
        for name, text in sorted(item.fields.items()):
            out.print(line("  ", clean(name), ": ", value(text)), soft_wrap=True)
    if item.missing:
        out.print("missing", style="bold")
        for entry in item.missing:
            out.print(missing_line(entry), soft_wrap=True)
    if case.documents_unavailable:
        # Docs cannot give the links now: the case is read without them.
        out.print(
            f"attachments: {len(item.document_ids)}, links unavailable (docs is down): "
            "try show again later",
            style="bold",
            soft_wrap=True,
        )
        for document_id in item.document_ids:
            out.print(line("  ", clean(document_id)), soft_wrap=True)
    else:
        out.print(f"attachments: {len(case.attachments)}", style="bold")
    for a in case.attachments:
        if a.unreadable:
            out.print(
                line("  ", clean(a.document_id), "  (docs does not give it: no link)"),
                soft_wrap=True,
            )
            continue
        expires = (
            f", link until {riyadh_time(a.url_expires_at)}" if a.HasField("url_expires_at") else ""
        )
        kind = f"{clean(a.document_kind)}, " if a.document_kind else ""
        out.print(
            line(
                "  ",
                clean(a.document_id),
                "  ",
                value(a.filename),
                f"  ({kind}{clean(a.content_type)}, {a.size_bytes} bytes{expires})",
            ),
            soft_wrap=True,
        )
        # The link alone on its line, never wrapped, so it can be copied or picked up whole.
        out.print(Text(clean(a.download_url)), soft_wrap=True)
    if case.history:
        out.print(_history(list(case.history)))


@app.command()
def show(ctx: typer.Context, request_id: RequestId) -> None:
    """A request: its details, due date, SLA used, what is missing, attachments and history."""
    run(ctx, lambda review: show_case(review, request_id))


# A file name's most bytes (NAME_MAX of ext4, APFS, NTFS…), ".part" included while it downloads.
NAME_MAX = 255
PART = ".part"
# Longer than this, what follows the last dot is part of the name, not a type to keep.
MAX_EXTENSION = 16


def safe_file_name(filename: str, fallback: str) -> str:
    """A local file name from an applicant's: no directories, controls or leading dots, and
    short enough in UTF-8 to be written (with PART after it), shortened before its extension,
    which says what opens it."""
    name = re.sub(r"[^\w.\- ]", "_", Path(filename.replace("\\", "/")).name).strip(". ")
    name = name or re.sub(r"[^\w.\-]", "_", fallback).strip(". ") or "attachment"
    stem, dot, extension = name.rpartition(".")
    if not stem or len(extension.encode()) > MAX_EXTENSION:
        stem, dot, extension = name, "", ""
    room = NAME_MAX - len(PART) - len((dot + extension).encode())
    # Cut at a byte, then drop the character that cut split.
    return stem.encode()[:room].decode(errors="ignore") + dot + extension


async def attachment_of(review: Review, request_id: str, document_id: str) -> review_pb2.Attachment:
    """The attachment with a fresh presigned link."""
    shown = await review.call(
        review.service.GetWorkItem, review_pb2.GetWorkItemRequest(request_id=request_id)
    )
    if shown.documents_unavailable:
        raise Failure(
            Bilingual(
                "the links are unavailable (docs is down): try again later",
                "الروابط غير متاحة (خدمة المستندات متوقفة): حاول لاحقًا",
            )
        )
    for attachment in shown.attachments:
        if attachment.document_id == document_id:
            if attachment.unreadable:
                raise Failure(
                    Bilingual(
                        f"docs does not give attachment {document_id}: no link",
                        f"خدمة المستندات لا تعطي المرفق {document_id}: لا رابط له",
                    )
                )
            return attachment
    raise Failure(
        Bilingual(
            f"request {request_id} has no attachment {document_id}",
            f"ليس في الطلب {request_id} مرفق {document_id}",
        )
    )


def _download_failed(why: str) -> Bilingual:
    # Why, as httpx or the server says it: in English.
    return Bilingual(f"download failed: {why}", f"فشل التنزيل: {why}")


def _cannot_write(target: Path, exc: OSError) -> Bilingual:
    # The system's reason (strerror) is in English.
    return Bilingual(
        f"cannot write {target}: {exc.strerror}", f"تتعذّر الكتابة في {target}: {exc.strerror}"
    )


def fetch(url: str, target: Path) -> int:
    """Streams the link to a .part file beside the target, then renames it: no half files."""
    partial = target.with_name(target.name + ".part")
    written = 0
    try:
        with (
            httpx.Client(timeout=DOWNLOAD_TIMEOUT) as http,
            http.stream("GET", url) as response,
        ):
            if response.status_code != httpx.codes.OK:
                raise Failure(_download_failed(f"HTTP {response.status_code}"))
            with partial.open("wb") as file:
                for chunk in response.iter_bytes():
                    written += file.write(chunk)
        partial.replace(target)
    except httpx.HTTPError as exc:
        raise Failure(_download_failed(str(exc))) from exc
    except OSError as exc:
        raise Failure(_cannot_write(target, exc)) from exc
    finally:
        partial.unlink(missing_ok=True)
    return written


@app.command()
def download(
    ctx: typer.Context,
    request_id: RequestId,
    document_id: Annotated[str, typer.Argument(help="The attachment's document id (`show`).")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="File or folder to save to; the attachment's name by default."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a file that is already there.")] = False,
) -> None:
    """Download an attachment through its presigned link."""
    attachment = run(ctx, lambda review: attachment_of(review, request_id, document_id))
    name = safe_file_name(attachment.filename, attachment.document_id)
    target = output or Path(name)
    try:
        if target.is_dir():
            target = target / name
        there = target.exists()
    except OSError as exc:  # a name -o gave too long, a folder not to be read
        cannot = _cannot_write(target, exc)
        fail(
            Bilingual(
                f"{cannot}; give another file or folder with -o",
                f"{cannot.ar}؛ أعطِ ملفًا أو مجلدًا آخر بـ -o",
            ),
            language_of(ctx),
        )
    if there and not force:
        fail(
            Bilingual(
                f"{target} is already there; pass --force to replace it",
                f"{target} موجود من قبل؛ مرّر --force لاستبداله",
            ),
            language_of(ctx),
        )
    try:
        written = fetch(attachment.download_url, target)
    except Failure as exc:
        fail(exc.message, language_of(ctx))
    console().print(line("saved ", value(attachment.filename), f" ({written} bytes) to {target}"))


# --- actions --------------------------------------------------------------------------------


async def add_note(review: Review, request_id: str, text: str) -> None:
    done = await review.call(
        review.service.AddNote, review_pb2.AddNoteRequest(request_id=request_id, text=text)
    )
    review.out.print(line("noted (internal) on ", title_line(done.item)), soft_wrap=True)


@app.command()
def note(
    ctx: typer.Context,
    request_id: RequestId,
    text: Annotated[str, typer.Argument(help="The note; only the office sees it.")],
) -> None:
    """Add an internal note; the beneficiary never sees it."""
    run(ctx, lambda review: add_note(review, request_id, text))


async def message_applicant(review: Review, request_id: str, text: str) -> None:
    done = await review.call(
        review.service.MessageApplicant,
        review_pb2.MessageApplicantRequest(request_id=request_id, text=text),
    )
    review.out.print(line("messaged the applicant of ", title_line(done.item)), soft_wrap=True)


@app.command()
def message(
    ctx: typer.Context,
    request_id: RequestId,
    text: Annotated[str, typer.Argument(help="The message, sent by SMS and shown in tracking.")],
) -> None:
    """Send the beneficiary a message."""
    run(ctx, lambda review: message_applicant(review, request_id, text))


def _missing_item(raw: str) -> common_pb2.MissingItem:
    kind, _, rest = raw.partition(":")
    name, _, description = rest.partition(":")
    if not (kind and name and description):
        raise typer.BadParameter(
            f"{raw!r} is not kind:name:description, e.g. "
            "document:personal_photo:A recent photo on a white background"
        )
    return common_pb2.MissingItem(kind=kind, name=name, description=description)


# What review takes (its handlers' MAX_RESPOND_WITHIN_DAYS; the field is an int32, so a larger
# number would not even reach it).
MAX_RESPOND_WITHIN_DAYS = 30


async def request_information(
    review: Review,
    request_id: str,
    missing: list[common_pb2.MissingItem],
    text: str,
    within: int,
) -> None:
    done = await review.call(
        review.service.RequestInformation,
        review_pb2.RequestInformationRequest(
            request_id=request_id,
            missing=missing,
            message=text,
            respond_within_working_days=within,
        ),
    )
    item = done.item
    until = f", to answer by {riyadh_time(item.respond_by)}" if item.HasField("respond_by") else ""
    review.out.print(
        line("asked the applicant of ", title_line(item), f" for {len(item.missing)} items{until}"),
        soft_wrap=True,
    )
    for entry in item.missing:
        review.out.print(missing_line(entry), soft_wrap=True)


@app.command(name="request-info")
def request_info(
    ctx: typer.Context,
    request_id: RequestId,
    missing: Annotated[
        list[str],
        typer.Option(
            help="What is missing, as kind:name:description (kind: document, field or other;"
            " a document's or a field's name as the sub-service's catalog spells it, e.g."
            " document:passport_copy:…); repeat for each item."
        ),
    ],
    message: Annotated[str, typer.Option(help="Shown to the beneficiary with the list.")] = "",
    within: Annotated[
        int,
        typer.Option(
            min=0,
            max=MAX_RESPOND_WITHIN_DAYS,
            help="Working days to answer in; the service's default when 0.",
        ),
    ] = 0,
) -> None:
    """Return the request to the beneficiary with what is missing; the SLA clock pauses."""
    items = [_missing_item(raw) for raw in missing]
    run(ctx, lambda review: request_information(review, request_id, items, message, within))


async def decide(
    review: Review, request_id: str, decision: review_pb2.Decision.ValueType, text: str, reason: str
) -> None:
    done = await review.call(
        review.service.DecideRequest,
        review_pb2.DecideRequestRequest(
            request_id=request_id, decision=decision, message=text, reason_code=reason
        ),
    )
    why = f" ({clean(done.item.reason_code)})" if done.item.reason_code else ""
    review.out.print(line(state_text(done.item), " ", title_line(done.item), why), soft_wrap=True)


MessageOption = Annotated[str, typer.Option(help="Shown to the beneficiary.")]
ReasonOption = Annotated[str, typer.Option(help="A reason code of `reasons`.")]


@app.command()
def accept(
    ctx: typer.Context,
    request_id: RequestId,
    message: MessageOption = "",
    reason: ReasonOption = "",
) -> None:
    """Accept a request you hold."""
    run(ctx, lambda review: decide(review, request_id, review_pb2.DECISION_ACCEPT, message, reason))


@app.command()
def reject(
    ctx: typer.Context,
    request_id: RequestId,
    message: MessageOption = "",
    reason: ReasonOption = "",
) -> None:
    """Reject a request you hold: --reason and --message (why, for the beneficiary) required."""
    if not reason or not message:
        fail(
            Bilingual(
                "a rejection needs --reason (a code of `reasons`) and --message for the"
                " beneficiary",
                "الرفض يحتاج --reason (رمزًا من `reasons`) و--message للمستفيد",
            ),
            language_of(ctx),
        )
    run(ctx, lambda review: decide(review, request_id, review_pb2.DECISION_REJECT, message, reason))


async def mark_processed(review: Review, request_id: str, text: str) -> None:
    done = await review.call(
        review.service.MarkProcessed,
        review_pb2.MarkProcessedRequest(request_id=request_id, message=text),
    )
    review.out.print(line(state_text(done.item), " ", title_line(done.item)), soft_wrap=True)


@app.command()
def processed(ctx: typer.Context, request_id: RequestId, message: MessageOption = "") -> None:
    """Mark an accepted request of your department processed: its transaction is done."""
    run(ctx, lambda review: mark_processed(review, request_id, message))


async def list_reasons(review: Review) -> None:
    answer = await review.call(review.service.ListReasons, review_pb2.ListReasonsRequest())
    table = Table()
    table.add_column("code", no_wrap=True)
    table.add_column("for")
    table.add_column("العربية")
    table.add_column("English")
    for reason in answer.reasons:
        table.add_row(
            Text(clean(reason.code)),
            Text(", ".join(clean(d) for d in reason.decisions)),
            Cell(reason.text.ar),
            Cell(reason.text.en),
        )
    review.out.print(table)


@app.command()
def reasons(ctx: typer.Context) -> None:
    """The reason codes for decisions, in Arabic and English."""
    run(ctx, list_reasons)


async def transfer_request(review: Review, request_id: str, department: str, reason: str) -> None:
    done = await review.call(
        review.service.TransferRequest,
        review_pb2.TransferRequestRequest(
            request_id=request_id, department_code=department, reason=reason
        ),
    )
    review.out.print(
        line("transferred ", title_line(done.item), " to ", clean(department)), soft_wrap=True
    )


@app.command()
def transfer(
    ctx: typer.Context,
    request_id: RequestId,
    to: Annotated[str, typer.Option("--to", help="The department it belongs to.")],
    reason: Annotated[str, typer.Option(help="Why it is misfiled; kept internal.")],
) -> None:
    """Send a misfiled request to another department's queue."""
    run(ctx, lambda review: transfer_request(review, request_id, to, reason))


async def release_request(review: Review, request_id: str) -> None:
    done = await review.call(
        review.service.ReleaseRequest, review_pb2.ReleaseRequestRequest(request_id=request_id)
    )
    review.out.print(
        line(
            "released ",
            title_line(done.item),
            " to the queue of ",
            clean(done.item.department_code),
        ),
        soft_wrap=True,
    )


@app.command()
def release(ctx: typer.Context, request_id: RequestId) -> None:
    """Give a request you hold back to its queue."""
    run(ctx, lambda review: release_request(review, request_id))


# --- supervisors and administrators ---------------------------------------------------------


async def show_backlog(review: Review, department: str) -> None:
    answer = await review.call(
        review.service.GetBacklog, review_pb2.GetBacklogRequest(department_code=department)
    )
    table = Table(title=f"backlog of {clean(department)}", title_justify="left")
    table.add_column("queue")
    for heading in ("size", "oldest", "due soon", "breached", "waiting"):
        table.add_column(heading, justify="right", no_wrap=heading == "oldest")
    for row in answer.queues:
        oldest = riyadh_time(row.oldest_queued_at) if row.HasField("oldest_queued_at") else "-"
        table.add_row(
            Text(clean(row.queue)),
            str(row.size),
            oldest,
            str(row.due_soon),
            str(row.breached),
            str(row.waiting_on_applicant),
        )
    review.out.print(table)


@app.command()
def backlog(ctx: typer.Context, department: Department) -> None:
    """For a department's supervisors: each queue's size, oldest, due soon and breached."""
    run(ctx, lambda review: show_backlog(review, department))


def _reviewers_table(reviewers: list[review_pb2.Reviewer]) -> Table:
    table = Table()
    for heading in ("reviewer", "departments", "languages", "capacity", "available", "supervises"):
        table.add_column(heading)
    for r in reviewers:
        table.add_row(
            Text(clean(r.reviewer_id)),
            Text(", ".join(clean(d) for d in r.departments)),
            Text(", ".join(clean(lang) for lang in r.languages)),
            str(r.capacity),
            "yes" if r.available else "away",
            Text(", ".join(clean(d) for d in r.supervises)),
        )
    return table


@dataclass(frozen=True)
class ReviewerChange:
    """The options `reviewer-put` was given; None leaves what the record holds."""

    departments: list[str] | None = None
    languages: list[str] | None = None
    capacity: int | None = None
    supervises: list[str] | None = None
    available: bool | None = None

    @property
    def whole(self) -> bool:
        """Whether every option but the departments was given: nothing of a record is kept."""
        fields = (self.languages, self.capacity, self.supervises, self.available)
        return all(given is not None for given in fields)

    def applied_to(self, reviewer: review_pb2.Reviewer) -> review_pb2.Reviewer:
        changed = review_pb2.Reviewer()
        changed.CopyFrom(reviewer)
        if self.departments is not None:
            # `-d ''` likewise: none, which takes them out of the departments a supervisor
            # supervises (an administrator's record needs one).
            changed.departments[:] = [d for d in self.departments if d]
        if self.languages is not None:
            changed.languages[:] = self.languages
        if self.capacity is not None:
            changed.capacity = self.capacity
        if self.supervises is not None:
            # `--supervises ''` is how to say none: an empty code is no department.
            changed.supervises[:] = [d for d in self.supervises if d]
        if self.available is not None:
            changed.available = self.available
        return changed


# What a reviewer added without the option has.
NEW_REVIEWER = review_pb2.Reviewer(languages=["ar", "en"], capacity=20, available=True)
# The most review takes (its domain's reviewers.MAX_CAPACITY).
MAX_CAPACITY = 500


async def stored_reviewer(review: Review, reviewer_id: str) -> review_pb2.Reviewer | None:
    """The reviewer's record, whatever their departments; None when they have none."""
    try:
        answer = await review.call(
            review.admin.GetReviewer, review_pb2.GetReviewerRequest(reviewer_id=reviewer_id)
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
            raise Failure(_unreadable(reviewer_id)) from exc
        raise
    return answer.reviewer


async def put_reviewer(review: Review, reviewer_id: str, change: ReviewerChange) -> None:
    # PutReviewer stores the record whole: the one read here, with the options given laid
    # over it, so that changing one keeps the others (a change made between the read and
    # the write is overwritten, as it would be by a whole record given by hand). With every
    # option given nothing is kept: nothing is read (one the caller may not read included).
    everything = change.whole and change.departments is not None
    existing = None if everything else await stored_reviewer(review, reviewer_id)
    added = existing is None
    if existing is None:
        existing = review_pb2.Reviewer(reviewer_id=reviewer_id)
        existing.MergeFrom(NEW_REVIEWER)
    if added and not everything and not any(change.departments or []):
        raise Failure(
            Bilingual(
                f"{reviewer_id} has no reviewer record: a new reviewer needs --department",
                f"{reviewer_id} ليس له سجل مراجع: المراجع الجديد يحتاج --department",
            )
        )
    answer = await review.call(
        review.admin.PutReviewer,
        review_pb2.PutReviewerRequest(reviewer=change.applied_to(existing)),
    )
    if added and not change.whole:
        # What they are stored with that was not given: a new reviewer's values.
        stored = _stored_as_new(reviewer_id)
        review.out.print(value(in_language(stored, review.language)), soft_wrap=True)
    review.out.print(_reviewers_table([answer.reviewer]))


def _stored_as_new(reviewer_id: str) -> Bilingual:
    reads, ar_reads = (glue.join(NEW_REVIEWER.languages) for glue in (" and ", " و "))
    return Bilingual(
        f"{reviewer_id} had no reviewer record, so was added as a new reviewer: what was not"
        f" given is a new reviewer's (reads {reads}, capacity {NEW_REVIEWER.capacity},"
        " available, supervises none)",
        f"{reviewer_id} لم يكن له سجل مراجع، فأُضيف مراجعًا جديدًا: ما لم يُعطَ هو ما للمراجع"
        f" الجديد (يقرأ {ar_reads}، السعة {NEW_REVIEWER.capacity}، متاح، لا يشرف على قسم)",
    )


def _unreadable(reviewer_id: str) -> Bilingual:
    return Bilingual(
        f"you may not read {reviewer_id}'s record, so what it holds cannot be kept: give"
        " --department, --reads, --capacity, --supervises and --available or --away, or ask"
        " an administrator",
        f"لا يحق لك قراءة سجل {reviewer_id}، فلا يمكن إبقاء ما فيه: أعطِ --department و--reads"
        " و--capacity و--supervises و--available أو --away، أو اطلب ذلك من مسؤول النظام",
    )


@app.command(name="reviewer-put")
def reviewer_put(
    ctx: typer.Context,
    reviewer_id: Annotated[str, typer.Argument(help="The reviewer's employee id.")],
    department: Annotated[
        list[str] | None,
        typer.Option(
            "--department",
            "-d",
            help="A department they review; repeat. Required for a new reviewer. '' for none: "
            "a supervisor takes them out of the departments they supervise.",
        ),
    ] = None,
    # Not --language: that is the CLI's own option (the messages' language), given before the
    # command; after it, it is refused rather than taken for what the reviewer reads.
    reads: Annotated[
        list[str] | None,
        typer.Option(
            "--reads",
            "-l",
            help="A language they read (ar, en, …); repeat. A new reviewer: ar and en.",
        ),
    ] = None,
    capacity: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_CAPACITY,
            help="How many items they may hold at once. A new reviewer: 20.",
            show_default=False,
        ),
    ] = None,
    supervises: Annotated[
        list[str] | None,
        typer.Option(
            help="A department they supervise; repeat; '' for none. A new reviewer: none."
        ),
    ] = None,
    away: Annotated[
        bool | None,
        typer.Option(
            "--away/--available",
            help="Store them as away, or as available. A new reviewer: available.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Add a reviewer, or change the options given of one and keep the rest (administrators,
    or the departments' supervisor), whatever departments their record leaves them in. One
    without a record is added: what is not given is a new reviewer's, and it says so."""
    change = ReviewerChange(
        departments=department,
        languages=reads,
        capacity=capacity,
        supervises=supervises,
        available=None if away is None else not away,
    )
    run(ctx, lambda review: put_reviewer(review, reviewer_id, change))


async def list_reviewers(review: Review, department: str) -> None:
    answer = await review.call(
        review.admin.ListReviewers, review_pb2.ListReviewersRequest(department_code=department)
    )
    review.out.print(_reviewers_table(list(answer.reviewers)))


@app.command()
def reviewers(ctx: typer.Context, department: Department) -> None:
    """A department's reviewers."""
    run(ctx, lambda review: list_reviewers(review, department))


async def set_availability(review: Review, reviewer_id: str, available: bool) -> None:
    answer = await review.call(
        review.admin.SetAvailability,
        review_pb2.SetAvailabilityRequest(reviewer_id=reviewer_id, available=available),
    )
    state = "available" if answer.reviewer.available else "away"
    review.out.print(line(clean(answer.reviewer.reviewer_id), f" is {state}"), soft_wrap=True)


OtherReviewer = Annotated[
    str, typer.Argument(help="Another reviewer's id (supervisors, administrators); you if empty.")
]


@app.command()
def away(ctx: typer.Context, reviewer_id: OtherReviewer = "") -> None:
    """Mark yourself (or a reviewer you supervise) away: no new work comes to them."""
    run(ctx, lambda review: set_availability(review, reviewer_id, False))


@app.command()
def available(ctx: typer.Context, reviewer_id: OtherReviewer = "") -> None:
    """Mark yourself (or a reviewer you supervise) available again."""
    run(ctx, lambda review: set_availability(review, reviewer_id, True))


async def reassign_request(review: Review, request_id: str, reviewer_id: str) -> None:
    done = await review.call(
        review.service.Reassign,
        review_pb2.ReassignRequest(request_id=request_id, reviewer_id=reviewer_id),
    )
    holder = clean(done.item.assignee_id) or "the queue"
    review.out.print(line("gave ", title_line(done.item), " to ", holder), soft_wrap=True)


@app.command()
def reassign(
    ctx: typer.Context,
    request_id: RequestId,
    to: Annotated[
        str, typer.Option("--to", help="A reviewer of its department; empty: queue.")
    ] = "",
) -> None:
    """For supervisors: give an open request to a reviewer, or back to its queue."""
    run(ctx, lambda review: reassign_request(review, request_id, to))


def _quality_table(title: str, checks: list[review_pb2.QualityCheck], done: bool) -> Table:
    # As the queue's, a few columns of a few lines each, so that it fits 80 columns with the
    # request's number and id (whole, for `quality-check`), the decision and who made it, and
    # with --all the check and who made it, whole: only the checker's note (why they disagree),
    # the last column, wraps. Checks waiting have no check or note to show.
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("request", no_wrap=True)
    table.add_column("decision", no_wrap=True)
    if done:
        table.add_column("check", no_wrap=True)
        table.add_column("note")
    for c in checks:
        request = [clean(c.request_number), clean(c.request_id)]
        if c.HasField("sampled_at"):
            request.append(f"sampled {riyadh_time(c.sampled_at)}")
        decision = ["accept" if c.decision == review_pb2.DECISION_ACCEPT else "reject"]
        if c.replaced_by:  # made on an appeal, in place of the replaced one's rejection
            decision.append(f"appeal of {clean(c.replaced_by)}")
        decision.append(f"by {clean(c.decided_by)}")
        check = [clean(c.verdict) or "-", *([f"by {clean(c.checked_by)}"] if c.checked_by else [])]
        table.add_row(
            Text("\n".join(request)),
            Text("\n".join(decision)),
            *([Text("\n".join(check)), Cell(c.note) if c.note else Text("-")] if done else []),
        )
    return table


async def list_quality_checks(
    review: Review, request: review_pb2.ListQualityChecksRequest, again: Command
) -> None:
    answer = await review.call(review.service.ListQualityChecks, request)
    title = f"quality checks of {clean(request.department_code)}"
    review.out.print(_quality_table(title, list(answer.checks), request.include_done))
    print_more(review, again, answer.next_page_token)


@app.command()
def quality(
    ctx: typer.Context,
    department: Department,
    all_checks: Annotated[
        bool,
        typer.Option("--all", help="The most recent checks, made or not, newest first."),
    ] = False,
    page_token: PageToken = "",
    page_size: Annotated[
        int, typer.Option(min=0, max=500, help="Checks a page; the service's default when 0.")
    ] = 0,
) -> None:
    """For supervisors: the sampled decisions waiting for a second look, oldest first."""
    request = review_pb2.ListQualityChecksRequest(
        department_code=department,
        include_done=all_checks,
        page_size=page_size,
        page_token=page_token,
    )
    again = Command(
        "quality",
        [department],
        [("--all", all_checks), ("--page-size", page_size)],
        typed_before(ctx),
    )
    run(ctx, lambda review: list_quality_checks(review, request, again))


async def complete_check(review: Review, request_id: str, verdict: str, note: str) -> None:
    answer = await review.call(
        review.service.CompleteQualityCheck,
        review_pb2.CompleteQualityCheckRequest(request_id=request_id, verdict=verdict, note=note),
    )
    review.out.print(
        line("checked ", clean(answer.check.request_number), ": ", clean(answer.check.verdict)),
        soft_wrap=True,
    )


@app.command(name="quality-check")
def quality_check(
    ctx: typer.Context,
    request_id: RequestId,
    verdict: Annotated[str, typer.Option(help="agree or disagree.")],
    note: Annotated[str, typer.Option(help="Why, required to disagree.")] = "",
) -> None:
    """Give your verdict on another reviewer's sampled decision."""
    run(ctx, lambda review: complete_check(review, request_id, verdict, note))


_MODES = {
    "pull": review_pb2.ASSIGNMENT_MODE_PULL,
    "round-robin": review_pb2.ASSIGNMENT_MODE_ROUND_ROBIN,
    "least-loaded": review_pb2.ASSIGNMENT_MODE_LEAST_LOADED,
}


async def put_queue_mode(review: Review, queue: str, mode: str) -> None:
    answer = await review.call(
        review.admin.PutQueueSettings,
        review_pb2.PutQueueSettingsRequest(
            settings=review_pb2.QueueSettings(queue=queue, mode=_MODES[mode])
        ),
    )
    review.out.print(line(clean(answer.settings.queue), f" now {mode}"), soft_wrap=True)


@app.command(name="queue-mode")
def queue_mode(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="A queue, e.g. passports.default.")],
    mode: Annotated[str, typer.Argument(help="pull, round-robin or least-loaded.")],
) -> None:
    """How a queue hands out work (administrators, or the department's supervisor)."""
    if mode not in _MODES:
        fail(
            Bilingual(
                "mode: pull, round-robin or least-loaded",
                "mode: pull أو round-robin أو least-loaded",
            ),
            language_of(ctx),
        )
    run(ctx, lambda review: put_queue_mode(review, queue, mode))


def main() -> None:
    # Refused before typer parses them: a value read from a file in another encoding would
    # otherwise end in a traceback wherever a request or a line printed first takes it.
    arguments = sys.argv[1:]
    for number, argument in enumerate(arguments, start=1):
        if not is_text(argument):
            what = not_text(Bilingual(f"argument {number}", f"الوسيط {number}"))
            said = in_language(what, _language_asked(arguments))
            console(stderr=True).print(line("error: ", said), soft_wrap=True)
            sys.exit(1)
    app(prog_name=PROG)


def _language_asked(arguments: list[str]) -> str:
    """The language asked for, as the options will give it once typer parses them: the last
    --language, else TAWASUL_LANGUAGE, else Arabic."""
    asked = os.environ.get("TAWASUL_LANGUAGE", DEFAULT_LOCALE)
    for option, given in zip(arguments, [*arguments[1:], ""], strict=True):
        if option == "--language":
            asked = given
        elif option.startswith("--language="):
            asked = option.removeprefix("--language=")
    return asked
