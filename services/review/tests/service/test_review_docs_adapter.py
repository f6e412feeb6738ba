"""Review's docs adapter against a docs gRPC server in process that answers each document as
the test says: a link, NOT_FOUND for a while (docs has not yet seen the routed event), NOT_FOUND
for good, or UNAVAILABLE."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul_platform.errors import Unavailable
from tawasul_review.adapters import docs
from tawasul_review.adapters.docs import NOT_FOUND_RETRIES, GrpcDocuments
from tawasul_review.app.ports import Attachment

EXPIRES = datetime(2026, 3, 1, 9, 5, tzinfo=UTC)
Context = grpc.aio.ServicerContext[docs_pb2.GetDownloadUrlRequest, docs_pb2.GetDownloadUrlResponse]


class Answering(docs_pb2_grpc.DocsServiceServicer):
    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()
        # Document id -> how many of the first asks docs answers NOT_FOUND (-1: every one).
        self.not_found: dict[str, int] = {}
        self.down: set[str] = set()
        self.tokens: set[str] = set()

    async def GetDownloadUrl(
        self, request: docs_pb2.GetDownloadUrlRequest, context: Context
    ) -> docs_pb2.GetDownloadUrlResponse:
        d = request.document_id
        self.asked[d] += 1
        self.tokens.add(str(dict(context.invocation_metadata() or ()).get("authorization", "")))
        if d in self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "docs is restarting")
        misses = self.not_found.get(d, 0)
        if misses < 0 or self.asked[d] <= misses:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no document {d}")
        expires = Timestamp()
        expires.FromDatetime(EXPIRES)
        return docs_pb2.GetDownloadUrlResponse(
            document=docs_pb2.Document(
                document_id=d,
                filename=f"{d}.pdf",
                content_type="application/pdf",
                size_bytes=9,
                document_kind="passport_copy",
            ),
            url=f"https://s3/{d}",
            expires_at=expires,
        )


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Answering, GrpcDocuments]]:
    monkeypatch.setattr(docs, "NOT_FOUND_PAUSE_SECONDS", 0.01)
    # Only GetDownloadUrl, the one method the adapter calls, is implemented.
    answering = Answering()  # type: ignore[abstract]
    server = grpc.aio.server()
    docs_pb2_grpc.add_DocsServiceServicer_to_server(answering, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield answering, GrpcDocuments(channel, deadline_seconds=5.0)
    finally:
        await channel.close()
        await server.stop(None)


def link(d: str) -> Attachment:
    return Attachment(
        d, f"{d}.pdf", "application/pdf", 9, f"https://s3/{d}", EXPIRES, kind="passport_copy"
    )


async def test_a_document_docs_has_not_seen_yet_is_asked_again_and_one_it_never_gives_has_no_link(
    served: tuple[Answering, GrpcDocuments],
) -> None:
    answering, adapter = served
    answering.not_found = {"lagging": 2, "gone": -1}
    given = await adapter.download_links(("ready", "lagging", "gone"), "tok")
    assert given == [link("ready"), link("lagging"), Attachment.not_given("gone")]
    # Each found document is asked for until found, no more; the lost one as long as allowed.
    assert answering.asked == Counter(ready=1, lagging=3, gone=NOT_FOUND_RETRIES + 1)
    assert answering.tokens == {"Bearer tok"}


async def test_docs_unavailable_for_one_document_is_docs_unavailable(
    served: tuple[Answering, GrpcDocuments],
) -> None:
    answering, adapter = served
    answering.down = {"second"}
    with pytest.raises(Unavailable):
        await adapter.download_links(("first", "second"), "tok")
