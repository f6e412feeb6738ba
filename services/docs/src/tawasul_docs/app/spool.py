"""An upload's bytes on disk, read by storage, the checks and the scanner while they arrive.

Each reader keeps its own position and waits for the bytes it has not seen yet, so none of
them holds the others back: receiving runs at the sender's pace, and whatever a reader is
slow to take waits in the file (the page cache), not in the process's memory.

The file has no name (O_TMPFILE, or unlinked at once where that is missing): the kernel frees
it with the last descriptor, so a docs killed mid-upload (OOM, SIGKILL, a failed liveness
probe) leaves nothing in its spool directory, which in Kubernetes outlives the container.
"""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tawasul_platform.errors import Unavailable

READ_BYTES = 64 * 1024
# Appended chunks go to the file this much at a time: each write is a hop to a worker thread,
# and on these machines a hop costs more CPU than writing 64 KiB.
WRITE_BYTES = 256 * 1024


class SpoolAborted(Exception):
    """The upload was abandoned: every reader stops with this."""


class Spool:
    """Appended to on the event loop; read by tasks (`chunks`) and by threads (`reader`)."""

    def __init__(self, directory: Path | None) -> None:
        # Open for the spool's life, closed (and so freed) by `close`.
        try:
            self._file = tempfile.TemporaryFile(  # noqa: SIM115
                dir=directory, prefix="upload-", buffering=0
            )
        except OSError as exc:  # a missing, full or read-only directory: docs' outage
            raise Unavailable(f"docs cannot spool the upload now: {exc.strerror}") from exc
        self._fd = self._file.fileno()
        self._appended = 0
        self._unwritten: list[bytes] = []
        self._written = 0  # what readers may read
        self._ended = False
        self._aborted = False
        self._closed = False
        self._busy = 0  # threads reading or writing the file right now
        self._grown = threading.Condition()
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def size(self) -> int:
        """Bytes appended so far."""
        return self._appended

    async def append(self, chunk: bytes) -> None:
        self._unwritten.append(chunk)
        self._appended += len(chunk)
        if self._appended - self._written >= WRITE_BYTES:
            await self._write()

    async def finish(self) -> None:
        """No more bytes: readers end once they have read them all."""
        await self._write()
        self._changed(0, ended=True)

    def abort(self) -> None:
        self._changed(0, aborted=True)

    def close(self) -> None:
        """Deletes the file, once the threads reading or writing it are done (a cancelled
        task's read may still run in its thread): blocks, so call it in a worker thread."""
        with self._grown:
            self._aborted = self._closed = True
            self._grown.notify_all()
            self._grown.wait_for(lambda: self._busy == 0)
        self._file.close()

    async def chunks(self, size: int = READ_BYTES) -> AsyncIterator[bytes]:
        """The bytes, as they are written, in chunks of at most `size`; for the event loop."""
        position = 0
        while True:
            while position == self._written and not self._ended and not self._aborted:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter
            if self._aborted:
                raise SpoolAborted
            if position == self._written:
                return
            wanted = min(size, self._written - position)
            chunk = await asyncio.to_thread(self._pread, wanted, position)
            position += len(chunk)
            yield chunk

    def reader(self) -> io.RawIOBase:
        """A blocking reader of the bytes as they are written, for a thread of its own (it
        waits)."""
        return _Reader(self)

    def whole(self) -> io.BufferedReader:
        """The whole file once it has ended (`finish`), seekable, for a parser in a thread."""
        if not self._ended:
            raise RuntimeError("the spool is still being written")
        return io.BufferedReader(_Reader(self), buffer_size=READ_BYTES)

    async def _write(self) -> None:
        data = b"".join(self._unwritten)
        self._unwritten.clear()
        if not data:
            return
        try:
            await asyncio.to_thread(self._write_all, data)
        except OSError as exc:  # a full or failing disk: docs' outage, not the caller's error
            raise Unavailable(f"docs cannot spool the upload now: {exc.strerror}") from exc
        self._changed(len(data))

    def _write_all(self, data: bytes) -> None:
        with self._using() as fd:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

    def _pread(self, size: int, position: int) -> bytes:
        with self._using() as fd:
            return os.pread(fd, size, position)

    @contextmanager
    def _using(self) -> Iterator[int]:
        """The file's descriptor, which `close` leaves open until this is done."""
        with self._grown:
            if self._closed:
                raise SpoolAborted
            self._busy += 1
        try:
            yield self._fd
        finally:
            with self._grown:
                self._busy -= 1
                self._grown.notify_all()

    def _changed(self, written: int, *, ended: bool = False, aborted: bool = False) -> None:
        with self._grown:
            self._written += written
            self._ended = self._ended or ended
            self._aborted = self._aborted or aborted
            self._grown.notify_all()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _readable_from(self, position: int) -> int:
        """Bytes readable from `position`, once there are any (0 at the end)."""
        with self._grown:
            self._grown.wait_for(lambda: self._written > position or self._ended or self._aborted)
            if self._aborted:
                raise SpoolAborted
            return max(0, self._written - position)  # past the end after a seek: none


class _Reader(io.RawIOBase):
    def __init__(self, spool: Spool) -> None:
        super().__init__()
        self._spool = spool
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._spool._ended

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self.seekable():
            raise io.UnsupportedOperation("the spool is still being written")
        bases = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._spool._written}
        if whence not in bases:
            raise ValueError(f"invalid whence {whence}")
        position = bases[whence] + offset
        if position < 0:
            raise ValueError(f"negative position {position}")
        self._position = position
        return position

    def readinto(self, buffer: Any) -> int:
        spool = self._spool
        available = spool._readable_from(self._position)
        if available == 0:
            return 0
        with spool._using() as fd:
            read = os.preadv(fd, [memoryview(buffer).cast("B")[:available]], self._position)
        self._position += read
        return read
