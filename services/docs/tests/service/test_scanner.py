"""The ClamAV adapter against a real clamd, started for this module as the dev stack starts it.

clamd comes from Debian's clamav-daemon package (`tawasul-stack install`, run by `make setup`)
and runs on the stack's own configuration and signature database (tawasul_devstack.clamav):
one body signature, the EICAR test file. A few tests talk to small stand-in servers instead,
to see the client fail closed where a real clamd would not misbehave on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tawasul_devstack import clamav
from tawasul_devstack.journey import sample_pdf
from tawasul_devstack.procs import StackError, free_port, wait_until_ready
from tawasul_docs.adapters.scanner import ClamdScanner, ScannerUnavailable
from tawasul_docs.app.ports import Verdict
from tawasul_docs.app.spool import Spool
from tawasul_platform.errors import Unavailable

FOUND = Verdict(clean=False, signature=clamav.REPORTED_SIGNATURE)
CLEAN = Verdict(clean=True, signature="")
CHUNK = 64 * 1024
READY_TIMEOUT = 30.0


@dataclass
class Clamd:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_clamd(home: Path) -> Clamd:
    binary = clamav.clamd_binary()
    if binary is None:
        pytest.fail("clamd is not installed: run `make setup` (tawasul-stack install, as root)")
    port = free_port()
    log = home / "clamd.log"
    conf = clamav.prepare(home, port=port, log_file=log)
    with log.open("ab") as errors:
        # clamd writes its log itself; stdout only echoes it.
        process = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    clamd = Clamd(process, port, log)
    try:
        wait_until_ready(
            process, lambda: clamav.ping(port), timeout=READY_TIMEOUT, what="an answer to PING"
        )
    except StackError as error:
        clamd.stop()
        pytest.fail(f"clamd: {error}:\n{log.read_text(errors='replace')}")
    return clamd


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clamd]:
    server = start_clamd(tmp_path_factory.mktemp("clamd"))
    yield server
    server.stop()


@pytest.fixture
def scanner(clamd: Clamd) -> ClamdScanner:
    return ClamdScanner(clamd.address, timeout_seconds=10.0)


async def chunks_of(data: bytes, size: int = CHUNK) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def pdf_with_compressed_stream(payload: bytes) -> bytes:
    """A PDF whose one object is a Flate-compressed stream holding `payload`."""
    packed = zlib.compress(payload)
    return (
        b"%PDF-1.4\n1 0 obj\n<< /Length "
        + str(len(packed)).encode()
        + b" /Filter /FlateDecode >>\nstream\n"
        + packed
        + b"\nendstream\nendobj\ntrailer\n<< /Size 2 >>\n%%EOF\n"
    )


def test_the_database_holds_the_eicar_signature() -> None:
    name, target, offset, hex_bytes = clamav.signature_database().strip().split(":")

    assert (name, target, offset) == (clamav.SIGNATURE, "0", "*")
    assert bytes.fromhex(hex_bytes) == clamav.EICAR
    assert len(clamav.EICAR) == 68


async def test_a_clean_pdf_is_clean(scanner: ClamdScanner) -> None:
    assert await scanner.scan(chunks_of(sample_pdf("Passport renewal, page 1"))) == CLEAN


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(clamav.EICAR, id="eicar-alone"),
        pytest.param(sample_pdf(clamav.EICAR.decode()), id="pdf-embedding-eicar"),
        pytest.param(pdf_with_compressed_stream(clamav.EICAR), id="pdf-flate-stream-eicar"),
    ],
)
async def test_eicar_is_found_with_its_signature(scanner: ClamdScanner, data: bytes) -> None:
    assert await scanner.scan(chunks_of(data)) == FOUND


async def test_an_upload_slower_than_the_deadline_still_gets_its_verdict(clamd: Clamd) -> None:
    """A large file over a phone's line takes longer than any scan: the deadline is clamd's
    time, not the uploader's."""
    scanner = ClamdScanner(clamd.address, timeout_seconds=1.0)
    data = sample_pdf("sent slowly")

    async def slowly() -> AsyncIterator[bytes]:
        for start in range(0, len(data), len(data) // 4 + 1):
            await asyncio.sleep(0.6)
            yield data[start : start + len(data) // 4 + 1]

    started = time.monotonic()
    assert await scanner.scan(slowly()) == CLEAN
    assert time.monotonic() - started > 2.0


async def test_chunks_of_any_size_are_cut_to_the_chunk_size(clamd: Clamd) -> None:
    scanner = ClamdScanner(clamd.address, timeout_seconds=10.0, chunk_bytes=7)

    async def uneven() -> AsyncIterator[bytes]:
        # Empty chunks must not end the stream early (a zero length is its end).
        yield b""
        yield clamav.EICAR[:30]
        yield b""
        yield clamav.EICAR[30:]

    assert await scanner.scan(uneven()) == FOUND


async def test_a_spool_is_scanned_whole_while_it_is_written(
    scanner: ClamdScanner, tmp_path: Path
) -> None:
    size = 40 * CHUNK + 123
    filler = bytes(range(256)) * (size // 256 + 1)
    clean = filler[:size]
    # EICAR straddling a chunk boundary near the end: found only if every chunk arrived whole.
    at = 38 * CHUNK - len(clamav.EICAR) // 2
    infected = filler[:at] + clamav.EICAR + filler[at : size - len(clamav.EICAR)]

    for data, expected in ((clean, CLEAN), (infected, FOUND)):
        spool = Spool(tmp_path)
        scanning = asyncio.create_task(scanner.scan(spool.chunks()))
        for start in range(0, size, 1000):  # not a multiple of what the scanner reads
            await spool.append(data[start : start + 1000])
        await spool.finish()
        assert await scanning == expected
        spool.close()


async def test_a_stream_over_clamds_limit_is_no_verdict(scanner: ClamdScanner) -> None:
    async def oversize() -> AsyncIterator[bytes]:
        block = b"\x01" * (1024 * 1024)
        for _ in range(30):  # StreamMaxLength is 25M
            yield block

    with pytest.raises(ScannerUnavailable):
        await scanner.scan(oversize())


async def test_concurrent_scans_each_get_their_verdict(scanner: ClamdScanner) -> None:
    files = [
        sample_pdf(f"page {i}") if i % 2 else sample_pdf(clamav.EICAR.decode()) for i in range(20)
    ]

    verdicts = await asyncio.gather(*(scanner.scan(chunks_of(f)) for f in files))

    assert verdicts == [CLEAN if i % 2 else FOUND for i in range(20)]


async def test_ping(scanner: ClamdScanner) -> None:
    assert await scanner.ping() is True
    assert await ClamdScanner(f"127.0.0.1:{free_port()}", timeout_seconds=2.0).ping() is False


# -- failing closed ----------------------------------------------------------------------------


async def test_a_stopped_clamd_gives_no_verdict(tmp_path: Path) -> None:
    server = start_clamd(tmp_path)
    scanner = ClamdScanner(server.address, timeout_seconds=5.0)
    try:
        assert await scanner.scan(chunks_of(sample_pdf("before"))) == CLEAN
        assert await scanner.ping() is True
    finally:
        server.stop()

    with pytest.raises(ScannerUnavailable) as raised:
        await scanner.scan(chunks_of(sample_pdf("after")))
    assert await scanner.ping() is False
    assert isinstance(raised.value, Unavailable)


async def test_clamd_killed_mid_stream_gives_no_verdict(tmp_path: Path) -> None:
    server = start_clamd(tmp_path)
    scanner = ClamdScanner(server.address, timeout_seconds=5.0)

    async def killed_half_way() -> AsyncIterator[bytes]:
        yield sample_pdf("first half")
        os.kill(server.process.pid, signal.SIGKILL)
        await asyncio.to_thread(server.process.wait)
        for _ in range(64):
            yield b"\0" * CHUNK

    try:
        with pytest.raises(ScannerUnavailable):
            await scanner.scan(killed_half_way())
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def stand_in(
    answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A TCP server on a free port that answers every connection with `answer`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await answer(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"127.0.0.1:{port}"


async def test_a_silent_server_gives_no_verdict_by_the_deadline() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Takes everything and answers nothing, until the client gives up and hangs up.
        while await reader.read(CHUNK):
            pass

    async with stand_in(silent) as address:
        scanner = ClamdScanner(address, timeout_seconds=0.5)
        started = time.monotonic()
        with pytest.raises(ScannerUnavailable, match="within"):
            await scanner.scan(chunks_of(sample_pdf("never answered")))
        assert await scanner.ping() is False
        assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    "reply",
    [
        b"INSTREAM size limit exceeded. ERROR\0",
        b"stream: Can't allocate memory ERROR\0",
        b"UNKNOWN COMMAND\0",
        b"stream:  FOUND\0",
        b"stream: OK",  # cut before its terminator
        b"",
    ],
)
async def test_anything_but_a_verdict_is_no_verdict(reply: bytes) -> None:
    async def odd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The whole request: the command, one chunk of 4 bytes with its length, the end.
        await reader.readexactly(len(b"zINSTREAM\0") + 4 + len(b"data") + 4)
        writer.write(reply)
        await writer.drain()

    async with stand_in(odd) as address:
        with pytest.raises(ScannerUnavailable):
            await ClamdScanner(address, timeout_seconds=2.0).scan(chunks_of(b"data"))


def test_the_address_must_be_host_and_port() -> None:
    for address in ("127.0.0.1", "127.0.0.1:", ":3310", "host:port", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match="host:port"):
            ClamdScanner(address, timeout_seconds=1.0)
    with pytest.raises(ValueError, match="timeout"):
        ClamdScanner("127.0.0.1:3310", timeout_seconds=0)
