"""The reviewers' CLI against a stand-in review server that answers what review itself would not
(a status trailer that is not a status) or that records what it was sent.

As in test_cli.py, each CLI invocation runs in a worker thread with its own event loop, while
the stand-in serves from this test's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from tawasul.review.v1 import review_pb2, review_pb2_grpc
from tawasul_review_cli.cli import app
from typer.testing import CliRunner, Result

Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Context], Awaitable[Any]]


class StandIn(review_pb2_grpc.ReviewServiceServicer):
    """Answers each method with the handler the test gives it; records each request."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.requests: list[tuple[str, Any]] = []

    async def GetCase(
        self, request: review_pb2.GetCaseRequest, context: Context
    ) -> review_pb2.GetCaseResponse:
        return await self._answer("GetCase", request, context)  # type: ignore[no-any-return]

    async def _answer(self, method: str, request: Any, context: Context) -> Any:
        self.requests.append((method, request))
        return await self.handlers[method](request, context)


class Cli:
    def __init__(self, address: str, review: StandIn) -> None:
        self.address = address
        self.review = review
        self.runner = CliRunner()

    async def __call__(self, *args: str) -> Result:
        env: dict[str, str | None] = {
            "TAWASUL_REVIEW_ADDRESS": self.address,
            "TAWASUL_REVIEWER_TOKEN": "token",
            "COLUMNS": "160",
            "FORCE_COLOR": None,
            "TTY_COMPATIBLE": None,
            "TAWASUL_TLS_CERT_FILE": None,
            "TAWASUL_TLS_KEY_FILE": None,
            "TAWASUL_TLS_CA_FILE": None,
        }
        return await asyncio.to_thread(
            self.runner.invoke, app, list(args), env=env, catch_exceptions=False
        )


@pytest.fixture
async def cli() -> AsyncIterator[Cli]:
    review = StandIn()  # type: ignore[abstract]  # only the methods these tests call
    server = grpc.aio.server()
    review_pb2_grpc.add_ReviewServiceServicer_to_server(review, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield Cli(f"127.0.0.1:{port}", review)
    await server.stop(None)


async def test_a_status_trailer_that_is_not_a_status_still_prints_the_error(cli: Cli) -> None:
    async def garbage(request: Any, context: Context) -> Any:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            "bad request",
            trailing_metadata=(("grpc-status-details-bin", b"\xff\xff\xff"),),
        )

    cli.review.handlers["GetCase"] = garbage
    result = await cli("show", "some-id")
    assert (result.exit_code, result.stderr) == (1, "error: INVALID_ARGUMENT: bad request\n")
