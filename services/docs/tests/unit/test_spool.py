"""The spool an upload is written to while storage, the checks and the scanner read it."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from tawasul_docs.app.spool import READ_BYTES, WRITE_BYTES, Spool, SpoolAborted
from tawasul_platform.errors import Unavailable

CHUNKS = [bytes([n]) * (1000 + n) for n in range(40)]


def _read_all(spool: Spool) -> bytes:
    return io.BufferedReader(spool.reader(), buffer_size=7000).read()


async def _take(spool: Spool, size: int) -> bytes:
    return b"".join([chunk async for chunk in spool.chunks(size)])


async def test_readers_started_first_get_every_byte_in_order_then_the_end(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path)
    threaded = asyncio.ensure_future(asyncio.to_thread(_read_all, spool))
    small, large = (asyncio.ensure_future(_take(spool, n)) for n in (333, 64 * 1024))
    for chunk in CHUNKS:
        await spool.append(chunk)
        await asyncio.sleep(0)  # the readers get a turn between appends
    await spool.finish()

    whole = b"".join(CHUNKS)
    assert await asyncio.wait_for(threaded, 5) == whole
    assert await asyncio.wait_for(small, 5) == whole
    assert await asyncio.wait_for(large, 5) == whole
    assert spool.size == len(whole)
    spool.close()


async def test_a_reader_that_does_not_read_holds_nothing_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    idle = spool.chunks()  # never iterated until the end: the writer does not wait for it
    for chunk in CHUNKS:
        await asyncio.wait_for(spool.append(chunk), 5)
    await spool.finish()
    assert b"".join([chunk async for chunk in idle]) == b"".join(CHUNKS)
    spool.close()


async def test_a_waiting_reader_is_woken_by_the_next_bytes(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    reader = spool.chunks()
    first = asyncio.ensure_future(anext(reader))
    await spool.append(b"h" * (WRITE_BYTES - 1))  # held back: written with the next bytes
    done, _ = await asyncio.wait([first], timeout=0.1)
    assert not done
    await spool.append(b"i")
    assert await asyncio.wait_for(first, 5) == b"h" * READ_BYTES
    spool.close()


async def test_an_abort_stops_every_reader(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    await spool.append(b"part")
    threaded = asyncio.ensure_future(asyncio.to_thread(_read_all, spool))
    waiting = asyncio.ensure_future(_take(spool, 1024))
    done, _ = await asyncio.wait([threaded, waiting], timeout=0.1)
    assert not done
    spool.abort()
    with pytest.raises(SpoolAborted):
        await asyncio.wait_for(threaded, 5)
    with pytest.raises(SpoolAborted):
        await asyncio.wait_for(waiting, 5)
    spool.close()


async def test_a_disk_that_cannot_take_the_bytes_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    spool = Spool(tmp_path)
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(Unavailable, match="No space left on device"):
        await spool.append(b"x" * WRITE_BYTES)
    monkeypatch.undo()
    spool.close()


def _held_in(directory: Path, process: str = "self") -> list[str]:
    """A process's open files in `directory`, as /proc names them."""
    held = []
    for fd in Path(f"/proc/{process}/fd").iterdir():
        with contextlib.suppress(OSError):  # the listing's own descriptor, gone by now
            if (target := os.readlink(fd)).startswith(f"{directory}/"):
                held.append(target)
    return held


async def test_the_file_has_no_name_and_closing_frees_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    await spool.append(b"bytes on disk")
    await spool.finish()
    assert await asyncio.to_thread(os.listdir, tmp_path) == []
    (held,) = _held_in(tmp_path)
    assert held.endswith(" (deleted)")
    with spool.whole() as whole:
        assert whole.read() == b"bytes on disk"
    spool.close()
    assert _held_in(tmp_path) == []


def test_a_process_killed_mid_upload_leaves_nothing_in_the_spool_directory(
    tmp_path: Path,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "spooled\n"
        # The bytes are on disk in that directory, held by the process alone.
        (held,) = _held_in(tmp_path, str(holder.pid))
        assert held.endswith(" (deleted)")
        holder.kill()
    finally:
        holder.wait(10)
    assert holder.returncode == -signal.SIGKILL
    assert os.listdir(tmp_path) == []


HOLDER = """
import asyncio, sys, pathlib
from tawasul_docs.app.spool import Spool, WRITE_BYTES

async def main() -> None:
    spool = Spool(pathlib.Path(sys.argv[1]))
    await spool.append(b"x" * WRITE_BYTES * 4)
    print("spooled", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_the_whole_file_seeks_as_a_file_does(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    await spool.append(b"0123456789")
    with pytest.raises(RuntimeError, match="still being written"):
        spool.whole()
    await spool.finish()
    with spool.whole() as whole:
        assert whole.seekable()
        assert whole.seek(-3, io.SEEK_END) == 7
        assert whole.read() == b"789"
        assert whole.read() == b""
        whole.seek(2)
        assert whole.read(3) == b"234"
        assert whole.tell() == 5
        assert whole.seek(4, io.SEEK_CUR) == 9
        assert whole.read(5) == b"9"
        whole.seek(20)
        assert whole.read() == b""
        with pytest.raises(ValueError, match="negative"):
            whole.seek(-1)
    spool.close()


async def test_a_directory_it_cannot_write_to_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="No such file or directory"):
        Spool(tmp_path / "missing")


async def test_closing_waits_for_a_read_still_running_in_its_thread(tmp_path: Path) -> None:
    # A cancelled task's read goes on in its worker thread: the descriptor it reads must not
    # be closed (and reused by another file) under it.
    spool = Spool(tmp_path)
    await spool.append(b"bytes")
    await spool.finish()
    reading, release = threading.Event(), threading.Event()

    def slow_read() -> None:
        with spool._using():
            reading.set()
            release.wait(5)

    held = asyncio.ensure_future(asyncio.to_thread(slow_read))
    await asyncio.to_thread(reading.wait, 5)
    closing = asyncio.ensure_future(asyncio.to_thread(spool.close))
    done, _ = await asyncio.wait([closing], timeout=0.2)
    assert not done
    release.set()
    await asyncio.wait_for(asyncio.gather(held, closing), 5)
    assert await asyncio.to_thread(os.listdir, tmp_path) == []
    with pytest.raises(SpoolAborted):
        await anext(spool.chunks())
