"""aiokafka on uvloop: a write to a connection the broker closed is a connection error that
aiokafka recovers from, not a RuntimeError that ends a consumer group's coordination."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import uvloop
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import IncompatibleBrokerVersion, KafkaConnectionError
from aiokafka.protocol.metadata import MetadataRequest
from tawasul_platform import kafka_uvloop

METADATA = MetadataRequest([])


def on_closed_connection(versions: dict[int, tuple[int, int]]) -> Callable[[], BaseException]:
    """What sending on a connection whose socket is closed raises, on uvloop."""

    async def send() -> BaseException:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = AIOKafkaConnection("127.0.0.1", port)
        conn._writer = writer  # as connect() leaves it
        conn._versions = versions
        writer.close()
        await writer.wait_closed()  # the socket is gone, as when the broker went away
        try:
            conn.send(METADATA, expect_response=False)
        except BaseException as exc:
            return exc
        finally:
            server.close()
        raise AssertionError("sending on a closed connection raised nothing")

    return lambda: uvloop.run(send())


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Puts aiokafka back as it was after the test."""
    monkeypatch.setattr(AIOKafkaConnection, "send", AIOKafkaConnection.send)


def test_without_the_shim_uvloop_raises_what_aiokafka_does_not_catch(restored: None) -> None:
    # Fails once aiokafka catches it itself (aio-libs/aiokafka#1038): then drop the shim.
    error = on_closed_connection({METADATA.API_KEY: (0, 0)})()
    assert type(error) is RuntimeError
    assert "closed=True" in str(error)


def test_with_it_the_connection_is_broken_as_aiokafka_expects(restored: None) -> None:
    kafka_uvloop.install()
    kafka_uvloop.install()  # twice, as a test and then serve() might
    error = on_closed_connection({METADATA.API_KEY: (0, 0)})()
    assert isinstance(error, KafkaConnectionError)
    assert "broken: unable to perform operation" in str(error)
    assert isinstance(error.__cause__, RuntimeError)


def test_aiokafka_s_own_errors_pass_unchanged(restored: None) -> None:
    kafka_uvloop.install()
    # Its errors are RuntimeErrors too: this one is raised before anything is written.
    error = on_closed_connection({})()
    assert isinstance(error, IncompatibleBrokerVersion)
