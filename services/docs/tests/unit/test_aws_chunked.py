"""The aws-chunked body docs streams a declared-size upload in: its length is known before
the first byte, and its trailer carries the CRC32 the server checks the bytes against."""

from __future__ import annotations

import base64
import io
import os
import zlib

import pytest
from tawasul_docs.adapters.storage import PUT_CHUNK, aws_chunked, aws_chunked_length


def decode(body: bytes) -> tuple[bytes, list[int], dict[str, str]]:
    """The payload, the chunk lengths and the trailer headers of an aws-chunked body."""
    data, lengths, rest = b"", [], body
    while True:
        line, rest = rest.split(b"\r\n", 1)
        length = int(line, 16)
        if length == 0:
            break
        data, rest = data + rest[:length], rest[length:]
        assert rest[:2] == b"\r\n"
        rest = rest[2:]
        lengths.append(length)
    assert rest.endswith(b"\r\n\r\n")
    trailers = dict(line.decode().split(":", 1) for line in rest[:-4].split(b"\r\n"))
    return data, lengths, trailers


@pytest.mark.parametrize(
    "size", [1, 100, PUT_CHUNK - 1, PUT_CHUNK, PUT_CHUNK + 1, 3 * PUT_CHUNK, 10 * 1024 * 1024 + 7]
)
def test_the_body_holds_the_bytes_their_crc32_and_the_length_announced(size: int) -> None:
    payload = os.urandom(size)
    body = b"".join(aws_chunked(io.BytesIO(payload), size))
    assert len(body) == aws_chunked_length(size)
    data, lengths, trailers = decode(body)
    assert data == payload
    assert set(lengths[:-1]) <= {PUT_CHUNK}  # every chunk but the last is whole
    expected = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()
    assert trailers == {"x-amz-checksum-crc32": expected}


def test_chunks_are_whole_however_the_source_hands_its_bytes() -> None:
    class Trickle:
        """At most 1000 bytes a read, as a spool still being written may give."""

        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readinto(self, buffer: memoryview, /) -> int:
            return self._data.readinto(buffer[:1000])

    payload = os.urandom(2 * PUT_CHUNK + 5)
    body = b"".join(aws_chunked(Trickle(payload), len(payload)))
    assert decode(body)[:2] == (payload, [PUT_CHUNK, PUT_CHUNK, 5])
    assert len(body) == aws_chunked_length(len(payload))


def test_a_source_that_ends_early_is_an_error_not_a_short_body() -> None:
    chunks = aws_chunked(io.BytesIO(b"x" * 10), 11)
    with pytest.raises(ValueError, match="1 bytes short"):
        b"".join(chunks)
