"""The pipe from the event loop to the SDK's uploading thread: order, back-pressure, failure."""

from __future__ import annotations

import asyncio
import io

import pytest
from tawasul_docs.adapters.storage import ChunkPipe, UploadAborted
from tawasul_platform.errors import Unavailable


def _read_all(pipe: ChunkPipe) -> bytes:
    return io.BufferedReader(pipe, buffer_size=7).read()


async def test_the_reader_gets_every_chunk_in_order_then_the_end() -> None:
    pipe = ChunkPipe(depth=2)
    reading = asyncio.ensure_future(asyncio.to_thread(_read_all, pipe))
    chunks = [bytes([n]) * (n + 1) for n in range(20)]
    for chunk in chunks:
        await pipe.feed(chunk)
    await pipe.feed(b"")  # nothing, and not the end
    await pipe.finish()
    assert await asyncio.wait_for(reading, 5) == b"".join(chunks)


async def test_a_full_pipe_holds_the_sender_until_the_reader_takes_a_chunk() -> None:
    pipe = ChunkPipe(depth=2)
    await pipe.feed(b"a")
    await pipe.feed(b"b")
    feeding = asyncio.ensure_future(pipe.feed(b"c"))
    done, _ = await asyncio.wait([feeding], timeout=0.3)
    assert not done
    buffer = bytearray(1)
    assert await asyncio.to_thread(pipe.readinto, buffer) == 1
    await asyncio.wait_for(feeding, 5)
    assert bytes(buffer) == b"a"


async def test_after_the_reader_stopped_a_send_is_unavailable_at_once() -> None:
    pipe = ChunkPipe(depth=4)
    pipe.closed_by_reader.set()
    with pytest.raises(Unavailable):
        await pipe.feed(b"x")


async def test_a_reader_stopping_while_the_sender_waits_unblocks_it() -> None:
    pipe = ChunkPipe(depth=1)
    await pipe.feed(b"a")
    feeding = asyncio.ensure_future(pipe.feed(b"b"))
    done, _ = await asyncio.wait([feeding], timeout=0.1)
    assert not done
    pipe.closed_by_reader.set()
    with pytest.raises(Unavailable):
        await asyncio.wait_for(feeding, 5)


async def test_an_abort_fails_the_readers_next_read() -> None:
    pipe = ChunkPipe(depth=4)
    await pipe.feed(b"part")
    await pipe.abort()
    with pytest.raises(UploadAborted):
        await asyncio.to_thread(_read_all, pipe)
