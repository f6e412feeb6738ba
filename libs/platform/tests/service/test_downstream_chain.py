"""A dependency's answer passed along by a real server to its own caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from asyncpg.exceptions import DeadlockDetectedError
from google.protobuf import wrappers_pb2
from tawasul_platform.downstream import downstream
from tawasul_platform.grpc import GrpcServer
from tawasul_platform.testing import unguarded
from tawasul_platform.tls import open_channel

Context = grpc.aio.ServicerContext[Any, Any]
Behaviour = Callable[[wrappers_pb2.StringValue, Context], Awaitable[wrappers_pb2.StringValue]]


def _service(name: str, behaviour: Behaviour) -> Callable[[grpc.aio.Server], None]:
    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            behaviour,
            wrappers_pb2.StringValue.FromString,
            wrappers_pb2.StringValue.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(name, {"Call": handler}),)
        )

    return register


def _call(channel: grpc.aio.Channel, name: str) -> Any:
    return channel.unary_unary(
        f"/{name}/Call",
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )


async def test_a_deadlock_in_the_dependency_reaches_the_callers_caller_as_aborted() -> None:
    """Docs undid its transaction for a concurrent one's sake and answered ABORTED: intake,
    calling it, answers ABORTED too ("try again"), not INTERNAL ("a bug")."""

    async def in_docs(request: wrappers_pb2.StringValue, context: Context) -> Any:
        raise DeadlockDetectedError("deadlock detected")

    docs = GrpcServer("127.0.0.1:0", unguarded(), _service("tawasul.test.Docs", in_docs))
    await docs.start()
    try:
        async with open_channel(f"127.0.0.1:{docs.port}", None) as to_docs:

            async def in_intake(request: wrappers_pb2.StringValue, context: Context) -> Any:
                async with downstream("docs"):
                    return await _call(to_docs, "tawasul.test.Docs")(request, timeout=5)

            intake = GrpcServer(
                "127.0.0.1:0", unguarded(), _service("tawasul.test.Intake", in_intake)
            )
            await intake.start()
            try:
                async with open_channel(f"127.0.0.1:{intake.port}", None) as to_intake:
                    with pytest.raises(grpc.aio.AioRpcError) as answered:
                        await _call(to_intake, "tawasul.test.Intake")(
                            wrappers_pb2.StringValue(value="x"), timeout=5
                        )
            finally:
                await intake.stop(0)
    finally:
        await docs.stop(0)
    assert answered.value.code() == grpc.StatusCode.ABORTED
