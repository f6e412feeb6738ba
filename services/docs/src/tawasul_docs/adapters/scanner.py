"""The malware scanner: ClamAV's daemon, spoken to over TCP with its INSTREAM command.

Fail closed: whatever is not a clear verdict from clamd (refused connection, timeout, a
dropped connection, an ERROR reply such as a stream over clamd's StreamMaxLength) raises
ScannerUnavailable, and the caller keeps the document in quarantine. Nothing is ever reported
clean by default.

Protocol (clamd(8)): `zINSTREAM\\0`, then each chunk as a 4-byte big-endian length and its
bytes, then a zero length; clamd answers `stream: OK\\0` or `stream: <signature> FOUND\\0`.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

from tawasul_platform.errors import Unavailable

from tawasul_docs.app.ports import Verdict

__all__ = ["ClamdScanner", "ScannerUnavailable", "Verdict"]

_OK = "stream: OK"
_PREFIX = "stream: "
_FOUND = " FOUND"
# A reply is one short line; a longer one is not clamd's.
_MAX_REPLY = 4096


class ScannerUnavailable(Unavailable):
    """The scanner gave no verdict; the document must stay in quarantine."""


class _Dropped(Exception):
    """The connection to clamd failed while the stream was being sent (the cause says how)."""


def _parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"clamd address must be host:port, not {address!r}")
    return host, int(port)


def _verdict(reply: str) -> Verdict:
    if reply == _OK:
        return Verdict(clean=True)
    if reply.startswith(_PREFIX) and reply.endswith(_FOUND):
        signature = reply[len(_PREFIX) : -len(_FOUND)].strip()
        if signature:
            return Verdict(clean=False, signature=signature)
    raise ScannerUnavailable(f"clamd gave no verdict: {reply!r}")


class ClamdScanner:
    """One TCP connection to clamd per call; clamd is given `timeout_seconds` for each thing
    it does: take the connection, take each piece, and give its verdict after the last."""

    def __init__(
        self, address: str, *, timeout_seconds: float, chunk_bytes: int = 64 * 1024
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if chunk_bytes <= 0:
            raise ValueError("chunk_bytes must be positive")
        self._address = address
        self._host, self._port = _parse_address(address)
        self._timeout = timeout_seconds
        self._chunk_bytes = chunk_bytes

    async def scan(self, chunks: AsyncIterator[bytes]) -> Verdict:
        """The verdict on the bytes `chunks` yields, streamed to clamd as they come.

        Waiting for `chunks` is not clamd's time: they come at the uploader's pace (a large
        file over a phone's line takes longer than any scan), bounded by the upload's own
        deadline. Only what clamd does is timed.
        """
        try:
            async with asyncio.timeout(self._timeout):
                reader, writer = await self._connect()
            try:
                return await self._instream(reader, writer, chunks)
            finally:
                writer.close()
        except TimeoutError:
            raise ScannerUnavailable(
                f"clamd at {self._address} gave no verdict within {self._timeout} s"
            ) from None

    async def ping(self) -> bool:
        """Whether clamd answers PING with PONG within the deadline."""
        try:
            async with asyncio.timeout(self._timeout):
                reader, writer = await self._connect()
                try:
                    writer.write(b"zPING\0")
                    await writer.drain()
                    reply = await reader.readuntil(b"\0")
                finally:
                    writer.close()
        except (
            TimeoutError,
            OSError,
            ScannerUnavailable,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            return False
        return reply == b"PONG\0"

    # -- internals ---------------------------------------------------------------------------

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection(self._host, self._port, limit=_MAX_REPLY)
        except OSError as exc:
            raise ScannerUnavailable(f"cannot reach clamd at {self._address}: {exc}") from exc

    async def _instream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        chunks: AsyncIterator[bytes],
    ) -> Verdict:
        try:
            await self._send(writer, b"zINSTREAM\0")
            async for chunk in chunks:
                # A zero length ends the stream: empty chunks are skipped, big ones split.
                for start in range(0, len(chunk), self._chunk_bytes):
                    piece = chunk[start : start + self._chunk_bytes]
                    await self._send(writer, struct.pack(">I", len(piece)), piece)
            await self._send(writer, struct.pack(">I", 0))
        except _Dropped as dropped:
            # clamd hangs up mid-stream when it refuses it (e.g. over StreamMaxLength) and
            # may have said why first.
            reason = await self._read_reply_quietly(reader)
            raise ScannerUnavailable(
                f"clamd at {self._address} dropped the stream: {reason or dropped.__cause__}"
            ) from dropped.__cause__
        async with asyncio.timeout(self._timeout):
            return _verdict(await self._read_reply(reader))

    async def _send(self, writer: asyncio.StreamWriter, *parts: bytes) -> None:
        # Errors of the socket only: those of the chunks' source pass through as they are.
        try:
            async with asyncio.timeout(self._timeout):
                writer.writelines(parts)
                await writer.drain()
        except TimeoutError:
            raise  # clamd took no more: no verdict in time (scan), not a dropped connection
        except OSError as exc:
            raise _Dropped from exc

    async def _read_reply(self, reader: asyncio.StreamReader) -> str:
        try:
            reply = await reader.readuntil(b"\0")
        except asyncio.IncompleteReadError as exc:
            raise ScannerUnavailable(
                f"clamd at {self._address} closed the connection without a verdict"
                + (f" ({exc.partial!r})" if exc.partial else "")
            ) from None
        except asyncio.LimitOverrunError:
            raise ScannerUnavailable(f"clamd at {self._address} sent an overlong reply") from None
        except OSError as exc:
            raise ScannerUnavailable(f"clamd at {self._address}: {exc}") from exc
        return reply[:-1].decode(errors="replace").strip()

    async def _read_reply_quietly(self, reader: asyncio.StreamReader) -> str:
        with contextlib.suppress(ScannerUnavailable):
            return await self._read_reply(reader)
        return ""
