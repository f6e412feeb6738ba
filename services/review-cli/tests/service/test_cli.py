"""The reviewers' CLI against review's real gRPC server, in-process on a real PostgreSQL.

The server is built by review's composition root, as in review's test_review_grpc.py; work
items arrive through the enqueue use case, as the routed-event subscriber puts them; docs stands
outside this tier (a stand-in giving each request one attachment, whose link a small local
HTTP server answers). The CLI runs as a reviewer runs it, through typer's CliRunner: its
arguments, its own event loop and channel, its stdout, stderr and exit status.

Why a worker thread: CliRunner is synchronous and the CLI calls asyncio.run, which cannot run
inside this test's event loop, where the server lives. Each invocation therefore runs in a
worker thread (asyncio.to_thread): it gets its own loop there, and this loop stays free to
serve its calls. One invocation runs at a time, since CliRunner swaps sys.stdout, sys.stderr
and os.environ for the whole process while it runs.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import tawasul_review
from tawasul.review.v1 import review_pb2, review_pb2_grpc
from tawasul_calendar import RIYADH, Sla
from tawasul_devstack.identity import throwaway
from tawasul_platform.errors import Unavailable
from tawasul_platform.grpc import bearer
from tawasul_platform.hygiene import CONTROL
from tawasul_platform.identity import Principal, Role
from tawasul_platform.migrations import upgrade
from tawasul_platform.sql import Database
from tawasul_platform.testing import async_engine, serving_file
from tawasul_platform.tls import open_channel
from tawasul_review import bootstrap
from tawasul_review.adapters.repository import ReviewUnitOfWork
from tawasul_review.app import handlers
from tawasul_review.app.ports import Attachment
from tawasul_review.domain.model import Contact, WorkItem
from tawasul_review.domain.quality import sampled
from tawasul_review.settings import ReviewSettings
from tawasul_review_cli.cli import app
from tawasul_review_cli.pending import PendingClaim
from tawasul_review_cli.terminal import LRI, PDI, RLI, clean
from typer.testing import CliRunner, Result

MIGRATIONS = Path(tawasul_review.__file__).resolve().parent / "migrations"
IDENTITY = throwaway()
ADMIN_ID = "A001"
# Sunday 4 January 2026, 10:00 in Riyadh.
START = datetime(2026, 1, 4, 10, 0, tzinfo=RIYADH)
PDF = b"%PDF-1.7 the applicant's scan"

ARABIC = "لا تظهر الصورة عند تجديد جواز السفر"
# What a hostile applicant might type: colours, a hidden OSC 8 link, a carriage return that
# overwrites the line, a right-to-left override that flips "exe.pdf", and line breaks; a NUL
# cannot be stored in PostgreSQL text, so it comes in the file name that docs reports.
HOSTILE = (
    "\x1b[31mURGENT\x1b[0m \x1b]8;;https://evil.example/\x07click here\x1b]8;;\x07"
    "\rAPPROVED invoice\u202efdp.exe\nsecond line"
)
HOSTILE_FILENAME = "\x1b]8;;https://evil.example/\x07passport\x00.pdf\x1b]8;;\x07"


def token(subject: str, *departments: str) -> str:
    return IDENTITY.token_for(Principal(subject, Role.REVIEWER, frozenset(departments)))


ADMIN = token(ADMIN_ID)
ALI = token("E100", "passports")
SARA = token("E200", "passports")
VISAS_ONLY = token("E300", "visas")
BOSS = token("S001", "passports")


@pytest.fixture(scope="module")
def storage() -> Iterator[str]:
    """Object storage stands outside this tier: every presigned link answers the same file."""
    with serving_file(PDF, "application/pdf") as url:
        yield url


class Docs:
    """Docs stands outside this tier: one attachment per request, its name the applicant's."""

    def __init__(self, storage: str) -> None:
        self.storage = storage
        # Docs cannot answer now (the adapter translates its UNAVAILABLE so).
        self.down = False
        # Documents docs will not give (the adapter lists them without a link).
        self.not_given: set[str] = set()

    async def download_links(self, document_ids: tuple[str, ...], token: str) -> list[Attachment]:
        if self.down:
            raise Unavailable("docs is unavailable (UNAVAILABLE)")
        expires = START + timedelta(minutes=5)
        return [
            Attachment.not_given(d)
            if d in self.not_given
            else Attachment(
                d,
                HOSTILE_FILENAME,
                "application/pdf",
                len(PDF),
                f"{self.storage}/{d}",
                expires,
                kind="passport_copy",
            )
            for d in document_ids
        ]


class Review:
    def __init__(
        self,
        port: int,
        database: Database,
        rules: handlers.Policy,
        channel: grpc.aio.Channel,
        docs: Docs,
        state: Path,
    ) -> None:
        self.address = f"127.0.0.1:{port}"
        # The CLI's own files ($XDG_STATE_HOME): this test's, not the machine's user's.
        self.state = state
        self.docs = docs
        self.database = database
        self.rules = rules
        self.stub = review_pb2_grpc.ReviewServiceStub(channel)
        self.admin = review_pb2_grpc.ReviewAdminServiceStub(channel)
        self.now = START
        self.numbers = 0
        self.runner = CliRunner()

    async def enqueue(
        self,
        description: str = ARABIC,
        department: str = "passports",
        fields: dict[str, str] | None = None,
        cites: str = "",
        subject_id: str = "",
        names: tuple[str, ...] = (),
    ) -> str:
        """A routed request joins its queue, as review's routed-event subscriber does it."""
        self.numbers += 1
        self.now += timedelta(minutes=1)
        item = WorkItem.enqueue(
            request_id=uuid.uuid4(),
            request_number=f"TW{self.numbers:09d}",
            department=department,
            queue=f"{department}.default",
            sub_service_code=f"{department}.general",
            description=description,
            applicant_id="1000000008",
            document_ids=("d1",),
            contact=Contact("+966551234567", "", "ar"),
            now=self.now,
            sla=Sla.days(5),
            fields=fields,
            cites_request_number=cites,
            subject_id=subject_id,
            names=names,
        )
        await handlers.enqueue(
            uow=ReviewUnitOfWork(self.database),
            routed=[(str(uuid.uuid4()), item)],
            policy=self.rules,
            now=self.now,
        )
        return str(item.request_id)

    async def cli(self, *args: str, who: str = ALI, columns: int = 160) -> Result:
        """One run of the CLI as the reviewer `who`, in a worker thread (see the top)."""
        env: dict[str, str | None] = {
            "TAWASUL_REVIEW_ADDRESS": self.address,
            "TAWASUL_REVIEWER_TOKEN": who,
            "XDG_STATE_HOME": str(self.state),
            "COLUMNS": str(columns),
            # Plain text whatever the environment asks: rich's own colours are escapes too.
            "FORCE_COLOR": None,
            "TTY_COMPATIBLE": None,
        }
        result = await asyncio.to_thread(
            self.runner.invoke, app, list(args), env=env, catch_exceptions=False
        )
        assert "Traceback" not in result.output
        return result

    async def ok(self, *args: str, who: str = ALI, columns: int = 160) -> str:
        result = await self.cli(*args, who=who, columns=columns)
        assert result.exit_code == 0, result.output
        return result.stdout

    async def case(self, request_id: str) -> review_pb2.GetCaseResponse:
        return await self.stub.GetCase(
            review_pb2.GetCaseRequest(request_id=request_id), timeout=5, metadata=bearer(ALI)
        )


@pytest.fixture
async def review(database_url: str, storage: str, tmp_path: Path) -> AsyncIterator[Review]:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    engine = async_engine(database_url, pool_size=5)
    database = Database(engine.sync_engine)
    settings = ReviewSettings(
        database_url=database_url,
        kafka_bootstrap="127.0.0.1:1",
        grpc_address="127.0.0.1:0",
        identity_issuers=IDENTITY.issuers(),
        docs_address="127.0.0.1:1",
        review_admins=ADMIN_ID,
    )
    rules = bootstrap.policy(settings)
    holder: list[Review] = []
    docs = Docs(storage)
    server = bootstrap.grpc_server(
        settings,
        uow=lambda: ReviewUnitOfWork(database),
        documents=docs,
        rules=rules,
        now=lambda: holder[0].now,
    )
    await server.start()
    await server.serving(True)
    channel = open_channel(f"127.0.0.1:{server.port}", None)
    holder.append(Review(server.port, database, rules, channel, docs, tmp_path / "state"))
    yield holder[0]
    await channel.close()
    await server.stop(1)
    await engine.dispose()


def more(output: str) -> list[str]:
    """The command the `more:` line gives for the next page, as the shell splits it."""
    (typed,) = [x.removeprefix("more: ") for x in output.splitlines() if x.startswith("more: ")]
    words = shlex.split(typed)
    assert words[0] == "tawasul-review-cli"
    return words[1:]


def balanced(output: str) -> None:
    """Every printed line closes each isolate it opens."""
    for line in output.splitlines():
        assert line.count(RLI) + line.count(LRI) == line.count(PDI), line


def unescaped(output: str) -> None:
    """Nothing of the applicant's reaches the terminal as a control or an override."""
    for forbidden in ("\x1b", "\x07", "\r", "\x00", "\u202e", "\x9b"):
        assert forbidden not in output


# --- neutralising applicant text ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "␛[31mred␛[0m"),
        (
            "\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07",
            "␛]8;;https://evil.example/␇click␛]8;;␇",
        ),
        ("PENDING\rAPPROVED", "PENDING␍APPROVED"),
        ("a\x00b", "a␀b"),
        ("invoice\u202efdp.exe", "invoice\ufffdfdp.exe"),
        (
            "\u2067spoof\u2069 \u202a\u202b\u202c\u202d\u2066\u2068",
            "\ufffdspoof\ufffd " + "\ufffd" * 6,
        ),
        ("\x9b31m", "\ufffd31m"),
        ("one\r\ntwo\nthree\u2028four", "one⏎two⏎three⏎four"),
        ("tab\there\x7f", "tab␉here␡"),
        (ARABIC + " ok", ARABIC + " ok"),
    ],
)
def test_clean_makes_controls_escapes_and_overrides_visible_and_inert(raw: str, shown: str) -> None:
    assert clean(raw) == shown


# --- the queue ------------------------------------------------------------------------------


async def test_queue_lists_pages_and_filters(review: Review) -> None:
    first = await review.enqueue()
    second = await review.enqueue("The photo does not appear when renewing")
    third = await review.enqueue()
    await review.ok("claim", second, who=SARA)

    listed = await review.ok("queue", "passports")
    assert "queue passports: 3 on this page" in listed
    for number, request_id in (("TW000000001", first), ("TW000000002", second)):
        assert number in listed
        assert request_id in listed
    assert "more:" not in listed
    # The Arabic description reads right-to-left inside its cell.
    assert f"{RLI}{ARABIC}{PDI}" in listed
    balanced(listed)

    page = await review.ok("queue", "passports", "--page-size", "2")
    assert first in page
    assert second in page
    assert third not in page
    again = more(page)
    assert again == ["queue", "--page-size", "2", "--page-token", again[4], "passports"]
    rest = await review.ok(*again)
    assert third in rest
    assert first not in rest
    assert "more:" not in rest

    held = await review.ok("queue", "passports", "--state", "claimed")
    assert second in held
    assert first not in held
    assert "E200" in held
    mine = await review.ok("queue", "passports", "--assignee", "E200")
    assert second in mine
    assert third not in mine
    # The next page keeps every filter given.
    queued = await review.ok("queue", "passports", "--state", "queued", "--page-size", "1")
    assert first in queued
    again = more(queued)
    assert again[:5] == ["queue", "--state", "queued", "--page-size", "1"]
    last = await review.ok(*again)
    assert third in last
    assert second not in last
    other = await review.ok("queue", "passports", "--sub-service", "visas.general")
    assert "0 on this page" in other


async def test_search_finds_arabic_as_typed_within_your_departments(review: Review) -> None:
    arabic = await review.enqueue()
    english = await review.enqueue("The PHOTO does not appear when renewing")
    visa = await review.enqueue(department="visas")
    found = await review.ok("search", "الصوره تجديد")
    assert "search (text): 1 on this page" in found
    assert arabic in found
    assert f"{RLI}{ARABIC}{PDI}" in found
    balanced(found)
    assert english in await review.ok("search", "photo", "--kind", "text")
    everything = await review.ok("search", "--page-size", "1", "--state", "queued")
    assert english in everything
    again = more(everything)
    assert again == ["search", "--state", "queued", "--page-size", "1", "--page-token", again[6]]
    assert "0 on this page" in await review.ok("search", "--sla", "breached")
    assert "0 on this page" in await review.ok("search", "--since", "2030-01-01")
    assert "2 on this page" in await review.ok("search", "1000000008", "--until", "2030-01-01")
    # Both ends are whole days in Riyadh: the day the requests came in finds them.
    day = ("--since", "2026-01-04", "--until", "2026-01-04")
    assert "2 on this page" in await review.ok("search", *day)
    assert "0 on this page" in await review.ok("search", "--until", "2026-01-03")
    # Nothing of passports for a reviewer of visas only: their own department's request.
    other = await review.ok("search", "الصورة", who=VISAS_ONLY)
    assert "1 on this page" in other
    assert visa in other
    assert arabic not in other


async def test_the_next_page_of_a_search_keeps_its_query_and_filters(review: Review) -> None:
    first = await review.enqueue()
    second = await review.enqueue()
    await review.enqueue("The photo does not appear when renewing")
    found = await review.ok(
        "search", "الصوره تجديد", "--kind", "text", "--until", "2030-01-01", "--page-size", "1"
    )
    assert second in found
    line = next(x for x in found.splitlines() if x.startswith("more: "))
    assert "'الصوره تجديد'" in line  # quoted for the shell, not isolated
    again = more(found)
    assert again == [
        "search", "--kind", "text", "--until", "2030-01-01", "--page-size", "1",
        "--page-token", again[8], "الصوره تجديد",
    ]  # fmt: skip
    rest = await review.ok(*again)
    assert "search (text): 1 on this page" in rest
    assert first in rest
    assert "more:" not in rest


async def test_search_refusals_name_the_field(review: Review) -> None:
    result = await review.cli("search", "في")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: INVALID_ARGUMENT: ")
    assert "query" in result.stderr
    result = await review.cli("search", "--since", "31/01/2026")
    assert result.exit_code == 1
    assert "--since" in result.stderr


async def test_search_takes_the_first_and_last_days_it_offers(review: Review) -> None:
    await review.enqueue()
    found = await review.ok("search", "--since", "2000-01-02", "--until", "2099-12-31")
    assert "search (text): 1 on this page" in found


async def test_a_department_not_yours_is_refused(review: Review) -> None:
    await review.enqueue()
    result = await review.cli("queue", "passports", who=VISAS_ONLY)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: PERMISSION_DENIED: ")
    assert result.stdout == ""


async def test_without_a_token_nothing_is_called(review: Review) -> None:
    result = await review.cli("queue", "passports", who="")
    assert (result.exit_code, result.stderr) == (
        1,
        "error: لا رمز للمراجع: مرّر --token أو اضبط TAWASUL_REVIEWER_TOKEN\n",
    )


async def test_a_token_read_from_a_file_with_windows_line_endings_signs_in(review: Review) -> None:
    await review.enqueue()
    claimed = await review.ok("next", who=f" {ALI}\r\n")
    assert claimed.startswith("claimed TW000000001")


async def test_next_claims_by_priority_then_says_nothing_waits(review: Review) -> None:
    first = await review.enqueue()
    claimed = await review.ok("next", "--department", "passports")
    assert claimed.startswith(f"claimed TW000000001  {first} until 2026-01-04 10:31")
    assert f"{RLI}{ARABIC}{PDI}" in claimed
    assert (await review.ok("next")).strip() == "nothing is waiting in your queues"
    case = await review.case(first)
    assert (case.item.state, case.item.assignee_id) == (review_pb2.WORK_ITEM_STATE_CLAIMED, "E100")


async def test_next_after_a_lost_answer_gets_the_request_that_claimed(review: Review) -> None:
    first, second = await review.enqueue(), await review.enqueue()
    # A `next` that kept its key and sent it, whose answers never came back.
    kept = review.state / "tawasul-review-cli" / "pending-claims"
    pending = PendingClaim(review.address, "E100", "", kept)  # E100: ALI's token's subject
    key = pending.key(datetime.now(UTC))
    lost = await review.stub.ClaimNext(
        review_pb2.ClaimNextRequest(idempotency_key=key), timeout=5, metadata=bearer(ALI)
    )
    assert lost.item.request_id == first
    # Run again, `next` gets it, not the second one; then the second, under a key of its own.
    assert first in await review.ok("next")
    assert (await review.case(second)).item.state == review_pb2.WORK_ITEM_STATE_QUEUED
    assert second in await review.ok("next")
    assert not kept.exists()


# --- a case and its actions -----------------------------------------------------------------


async def test_show_gives_the_requests_fields(review: Review) -> None:
    request_id = await review.enqueue(
        fields={"passport_number": "A1234567", "national_id": "1012345672"}
    )
    lines = (await review.ok("show", request_id)).splitlines()
    fields = lines[lines.index("fields") + 1 : lines.index("fields") + 3]
    shown = [re.sub("[\u2066-\u2069]", "", f).strip() for f in fields]
    assert shown == ["national_id: 1012345672", "passport_number: A1234567"]


async def test_every_listing_and_the_case_say_whom_the_request_is_about(review: Review) -> None:
    names = ("فاطمة مصطفى عبدالله", "Fatimah Mustafa Abdullah")
    request_id = await review.enqueue(subject_id="2123456789", names=names)
    shown = await review.ok("show", request_id)
    lines = shown.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("subject"))
    assert lines[at].split() == ["subject", "2123456789"]
    assert lines[at + 1].startswith("names")
    assert f"{RLI}{names[0]}{PDI}" in lines[at + 1]
    assert lines[at + 2].strip() == names[1]
    balanced(shown)
    for listed in (
        await review.ok("queue", "passports"),
        await review.ok("search", "--department", "passports"),
    ):
        row = [x for x in listed.splitlines() if "subject" in x]
        assert [x.strip("│ ").split("  ")[0] for x in row] == ["subject 2123456789"]
    # Filed for oneself: the applicant is the subject.
    own = (await review.ok("show", await review.enqueue())).splitlines()
    assert ["subject", "1000000008"] in [x.split() for x in own]


async def test_show_names_the_rejected_request_it_corrects(review: Review) -> None:
    request_id = await review.enqueue(cites="TW251234560")
    shown = [
        re.sub("[\u2066-\u2069]", "", x) for x in (await review.ok("show", request_id)).splitlines()
    ]
    assert [x.split() for x in shown if "corrects" in x] == [
        ["corrects", "TW251234560", "(rejected)"]
    ]
    plain = await review.ok("show", await review.enqueue())
    assert "corrects" not in plain


async def test_show_says_why_the_request_it_corrects_was_rejected(review: Review) -> None:
    rejected = await review.enqueue()
    await review.ok("claim", rejected)
    message = "الصورة قديمة جدًا، يرجى إرفاق صورة حديثة بخلفية بيضاء وفق المواصفات المطلوبة"
    await review.ok("reject", rejected, "--reason", "documents-unclear", "--message", message)
    number = (await review.case(rejected)).item.request_number
    citing = await review.enqueue(cites=number)
    lines = (await review.ok("show", citing)).splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("corrects"))
    assert lines[at].split() == ["corrects", number, "(rejected:", "documents-unclear)"]
    assert lines[at + 1].strip() == "The attachments are unclear or unreadable"
    assert lines[at + 2].strip() == f"{RLI}{message}{PDI}"
    # Wrapped in a narrow terminal: each line of the message isolated by itself.
    narrow = await review.ok("show", citing, columns=50)
    balanced(narrow)
    facts = narrow.splitlines()[: narrow.splitlines().index("description")]
    wrapped = [x for x in facts if RLI in x]
    assert len(wrapped) > 1
    assert " ".join(re.sub("[\u2066-\u2069]", "", x).strip() for x in wrapped) == message


async def test_show_lists_an_attachment_docs_will_not_give_without_a_link(
    review: Review, tmp_path: Path
) -> None:
    request_id = await review.enqueue()
    review.docs.not_given = {"d1"}
    lines = (await review.ok("show", request_id)).splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("attachments"))
    assert lines[at : at + 2] == ["attachments: 1", "  d1  (docs does not give it: no link)"]
    refused = await review.cli(
        "--language", "en", "download", request_id, "d1", "--output", str(tmp_path)
    )
    assert refused.exit_code == 1
    assert refused.stderr == "error: docs does not give attachment d1: no link\n"
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []


async def test_show_says_the_links_wait_while_docs_is_down(review: Review, tmp_path: Path) -> None:
    request_id = await review.enqueue()
    review.docs.down = True
    lines = (await review.ok("show", request_id)).splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("attachments"))
    assert lines[at] == "attachments: 1, links unavailable (docs is down): try show again later"
    assert lines[at + 1].strip() == "d1"
    refused = await review.cli("download", request_id, "d1", "--output", str(tmp_path))
    assert refused.exit_code == 1
    assert refused.stderr == "error: الروابط غير متاحة (خدمة المستندات متوقفة): حاول لاحقًا\n"


async def test_show_gives_the_case_with_its_attachment_link_and_history(review: Review) -> None:
    request_id = await review.enqueue(HOSTILE)
    review.now += timedelta(days=2)
    await review.ok("claim", request_id)
    review.now += timedelta(minutes=10)
    assert "noted (internal) on TW000000001" in await review.ok(
        "note", request_id, "ملاحظة داخلية: الصورة قديمة"
    )
    await review.ok("message", request_id, "Please wait, we are checking")

    shown = await review.ok("show", request_id)
    lines = shown.splitlines()
    assert lines[0] == f"TW000000001  {request_id}"
    facts = dict(
        re.split(r" {2,}", line.strip(), maxsplit=1)
        for line in lines[1 : lines.index("description")]
    )
    # Every action of the holder renews the claim.
    assert facts["state"] == "claimed by E100 until 2026-01-06 10:41"
    used = (await review.case(request_id)).item.sla_percent_used
    assert used > 0
    assert facts["due"] == f"2026-01-11 10:01  (SLA {used} % used)"
    assert facts["submitted"] == "2026-01-04 10:01"
    # What each attachment is in the sub-service's schema, with its type and size.
    assert f"(passport_copy, application/pdf, {len(PDF)} bytes, link until " in shown
    # The link is a line of its own, whole, whatever the width.
    narrow = await review.ok("show", request_id, columns=40)
    for output in (shown, narrow):
        links = [line for line in output.splitlines() if line.startswith("http")]
        assert len(links) == 1
        assert links[0].startswith("http://127.0.0.1:")
        assert links[0].endswith("/d1")
    # History: the note marked internal, the message not.
    note = next(line for line in lines if "ملاحظة داخلية" in line)
    assert "note (internal)" in note
    assert f"{RLI}ملاحظة داخلية: الصورة قديمة{PDI}" in note
    message = next(line for line in lines if "Please wait" in line)
    assert "message" in message
    assert "(internal)" not in message
    assert any("claimed" in line and "E100" in line for line in lines)
    # The applicant's description and file name, neutralised.
    unescaped(shown)
    unescaped(narrow)
    assert "␛[31mURGENT␛[0m ␛]8;;https://evil.example/␇click here␛]8;;␇␍APPROVED" in shown
    assert "invoice\ufffdfdp.exe⏎second line" in shown
    assert "␛]8;;https://evil.example/␇passport␀.pdf␛]8;;␇" in shown
    balanced(shown)
    balanced(narrow)


async def test_arabic_wrapped_in_a_narrow_cell_keeps_each_line_isolated(review: Review) -> None:
    long = " ".join([ARABIC] * 4)
    await review.enqueue(long)
    listed = await review.ok("queue", "passports", columns=80)
    arabic_lines = [line for line in listed.splitlines() if RLI in line]
    assert len(arabic_lines) > 1
    balanced(listed)


async def test_request_info_lists_what_is_missing(review: Review) -> None:
    request_id = await review.enqueue()
    await review.ok("claim", request_id)
    asked = await review.ok(
        "request-info",
        request_id,
        "--missing",
        "document:personal_photo:صورة حديثة بخلفية بيضاء",
        "--missing",
        "field:loss_date:The date the passport was lost",
        "--message",
        "Please add these",
        "--within",
        "3",
    )
    assert "asked the applicant of TW000000001" in asked
    # Three working days from Sunday 10:01: Wednesday, to its end.
    assert "for 2 items, to answer by 2026-01-07 23:59" in asked
    assert f"  - document personal_photo: {RLI}صورة حديثة بخلفية بيضاء{PDI}" in asked
    shown = await review.ok("show", request_id)
    assert "waiting on applicant" in shown
    assert re.search(r"^respond by +2026-01-07 23:59 *$", shown, re.MULTILINE)
    assert "  - field loss_date: The date the passport was lost" in shown

    refused = await review.cli("request-info", request_id, "--missing", "photo:x:y")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: ")
    malformed = await review.cli("request-info", request_id, "--missing", "no-colons")
    assert malformed.exit_code == 2
    assert "kind:name:description" in malformed.output


async def test_a_bad_missing_kind_prints_the_field_violation(review: Review) -> None:
    request_id = await review.enqueue()
    await review.ok("claim", request_id)
    result = await review.cli("request-info", request_id, "--missing", "photo:personal:Add it")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: INVALID_ARGUMENT: " + result.stderr.splitlines()[0].split(": ", 2)[2],
        "  missing[0].kind: \u2066'document' أو 'field' أو 'other'\u2069",
    ]


async def test_reject_needs_a_reason_and_a_message(review: Review) -> None:
    request_id = await review.enqueue()
    await review.ok("claim", request_id)

    without = await review.cli(
        "--language", "en", "reject", request_id, "--message", "The photo is too old to use"
    )
    assert without.exit_code == 1
    assert without.stderr == (
        "error: a rejection needs --reason (a code of `reasons`) and --message for the "
        "beneficiary\n"
    )
    unknown = await review.cli(
        "reject", request_id, "--reason", "no-such", "--message", "The photo is too old to use"
    )
    assert unknown.exit_code == 1
    assert "error: INVALID_ARGUMENT: " in unknown.stderr
    assert "  reason_code: \u2067ليس سببًا من قائمة الأسباب (ListReasons)\u2069" in unknown.stderr
    assert (await review.case(request_id)).item.state == review_pb2.WORK_ITEM_STATE_CLAIMED

    rejected = await review.ok(
        "reject",
        request_id,
        "--reason",
        "documents-unclear",
        "--message",
        "The photo is too old to use",
    )
    assert rejected.strip() == f"rejected TW000000001  {request_id} (documents-unclear)"
    decided = (await review.case(request_id)).item
    assert (decided.decision, decided.reason_code) == (
        review_pb2.DECISION_REJECT,
        "documents-unclear",
    )


async def test_accept(review: Review) -> None:
    request_id = await review.enqueue()
    await review.ok("claim", request_id)
    accepted = await review.ok("accept", request_id, "--message", "Photo fixed")
    assert accepted.strip() == f"accepted TW000000001  {request_id}"


async def test_processed_marks_an_accepted_request_done(review: Review) -> None:
    request_id = await review.enqueue()
    await review.ok("claim", request_id)
    early = await review.cli("processed", request_id)
    assert early.exit_code == 1
    assert early.stderr.startswith("error: FAILED_PRECONDITION: ")
    await review.ok("accept", request_id, "--message", "Photo fixed")
    done = await review.ok("processed", request_id, "--message", "Collect it in Riyadh", who=SARA)
    assert done.strip() == f"processed TW000000001  {request_id}"
    listed = await review.ok("queue", "passports", "--state", "processed")
    assert "TW000000001" in listed


async def test_the_services_refusals_are_in_arabic_unless_english_is_asked_for(
    review: Review,
) -> None:
    """SPEC §2: Arabic is the default, English available (--language, TAWASUL_LANGUAGE)."""
    request_id = await review.enqueue()
    await review.ok("claim", request_id)
    arabic = await review.cli("processed", request_id)
    assert arabic.stderr == (
        "error: FAILED_PRECONDITION: الطلب TW000000001 غير مقبول: لا تُسجَّل إلا معالجة طلب مقبول\n"
    )
    english = await review.cli("--language", "en", "processed", request_id)
    assert english.stderr == (
        "error: FAILED_PRECONDITION: request TW000000001 is claimed: only an accepted request"
        " is processed\n"
    )
    # Each field's problem too.
    bad = await review.cli("note", request_id, "تم\x1b[31m")
    assert bad.stderr.splitlines()[1:] == [f"  text: {RLI}{CONTROL.ar}{PDI}"]


async def test_only_the_holder_decides(review: Review) -> None:
    request_id = await review.enqueue()
    await review.ok("claim", request_id)
    result = await review.cli("accept", request_id, who=SARA)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: FAILED_PRECONDITION: ")


async def test_transfer_and_release(review: Review) -> None:
    moved = await review.enqueue()
    await review.ok("claim", moved)
    refused = await review.cli("transfer", moved, "--to", "nowhere", "--reason", "misfiled")
    assert refused.exit_code == 1
    assert "  department_code: \u2067ليس قسمًا من الدليل\u2069" in refused.stderr
    transferred = await review.ok(
        "transfer", moved, "--to", "visas", "--reason", "A visit visa, not a passport"
    )
    assert transferred.strip() == f"transferred TW000000001  {moved} to visas"
    assert (await review.case(moved)).item.state == review_pb2.WORK_ITEM_STATE_TRANSFERRED

    kept = await review.enqueue()
    await review.ok("claim", kept)
    released = await review.ok("release", kept)
    assert released.strip() == f"released TW000000002  {kept} to the queue of passports"
    item = (await review.case(kept)).item
    assert (item.state, item.assignee_id) == (review_pb2.WORK_ITEM_STATE_QUEUED, "")


async def test_reasons_in_arabic_and_english(review: Review) -> None:
    listed = await review.ok("reasons")
    line = next(line for line in listed.splitlines() if "documents-unclear" in line)
    assert "reject" in line
    assert f"{RLI}المرفقات غير واضحة أو غير مقروءة{PDI}" in line
    assert "The attachments are unclear or unreadable" in line
    balanced(listed)


async def test_download_saves_the_attachment_under_a_safe_name(
    review: Review, tmp_path: Path
) -> None:
    request_id = await review.enqueue()
    named = tmp_path / "scan.pdf"
    saved = await review.ok("download", request_id, "d1", "--output", str(named))
    assert named.read_bytes() == PDF
    assert f"({len(PDF)} bytes) to {named}" in saved
    unescaped(saved)

    again = await review.cli("download", request_id, "d1", "--output", str(named))
    assert again.exit_code == 1
    assert again.stderr == f"error: {named} موجود من قبل؛ مرّر --force لاستبداله\n"
    await review.ok("download", request_id, "d1", "--output", str(named), "--force")

    # Into a folder, under the applicant's file name made safe: no path, no controls.
    await review.ok("download", request_id, "d1", "--output", str(tmp_path))
    made = {p.name for p in await asyncio.to_thread(lambda: list(tmp_path.iterdir()))}
    made -= {"scan.pdf"}
    assert len(made) == 1
    (name,) = made
    assert "passport_.pdf" in name
    assert "/" not in name
    assert not any(c < " " for c in name)
    assert (tmp_path / name).read_bytes() == PDF

    missing = await review.cli("download", request_id, "d9", "--output", str(tmp_path))
    assert missing.exit_code == 1
    assert missing.stderr == f"error: ليس في الطلب {request_id} مرفق d9\n"


# --- supervisors and administrators ---------------------------------------------------------


async def test_backlog_is_for_supervisors(review: Review) -> None:
    await review.enqueue()
    await review.enqueue()
    refused = await review.cli("backlog", "passports", who=ALI)
    assert refused.exit_code == 1
    assert refused.stderr == ("error: PERMISSION_DENIED: لست مشرفًا على القسم 'passports'\n")

    put = await review.ok(
        "reviewer-put", "S001", "-d", "passports", "--supervises", "passports", who=ADMIN
    )
    assert "S001" in put
    assert "passports" in put
    backlog = await review.ok("backlog", "passports", who=BOSS)
    row = next(line for line in backlog.splitlines() if "passports.default" in line)
    assert row.split("│")[2].strip() == "2"
    assert "2026-01-04 10:01" in row


async def test_reviewers_away_and_available(review: Review) -> None:
    await review.ok(
        "reviewer-put", "E100", "-d", "passports", "-l", "ar", "--capacity", "5", who=ADMIN
    )
    listed = await review.ok("reviewers", "passports", who=ADMIN)
    row = next(line for line in listed.splitlines() if "E100" in line)
    assert "5" in row
    assert "yes" in row
    assert (await review.ok("away")).strip() == "E100 is away"
    request_id = await review.enqueue()
    refused = await review.cli("claim", request_id)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: FAILED_PRECONDITION: أنت مسجَّل غير متاح")
    assert (await review.ok("available")).strip() == "E100 is available"
    assert "claimed" in await review.ok("claim", request_id)

    not_admin = await review.cli("reviewer-put", "E999", "-d", "passports", who=ALI)
    assert not_admin.exit_code == 1
    assert not_admin.stderr.startswith("error: PERMISSION_DENIED: ")
    bad = await review.cli("reviewer-put", "E999", "-d", "nowhere", who=ADMIN)
    assert bad.exit_code == 1
    assert "  reviewer.departments: \u2067يذكر قسمًا ليس في الدليل\u2069" in bad.stderr


async def test_changing_a_reviewer_changes_only_the_options_given(review: Review) -> None:
    async def in_passports() -> dict[str, review_pb2.Reviewer]:
        listed = await review.admin.ListReviewers(
            review_pb2.ListReviewersRequest(department_code="passports"),
            timeout=5,
            metadata=bearer(ADMIN),
        )
        return {r.reviewer_id: r for r in listed.reviewers}

    async def record(reviewer_id: str) -> review_pb2.Reviewer:
        return (await in_passports())[reviewer_id]

    def shown(r: review_pb2.Reviewer) -> tuple[list[str], list[str], int, bool, list[str]]:
        return (list(r.departments), list(r.languages), r.capacity, r.available, list(r.supervises))

    await review.ok(
        "reviewer-put", "S001", "-d", "passports", "-d", "visas", "--supervises", "passports",
        "--reads", "ur", "--capacity", "5", "--away", who=ADMIN,
    )  # fmt: skip
    assert shown(await record("S001")) == (["passports", "visas"], ["ur"], 5, False, ["passports"])
    # No department named: found in one of theirs all the same.
    await review.ok("reviewer-put", "S001", "--capacity", "7", who=ADMIN)
    assert shown(await record("S001")) == (["passports", "visas"], ["ur"], 7, False, ["passports"])
    await review.ok("reviewer-put", "S001", "--available", "-l", "ar", who=ADMIN)
    assert shown(await record("S001")) == (["passports", "visas"], ["ar"], 7, True, ["passports"])

    # A new reviewer: the defaults for what is not given, as it says; a department is needed.
    added = await review.ok(
        "--language", "en", "reviewer-put", "E500", "-d", "passports", who=ADMIN
    )
    assert added.startswith(
        "E500 had no reviewer record, so was added as a new reviewer: what was not given is a"
        " new reviewer's (reads ar and en, capacity 20, available, supervises none)\n"
    )
    assert shown(await record("E500")) == (["passports"], ["ar", "en"], 20, True, [])
    # Their supervisor lists only their own departments: the others are passed over.
    await review.ok("reviewer-put", "E500", "--capacity", "9", "--away", who=BOSS)
    assert shown(await record("E500")) == (["passports"], ["ar", "en"], 9, False, [])
    # Their supervisor takes them out of passports ('' for none), and back in: in no
    # department's list meanwhile, their record is read all the same, and kept.
    await review.ok("reviewer-put", "E500", "-d", "", who=BOSS)
    assert "E500" not in await in_passports()
    back = await review.ok("reviewer-put", "E500", "-d", "passports", who=BOSS)
    assert back.startswith("┏")  # found: only the table
    assert shown(await record("E500")) == (["passports"], ["ar", "en"], 9, False, [])
    # A record its caller may not read (E300's own, of visas) is not kept blindly: written
    # whole, nothing of it is read.
    await review.ok("away", who=VISAS_ONLY)
    blind = await review.cli(
        "--language", "en", "reviewer-put", "E300", "-d", "passports", who=BOSS
    )
    assert (blind.exit_code, blind.stderr) == (
        1,
        "error: you may not read E300's record, so what it holds cannot be kept: give"
        " --department, --reads, --capacity, --supervises and --available or --away, or ask an"
        " administrator\n",
    )
    await review.ok(
        "reviewer-put", "E300", "-d", "passports", "-l", "ar", "--capacity", "4",
        "--supervises", "", "--available", who=BOSS,
    )  # fmt: skip
    assert shown(await record("E300")) == (["passports"], ["ar"], 4, True, [])
    # Out of visas, and no longer a supervisor ('' for none).
    await review.ok("reviewer-put", "S001", "-d", "passports", "--supervises", "", who=ADMIN)
    assert shown(await record("S001")) == (["passports"], ["ar"], 7, True, [])
    unknown = await review.cli(
        "--language", "en", "reviewer-put", "E501", "--capacity", "3", who=ADMIN
    )
    assert (unknown.exit_code, unknown.stderr) == (
        1,
        "error: E501 has no reviewer record: a new reviewer needs --department\n",
    )


async def test_a_supervisor_reassigns_and_sets_a_queue_to_push(review: Review) -> None:
    await review.ok(
        "reviewer-put", "S001", "-d", "passports", "--supervises", "passports", who=ADMIN
    )
    await review.ok("reviewer-put", "E200", "-d", "passports", who=ADMIN)
    request_id = await review.enqueue()
    refused = await review.cli("reassign", request_id, "--to", "E200", who=ALI)
    assert refused.exit_code == 1
    assert "PERMISSION_DENIED" in refused.stderr
    assert "to E200" in await review.ok("reassign", request_id, "--to", "E200", who=BOSS)
    assert "to the queue" in await review.ok("reassign", request_id, who=BOSS)

    assert "passports.default now round-robin" in await review.ok(
        "queue-mode", "passports.default", "round-robin", who=BOSS
    )
    pushed = await review.enqueue()
    case = await review.case(pushed)
    assert case.item.assignee_id in {"S001", "E200"}
    bad = await review.cli("queue-mode", "passports.default", "random", who=BOSS)
    assert bad.exit_code == 1


async def test_a_sampled_decision_is_checked_by_another_reviewer(review: Review) -> None:
    await review.ok(
        "reviewer-put", "S001", "-d", "passports", "--supervises", "passports", who=ADMIN
    )
    # Sampling is by request id under review's key: enqueue until one falls in the sample.
    while True:
        request_id = await review.enqueue()
        rules = review.rules
        if sampled(uuid.UUID(request_id), rules.quality_percent, key=rules.quality_key):
            break
    await review.ok("claim", request_id)
    await review.ok("accept", request_id, "--message", "Done", "--reason", "completed")
    listed = await review.ok("quality", "passports", who=BOSS)
    assert request_id in listed
    own = await review.cli("quality-check", request_id, "--verdict", "agree", who=ALI)
    assert own.exit_code == 1
    assert "يدقّق القرارَ مراجعٌ غير الذي اتخذه" in own.stderr
    why = await review.cli("quality-check", request_id, "--verdict", "disagree", who=SARA)
    assert why.exit_code == 1
    assert "note: اذكر سبب عدم موافقتك" in why.stderr
    said = "الصورة لا تطابق صاحب الطلب"
    checked = await review.ok(
        "quality-check", request_id, "--verdict", "disagree", "--note", said, who=SARA
    )
    number = (await review.case(request_id)).item.request_number
    assert checked.split() == ["checked", f"{number}:", "disagree"]
    done = (await review.ok("quality", "passports", "--all", who=BOSS)).splitlines()
    at = next(i for i, line in enumerate(done) if number in line)
    assert [[c.strip() for c in line.split("│")[1:-1]] for line in done[at : at + 3]] == [
        [number, "accept", "disagree", f"{RLI}{said}{PDI}"],
        [request_id, "by E100", "by E200", ""],
        [f"sampled {review.now:%Y-%m-%d %H:%M}", "", "", ""],
    ]
    balanced("\n".join(done))
    # Those waiting have no note to show.
    assert "note" not in await review.ok("quality", "passports", who=BOSS)


async def test_a_supervisor_pages_through_the_checks_made(review: Review) -> None:
    await review.ok(
        "reviewer-put", "S001", "-d", "passports", "--supervises", "passports", who=ADMIN
    )
    decided: list[str] = []
    while len(decided) < 2:
        request_id = await review.enqueue()
        rules = review.rules
        if sampled(uuid.UUID(request_id), rules.quality_percent, key=rules.quality_key):
            await review.ok("claim", request_id)
            await review.ok("accept", request_id, "--message", "Done", "--reason", "completed")
            decided.append(request_id)
    older, newer = decided

    first = await review.ok("quality", "passports", "--all", "--page-size", "1", who=BOSS)
    assert newer in first
    assert older not in first
    again = more(first)
    assert again == ["quality", "--all", "--page-size", "1", "--page-token", again[5], "passports"]
    second = await review.ok(*again, who=BOSS)
    assert older in second
    assert newer not in second
    assert "more:" not in second
