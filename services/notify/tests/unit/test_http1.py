"""The SMS provider's HTTP/1.1 pool against real connections: an asyncio server on loopback
that answers each test's way (lengths, chunks, closes, silence, TLS)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import pytest
from tawasul_notify.adapters.http1 import Http1Pool, HttpError
from tawasul_platform.testing import self_signed


@dataclass(frozen=True)
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> Received | None:
    """The next request on the connection; None when the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    line, *fields = head.decode("latin-1").split("\r\n")[:-2]
    method, target, _ = line.split(" ")
    headers = {name: value.strip() for name, _, value in (f.partition(":") for f in fields)}
    body = await reader.readexactly(int(headers.get("Content-Length", "0")))
    return Received(method, target, headers, body)


def answer(status: int, body: bytes, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


Reader: TypeAlias = asyncio.StreamReader
Writer: TypeAlias = asyncio.StreamWriter
Serve = Callable[[Reader, Writer, "Origin"], Awaitable[None]]


@dataclass
class Origin:
    serve: Serve
    port: int = 0
    connections: int = 0
    open_now: int = 0
    peak: int = 0
    received: list[Received] = field(default_factory=list)
    accepted: asyncio.Event = field(default_factory=asyncio.Event)
    all_closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.peak = max(self.peak, self.open_now)
        self.accepted.set()
        self.all_closed.clear()
        try:
            await self.serve(reader, writer, self)
        finally:
            self.open_now -= 1
            writer.close()
            if not self.open_now:
                self.all_closed.set()

    async def request(self, reader: asyncio.StreamReader) -> Received | None:
        found = await read_request(reader)
        if found is not None:
            self.received.append(found)
        return found


@asynccontextmanager
async def origin(serve: Serve, tls: ssl.SSLContext | None = None) -> AsyncIterator[Origin]:
    found = Origin(serve)
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0, ssl=tls)
    found.port = server.sockets[0].getsockname()[1]
    async with server:
        yield found


async def echo_keeping_alive(reader: Reader, writer: Writer, at: Origin) -> None:
    while (request := await at.request(reader)) is not None:
        writer.write(answer(200, f"{request.method} {request.target}".encode() + request.body))
        await writer.drain()


async def test_requests_one_after_another_share_one_connection() -> None:
    async with origin(echo_keeping_alive) as at:
        pool = Http1Pool(f"http://127.0.0.1:{at.port}/api/")
        answers = [
            await pool.request("POST", "/v1/messages", body=b'{"n": 1}', timeout_seconds=5),
            await pool.request(
                "GET", "/v1/messages/m-1", headers=[("Accept", "x")], timeout_seconds=5
            ),
            await pool.request("POST", "/v1/messages", body=b"", timeout_seconds=5),
        ]
        await pool.aclose()
    assert answers == [
        (200, b'POST /api/v1/messages{"n": 1}'),
        (200, b"GET /api/v1/messages/m-1"),
        (200, b"POST /api/v1/messages"),
    ]
    assert at.connections == 1
    first, second, third = at.received
    assert first.headers == {"Host": f"127.0.0.1:{at.port}", "Content-Length": "8"}
    assert second.headers == {"Host": f"127.0.0.1:{at.port}", "Accept": "x"}
    assert third.headers["Content-Length"] == "0"


async def test_a_chunked_answer_is_put_together() -> None:
    async def chunked(reader: Reader, writer: Writer, at: Origin) -> None:
        while await at.request(reader) is not None:
            writer.write(
                b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                b'5\r\n{"id"\r\n8\r\n: "m-1"}\r\n0\r\n\r\n'
            )

    async with origin(chunked) as at:
        pool = Http1Pool(f"http://127.0.0.1:{at.port}")
        assert await pool.request("POST", "/v1/messages", timeout_seconds=5) == (
            201,
            b'{"id": "m-1"}',
        )
        assert await pool.request("POST", "/v1/messages", timeout_seconds=5) == (
            201,
            b'{"id": "m-1"}',
        )
    assert at.connections == 1


async def test_an_answer_that_ends_with_its_connection_is_read_and_the_connection_not_kept() -> (
    None
):
    async def until_close(reader: Reader, writer: Writer, at: Origin) -> None:
        await at.request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"status": ')
        await writer.drain()
        writer.write(b'"delivered"}')

    async with origin(until_close) as at:
        pool = Http1Pool(f"http://127.0.0.1:{at.port}")
        for _ in range(2):
            assert await pool.request("GET", "/v1/messages/a", timeout_seconds=5) == (
                200,
                b'{"status": "delivered"}',
            )
    assert at.connections == 2


async def test_a_connection_the_server_closed_while_idle_costs_the_next_request_nothing() -> None:
    async def one_each(reader: Reader, writer: Writer, at: Origin) -> None:
        await at.request(reader)
        writer.write(answer(200, b"ok"))
        await writer.drain()

    async with origin(one_each) as at:
        pool = Http1Pool(f"http://127.0.0.1:{at.port}")
        assert await pool.request("GET", "/a", timeout_seconds=5) == (200, b"ok")
        # The server's close reaches the idle connection before the next request.
        await at.all_closed.wait()
        assert await pool.request("GET", "/b", timeout_seconds=5) == (200, b"ok")
    assert (at.connections, [r.target for r in at.received]) == (2, ["/a", "/b"])


async def test_a_request_the_server_dropped_on_a_kept_connection_goes_again_on_a_new_one() -> None:
    async def drops_the_second(reader: Reader, writer: Writer, at: Origin) -> None:
        await at.request(reader)
        writer.write(answer(200, b"first"))
        await writer.drain()
        if at.connections == 1:
            # Its keep-alive ran out as the next request came in.
            await at.request(reader)
            return
        await echo_keeping_alive(reader, writer, at)

    async with origin(drops_the_second) as at:
        pool = Http1Pool(f"http://127.0.0.1:{at.port}")
        assert await pool.request("POST", "/v1/messages", body=b"1", timeout_seconds=5) == (
            200,
            b"first",
        )
        assert await pool.request("POST", "/v1/messages", body=b"2", timeout_seconds=5) == (
            200,
            b"first",
        )
    # The provider saw the second request twice: a send carries an Idempotency-Key for that.
    assert [r.body for r in at.received] == [b"1", b"2", b"2"]
    assert at.connections == 2


async def test_an_answer_cut_short_is_an_error() -> None:
    async def cut(reader: Reader, writer: Writer, at: Origin) -> None:
        await at.request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"id"')

    async with origin(cut) as at:
        pool = Http1Pool(f"http://127.0.0.1:{at.port}")
        with pytest.raises(HttpError, match="before the answer was complete"):
            await pool.request("POST", "/v1/messages", timeout_seconds=5)


async def test_nonsense_is_an_error() -> None:
    async def nonsense(reader: Reader, writer: Writer, at: Origin) -> None:
        await at.request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with origin(nonsense) as at:
        pool = Http1Pool(f"http://127.0.0.1:{at.port}")
        with pytest.raises(HttpError, match="unreadable answer"):
            await pool.request("GET", "/v1/health", timeout_seconds=5)


async def test_a_silent_server_times_out_and_its_connection_is_dropped() -> None:
    silent_once = asyncio.Event()

    async def silent_first(reader: Reader, writer: Writer, at: Origin) -> None:
        if at.connections == 1:
            await at.request(reader)
            silent_once.set()
            await reader.read()
            return
        await echo_keeping_alive(reader, writer, at)

    async with origin(silent_first) as at:
        pool = Http1Pool(f"http://127.0.0.1:{at.port}")
        with pytest.raises(TimeoutError):
            await pool.request("GET", "/slow", timeout_seconds=0.2)
        assert silent_once.is_set()
        assert await pool.request("GET", "/next", timeout_seconds=5) == (200, b"GET /next")
    assert at.connections == 2


async def test_no_more_connections_than_the_limit_are_opened() -> None:
    async def slow_echo(reader: Reader, writer: Writer, at: Origin) -> None:
        while (request := await at.request(reader)) is not None:
            await asyncio.sleep(0.05)
            writer.write(answer(200, request.target.encode()))
            await writer.drain()

    async with origin(slow_echo) as at:
        pool = Http1Pool(f"http://127.0.0.1:{at.port}", max_connections=2)
        answers = await asyncio.gather(
            *(pool.request("GET", f"/{n}", timeout_seconds=5) for n in range(6))
        )
    assert sorted(answers) == sorted((200, f"/{n}".encode()) for n in range(6))
    assert (at.connections, at.peak) == (2, 2)


async def test_waiting_for_a_connection_past_the_timeout_is_a_timeout() -> None:
    async def never(reader: Reader, writer: Writer, at: Origin) -> None:
        await reader.read()

    async with origin(never) as at:
        pool = Http1Pool(f"http://127.0.0.1:{at.port}", max_connections=1)
        first = asyncio.create_task(pool.request("GET", "/held", timeout_seconds=5))
        await at.accepted.wait()
        with pytest.raises(TimeoutError):
            await pool.request("GET", "/waiting", timeout_seconds=0.1)
        first.cancel()


async def test_a_line_break_in_a_header_is_refused_before_anything_is_sent() -> None:
    async with origin(echo_keeping_alive) as at:
        pool = Http1Pool(f"http://127.0.0.1:{at.port}")
        with pytest.raises(ValueError, match="line break"):
            await pool.request(
                "POST",
                "/v1/messages",
                headers=[("Idempotency-Key", "k\r\nX-Evil: 1")],
                timeout_seconds=5,
            )
    assert at.connections == 0


async def test_nobody_listening_is_an_error() -> None:
    async with origin(echo_keeping_alive) as at:
        port = at.port
    pool = Http1Pool(f"http://127.0.0.1:{port}")
    with pytest.raises(HttpError, match="cannot connect"):
        await pool.request("GET", "/v1/health", timeout_seconds=5)


def test_only_http_urls_make_a_pool() -> None:
    with pytest.raises(ValueError, match="not an http"):
        Http1Pool("smtp://mail.example")


async def test_https_is_spoken_to_a_provider_whose_certificate_is_trusted(tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path, "sms.test", ip="127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    async with origin(echo_keeping_alive, tls=server) as at:
        untrusting = Http1Pool(f"https://127.0.0.1:{at.port}")
        with pytest.raises(HttpError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.request("GET", "/v1/health", timeout_seconds=5)
        trusting = Http1Pool(
            f"https://127.0.0.1:{at.port}",
            ssl_context=ssl.create_default_context(cafile=cert_file),
        )
        assert await trusting.request("GET", "/v1/health", timeout_seconds=5) == (
            200,
            b"GET /v1/health",
        )
        assert await trusting.request("GET", "/again", timeout_seconds=5) == (200, b"GET /again")
        await trusting.aclose()
    assert at.received[-1].headers["Host"] == f"127.0.0.1:{at.port}"
