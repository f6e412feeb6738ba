"""The reviewers' CLI against a stand-in review server that answers what review itself would not
(a status trailer that is not a status) or that records what it was sent.

As in test_cli.py, each CLI invocation runs in a worker thread with its own event loop, while
the stand-in serves from this test's loop.
"""

from __future__ import annotations

import asyncio
import shlex
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from tawasul.review.v1 import review_pb2, review_pb2_grpc
from tawasul_devstack.pki import Authority
from tawasul_platform.testing import serving_file
from tawasul_platform.tls import server_credentials
from tawasul_review_cli.cli import PROG, app, safe_file_name
from tawasul_review_cli.pending import LEASE, PendingClaim, token_subject
from tawasul_review_cli.terminal import LRI, PDI, RLI
from typer.testing import CliRunner, Result

Context = grpc.aio.ServicerContext[Any, Any]
TOKEN = "token"
Handler = Callable[[Any, Context], Awaitable[Any]]


class StandIn(review_pb2_grpc.ReviewServiceServicer):
    """Answers each method with the handler the test gives it; records each request."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.requests: list[tuple[str, Any]] = []

    async def GetCase(
        self, request: review_pb2.GetCaseRequest, context: Context
    ) -> review_pb2.GetCaseResponse:
        return await self._answer("GetCase", request, context)  # type: ignore[no-any-return]

    async def ListQueue(
        self, request: review_pb2.ListQueueRequest, context: Context
    ) -> review_pb2.ListQueueResponse:
        return await self._answer("ListQueue", request, context)  # type: ignore[no-any-return]

    async def ListQualityChecks(
        self, request: review_pb2.ListQualityChecksRequest, context: Context
    ) -> review_pb2.ListQualityChecksResponse:
        return await self._answer("ListQualityChecks", request, context)  # type: ignore[no-any-return]

    async def ClaimNext(
        self, request: review_pb2.ClaimNextRequest, context: Context
    ) -> review_pb2.ClaimNextResponse:
        return await self._answer("ClaimNext", request, context)  # type: ignore[no-any-return]

    async def GetWorkItem(
        self, request: review_pb2.GetWorkItemRequest, context: Context
    ) -> review_pb2.GetWorkItemResponse:
        return await self._answer("GetWorkItem", request, context)  # type: ignore[no-any-return]

    async def _answer(self, method: str, request: Any, context: Context) -> Any:
        self.requests.append((method, request))
        return await self.handlers[method](request, context)


class Cli:
    def __init__(self, address: str, review: StandIn, state: Path) -> None:
        self.address = address
        self.review = review
        # The CLI's own files ($XDG_STATE_HOME): this test's, not the machine's user's.
        self.state = state
        self.runner = CliRunner()

    async def __call__(self, *args: str, columns: int = 160) -> Result:
        env: dict[str, str | None] = {
            "TAWASUL_REVIEW_ADDRESS": self.address,
            "TAWASUL_REVIEWER_TOKEN": TOKEN,
            "XDG_STATE_HOME": str(self.state),
            "COLUMNS": str(columns),
            "FORCE_COLOR": None,
            "TTY_COMPATIBLE": None,
            "TAWASUL_TLS_CERT_FILE": None,
            "TAWASUL_TLS_KEY_FILE": None,
            "TAWASUL_TLS_CA_FILE": None,
        }
        return await asyncio.to_thread(
            self.runner.invoke, app, list(args), env=env, catch_exceptions=False
        )


@pytest.fixture
async def cli(tmp_path: Path) -> AsyncIterator[Cli]:
    review = StandIn()  # type: ignore[abstract]  # only the methods these tests call
    server = grpc.aio.server()
    review_pb2_grpc.add_ReviewServiceServicer_to_server(review, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield Cli(f"127.0.0.1:{port}", review, tmp_path / "state")
    await server.stop(None)


async def test_a_status_trailer_that_is_not_a_status_still_prints_the_error(cli: Cli) -> None:
    async def garbage(request: Any, context: Context) -> Any:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            "bad request",
            trailing_metadata=(("grpc-status-details-bin", b"\xff\xff\xff"),),
        )

    cli.review.handlers["GetCase"] = garbage
    result = await cli("show", "some-id")
    assert (result.exit_code, result.stderr) == (1, "error: INVALID_ARGUMENT: bad request\n")


async def test_the_next_page_command_repeats_the_options_typed_before_it_but_the_token(
    tmp_path: Path,
) -> None:
    # Review over mutual TLS, as the office serves it: the next page's command reaches it only
    # with the address and the three files the first page's was given.
    office = Authority.new("test office CA")
    review = StandIn()  # type: ignore[abstract]  # only the methods these tests call

    async def paged(request: Any, context: Context) -> Any:
        return review_pb2.ListQueueResponse(next_page_token="" if request.page_token else "p2")

    review.handlers["ListQueue"] = paged
    server = grpc.aio.server()
    review_pb2_grpc.add_ReviewServiceServicer_to_server(review, server)
    port = server.add_secure_port(
        "127.0.0.1:0", server_credentials(office.tls("review", server=True))
    )
    await server.start()
    cert, key, ca = tmp_path / "cli.pem", tmp_path / "cli.key", tmp_path / "ca.pem"
    issued, its_key = office.issue("review-cli", server=False)
    cert.write_bytes(issued)
    key.write_bytes(its_key)
    ca.write_bytes(office.cert_pem)
    tls = ["--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(ca)]
    address = f"127.0.0.1:{port}"
    nothing_set: dict[str, str | None] = {
        "TAWASUL_REVIEW_ADDRESS": None,
        "TAWASUL_REVIEWER_TOKEN": None,
        "TAWASUL_TLS_CERT_FILE": None,
        "TAWASUL_TLS_KEY_FILE": None,
        "TAWASUL_TLS_CA_FILE": None,
        "COLUMNS": "160",
    }

    async def more(args: list[str], env: dict[str, str | None]) -> list[str]:
        result = await asyncio.to_thread(
            CliRunner().invoke, app, args, env=env, catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        lines = [x for x in result.stdout.splitlines() if x.startswith("more: ")]
        return shlex.split(lines[0].removeprefix("more: ")) if lines else []

    try:
        typed = ["--token", "secret-token", "--address", address, *tls]
        again = await more([*typed, "queue", "passports"], nothing_set)
        assert again == [
            PROG, "--address", address, *tls, "queue", "--page-token", "p2", "passports",
        ]  # fmt: skip
        # Typed in a shell where only the token is set, it gives the next page.
        assert await more(again[1:], {**nothing_set, "TAWASUL_REVIEWER_TOKEN": "t"}) == []
        # Options from the environment are there for the next command already.
        from_env = {
            "TAWASUL_REVIEW_ADDRESS": address,
            "TAWASUL_REVIEWER_TOKEN": "t",
            "TAWASUL_TLS_CERT_FILE": str(cert),
            "TAWASUL_TLS_KEY_FILE": str(key),
            "TAWASUL_TLS_CA_FILE": str(ca),
        }
        again = await more(["queue", "passports"], {**nothing_set, **from_env})
        assert again == [PROG, "queue", "--page-token", "p2", "passports"]
    finally:
        await server.stop(None)
    assert [request.page_token for _, request in review.requests] == ["", "p2", ""]


@pytest.mark.parametrize("columns", [80, 100, 120])
@pytest.mark.parametrize("done", [False, True])
async def test_a_quality_check_shows_whole_what_was_decided_by_whom_and_checked(
    cli: Cli, columns: int, done: bool
) -> None:
    note = "الصورة لا تطابق صاحب الطلب ويرجى التحقق من الجواز مرة أخرى"
    check = review_pb2.QualityCheck(
        request_id="6f1c8f5e-0000-4000-8000-000000000000",
        request_number="TW123456789",
        department_code="passports",
        decision=review_pb2.DECISION_ACCEPT,
        decided_by="E100",
        replaced_by="E200",
        # Sunday 4 January 2026, 10:00 in Riyadh.
        sampled_at=Timestamp(seconds=1767510000),
    )
    if done:  # those waiting, listed without --all, have no check yet
        check.checked_by, check.verdict, check.note = "S001", "disagree", note

    async def checks(request: Any, context: Context) -> Any:
        return review_pb2.ListQualityChecksResponse(checks=[check])

    cli.review.handlers["ListQualityChecks"] = checks
    result = await cli("quality", "passports", *(["--all"] if done else []), columns=columns)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "TW123456789" in line)
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines[at : at + 3]]
    made = [
        ["TW123456789", "accept"],
        ["6f1c8f5e-0000-4000-8000-000000000000", "appeal of E200"],
        ["sampled 2026-01-04 10:00", "by E100"],
    ]
    if not done:
        assert rows == made
        return
    assert [row[:3] for row in rows] == [
        [*made[0], "disagree"], [*made[1], "by S001"], [*made[2], ""],
    ]  # fmt: skip
    # The note, wrapped in its column, each of its lines isolated by itself.
    wrapped = [line.split("│")[-2].strip() for line in lines[at:] if RLI in line]
    assert " ".join(w.removeprefix(RLI).removesuffix(PDI) for w in wrapped) == note
    for line in lines:
        assert len(line) - line.count(RLI) - line.count(LRI) - line.count(PDI) <= columns


# --- a claim whose answer was lost ----------------------------------------------------------

# Where the CLI keeps a `next`'s key, under $XDG_STATE_HOME.
KEPT = ("tawasul-review-cli", "pending-claims")
CLAIM_KEPT = {
    "ar": "ربما حُجز لك طلب: أعد تشغيل next لتحصل عليه (الطلب نفسه، لا طلبًا ثانيًا)",
    "en": "a request may have been claimed for you: run `next` again to get it (the same"
    " request, not a second one)",
}


class Queue:
    """ClaimNext as review answers it (handlers.claim_next): under a key it has seen, the
    request claimed under it; under a new one, the next request. While `lost`, each answer is
    lost on its way back, the claim made."""

    def __init__(self) -> None:
        self.claimed: dict[str, str] = {}  # key: the request claimed under it
        self.lost = False

    async def __call__(self, request: Any, context: Context) -> Any:
        key = request.idempotency_key
        number = self.claimed.setdefault(key, f"TW{len(self.claimed) + 1}")
        if self.lost:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
        return review_pb2.ClaimNextResponse(
            item=review_pb2.WorkItem(request_id=f"id-{number}", request_number=number)
        )


def keys(cli: Cli) -> list[str]:
    return [request.idempotency_key for _, request in cli.review.requests]


@pytest.mark.parametrize("language", ["ar", "en"])
async def test_a_next_whose_answers_were_lost_says_so_and_the_next_gets_that_request(
    cli: Cli, language: str
) -> None:
    queue = Queue()
    cli.review.handlers["ClaimNext"] = queue
    queue.lost = True
    lost = await cli("--language", language, "next")
    assert (lost.exit_code, lost.stderr) == (
        1,
        f"error: UNAVAILABLE: connection reset\n{CLAIM_KEPT[language]}\n",
    )
    kept = cli.state.joinpath(*KEPT)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600

    queue.lost = False
    again = await cli("next")
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("claimed TW1  id-TW1")
    # One request claimed, under one key: sent twice by the first `next`, once by the second.
    assert len(keys(cli)) == 3
    assert list(queue.claimed) == [keys(cli)[0]]
    assert not kept.exists()
    # Its answer printed, the next `next` claims anew.
    assert (await cli("next")).stdout.startswith("claimed TW2  id-TW2")


async def test_a_kept_key_is_for_its_department_while_its_claim_may_be_held(cli: Cli) -> None:
    queue = Queue()
    cli.review.handlers["ClaimNext"] = queue
    queue.lost = True
    assert (await cli("next", "--department", "passports")).exit_code == 1
    queue.lost = False
    assert (await cli("next", "--department", "visas")).stdout.startswith("claimed TW2")
    assert (await cli("next", "--department", "passports")).stdout.startswith("claimed TW1")
    assert (await cli("next", "--department", "passports")).stdout.startswith("claimed TW3")

    # Kept longer ago than review's lease: lapsed, its claim is the queue's again.
    pending = PendingClaim(cli.address, token_subject(TOKEN), "", cli.state.joinpath(*KEPT))
    lapsed = pending.key(datetime.now(UTC) - LEASE - timedelta(minutes=1))
    assert (await cli("next")).stdout.startswith("claimed TW4")
    assert keys(cli)[-1] != lapsed


async def test_a_refused_next_is_not_sent_again_and_keeps_no_key(cli: Cli) -> None:
    async def refused(request: Any, context: Context) -> Any:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not your department")

    cli.review.handlers["ClaimNext"] = refused
    result = await cli("next", "--department", "visas")
    assert (result.exit_code, result.stderr) == (
        1,
        "error: PERMISSION_DENIED: not your department\n",
    )
    assert len(keys(cli)) == 1
    assert not cli.state.joinpath(*KEPT).exists()


async def test_a_next_whose_connection_dropped_gets_its_request_once_review_is_back(
    tmp_path: Path,
) -> None:
    # Review went away with the claim made (a restart): `next` waits for it to come back, as
    # for a lost answer, rather than failing at once as when it was never reached.
    queue = Queue()
    first = StandIn()  # type: ignore[abstract]
    servers, claimed = [grpc.aio.server()], asyncio.Event()

    async def dropped(request: Any, context: Context) -> Any:
        await queue(request, context)
        claimed.set()
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(servers[0].stop(None)))
        await asyncio.sleep(30)

    first.handlers["ClaimNext"] = dropped
    review_pb2_grpc.add_ReviewServiceServicer_to_server(first, servers[0])
    port = servers[0].add_insecure_port("127.0.0.1:0")
    await servers[0].start()
    back = StandIn()  # type: ignore[abstract]
    back.handlers["ClaimNext"] = queue
    cli = Cli(f"127.0.0.1:{port}", back, tmp_path / "state")
    running = asyncio.create_task(cli("next"))
    await claimed.wait()
    await asyncio.sleep(0.5)  # gone for a while: the CLI's call is lost, its second one waits
    servers.append(grpc.aio.server())
    review_pb2_grpc.add_ReviewServiceServicer_to_server(back, servers[1])
    assert servers[1].add_insecure_port(f"127.0.0.1:{port}") == port
    await servers[1].start()
    try:
        result = await running
    finally:
        await servers[1].stop(None)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("claimed TW1")
    assert list(queue.claimed) == [keys(cli)[0]]


BUSY = {
    "ar": "error: أمر next آخر قيد التشغيل على هذا الحساب (في نافذة أخرى): أعد تشغيل next"
    " بعد أن يصله الرد\n",
    "en": "error: another `next` is running on this account (in another terminal): run `next`"
    " again once it has answered\n",
}


@pytest.mark.parametrize(
    ("language", "department"), [("ar", "passports"), ("en", "passports"), ("en", "visas")]
)
async def test_a_next_run_while_another_is_under_way_is_refused(
    cli: Cli, language: str, department: str
) -> None:
    # Run at once, the second would send the first's key and get its request too, or one's
    # kept key would overwrite the other's.
    queue = Queue()
    sent, answer = asyncio.Event(), asyncio.Event()

    async def held(request: Any, context: Context) -> Any:
        if not sent.is_set():  # the first `next`, answered once the second is done
            sent.set()
            await answer.wait()
        return await queue(request, context)

    cli.review.handlers["ClaimNext"] = held
    first = asyncio.create_task(cli("next", "--department", "passports"))
    await sent.wait()
    second = await cli("--language", language, "next", "--department", department)
    answer.set()
    assert (second.exit_code, second.stderr) == (1, BUSY[language])
    assert (await first).stdout.startswith("claimed TW1")
    assert len(keys(cli)) == 1
    # Once it has answered, `next` runs again, and claims anew.
    assert (await cli("next", "--department", "passports")).stdout.startswith("claimed TW2")


async def test_a_file_of_kept_keys_not_to_be_read_is_started_again(cli: Cli) -> None:
    kept = cli.state.joinpath(*KEPT)
    kept.parent.mkdir(parents=True)
    kept.write_text('{"not": "ours"}')
    cli.review.handlers["ClaimNext"] = Queue()
    result = await cli("next")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("claimed TW1")
    assert not kept.exists()


# --- download -------------------------------------------------------------------------------

PDF = b"%PDF-1.7 the applicant's scan"
REQUEST_ID = "6f1c8f5e-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def storage() -> Iterator[str]:
    """Object storage: every presigned link answers the same file."""
    with serving_file(PDF, "application/pdf") as url:
        yield f"{url}/d1"


def attachment_named(cli: Cli, filename: str, url: str) -> None:
    async def shown(request: Any, context: Context) -> Any:
        return review_pb2.GetWorkItemResponse(
            item=review_pb2.WorkItem(request_id=REQUEST_ID),
            attachments=[
                review_pb2.Attachment(
                    document_id="d1",
                    filename=filename,
                    content_type="application/pdf",
                    download_url=url,
                )
            ],
        )

    cli.review.handlers["GetWorkItem"] = shown


@pytest.mark.parametrize(
    "filename",
    [
        # Docs keeps up to 255 characters of the applicant's name.
        "passport scan of the applicant taken at the office " * 3 + "final.pdf",
        "护照扫描件" * 18 + ".pdf",  # 94 characters, 278 bytes in UTF-8
    ],
)
async def test_an_attachment_with_a_long_name_is_saved_with_its_extension(
    cli: Cli, storage: str, tmp_path: Path, filename: str
) -> None:
    attachment_named(cli, filename, storage)
    folder = tmp_path / "saved"
    folder.mkdir()
    result = await cli("download", REQUEST_ID, "d1", "-o", str(folder))
    assert result.exit_code == 0, result.output
    (saved,) = folder.iterdir()
    assert saved.name == safe_file_name(filename, "d1")
    assert saved.suffix == ".pdf"
    assert saved.read_bytes() == PDF


async def test_a_name_the_file_system_cannot_take_is_one_error_line(
    cli: Cli, storage: str, tmp_path: Path
) -> None:
    attachment_named(cli, "scan.pdf", storage)
    too_long = tmp_path / ("x" * 300 + ".pdf")
    result = await cli("--language", "en", "download", REQUEST_ID, "d1", "-o", str(too_long))
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: cannot write {too_long}: File name too long; give another file or folder"
        " with -o\n",
    )
