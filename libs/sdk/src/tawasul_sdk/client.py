"""TawasulClient: one object per channel adapter process, shared by all its end users.

Every call has a deadline, the whole call's: its retries, their waits and the token
provider's answer all come out of one `timeout`. Calls that are safe to repeat (reads,
SubmitRequest with its idempotency key, and answers, which intake recognises when sent again)
are retried on UNAVAILABLE with capped, jittered exponential backoff; the others (tracking,
which sends codes and counts attempts, follow-ups, cancellations, appeals, uploads) are not:
their caller decides. A call refused UNAUTHENTICATED while the client's token came from a
provider is made once more with a token asked for anew (an upload of an iterator, whose bytes
cannot be sent again, is not, but the next call has the new token). Every call carries the
channel's trace context when the client is given where to read it (`traceparent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
)
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from tawasul.docs.v1 import docs_pb2, docs_pb2_grpc
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc

from tawasul_sdk.auth import AUTHORIZATION, Credentials, Token, TokenProvider
from tawasul_sdk.channel import Tls, open_channel
from tawasul_sdk.errors import (
    NO_TOKEN,
    NOT_BEARER,
    OUT_OF_TIME,
    TawasulError,
    said,
    too_busy_to_start,
)

# DocsService takes the file in messages of at most this many bytes.
CHUNK_SIZE = 256 * 1024
# Catalogs kept, one a locale asked for; intake answers in two.
LOCALES_CACHED = 8
# RFC 6750's b64token: what an Authorization header's bearer token may hold.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# The longest token sent. A server takes 8 KiB of a call's metadata (gRPC's default) and
# refuses more as RESOURCE_EXHAUSTED, which reads as a quota; the call's other metadata
# (path, authority, trace context, ...) takes under 1 KiB of it.
MAX_TOKEN_LENGTH = 6 * 1024
_TOO_LONG = {
    "en": f"the token is longer than {MAX_TOKEN_LENGTH} characters",
    "ar": f"الرمز أطول من {MAX_TOKEN_LENGTH} حرفًا",
}

R = TypeVar("R")
Metadata = tuple[tuple[str, str], ...]
# Gives the W3C traceparent of the channel's current span, or None outside any span.
TraceparentSource = Callable[[], str | None]
# Gives the language ("ar" or "en") of the person the current call is for, or None.
LocaleSource = Callable[[], str | None]


@dataclass(frozen=True)
class RetryPolicy:
    """At most `attempts` tries of a retryable call; the n-th wait is random in
    [0, min(max_backoff, initial_backoff × multiplier^(n-1))] (full jitter)."""

    attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def delays(self) -> Iterator[float]:
        for n in range(self.attempts - 1):
            ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier**n)
            yield random.uniform(0, ceiling)


NO_RETRY = RetryPolicy(attempts=1)


@dataclass
class _Cached:
    catalog: intake_pb2.GetCatalogResponse
    fetched: float
    # The fetch in flight, by the language its refusal is told in: callers meanwhile share
    # it (each within its own timeout) rather than each waiting for the one before.
    fetching: dict[str | None, asyncio.Task[intake_pb2.GetCatalogResponse]] = field(
        default_factory=dict
    )


async def rechunk(
    source: AsyncIterable[bytes], size: int = CHUNK_SIZE
) -> AsyncGenerator[bytes, None]:
    """The bytes of `source` in pieces of exactly `size` bytes, the last one shorter."""
    buffer = bytearray()
    async for piece in source:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


async def _from_bytes(data: bytes) -> AsyncGenerator[bytes, None]:
    for start in range(0, len(data), CHUNK_SIZE):
        yield data[start : start + CHUNK_SIZE]


class TawasulClient:
    """Typed async access to IntakeService and DocsService for channel adapters.

    `token` is the end user's: a string, a Token, or an async callable giving one (asked again
    a minute before the token expires, or halfway through a shorter-lived one). An adapter
    serving many users passes each call's `token=` instead. Errors are raised as TawasulError.

    `timeout` is each call's whole time, in seconds: every attempt, the waits between them
    and the token provider's answer come out of it, and a call out of time is
    DEADLINE_EXCEEDED (or the last attempt's error, when no time is left for another).
    `upload_timeout` is an upload's, its token included.

    `traceparent`, when given, is asked at each call for the channel's current W3C trace
    context (OpenTelemetry's, say), which the call carries as `traceparent` metadata: the
    services' spans then continue the channel's trace. The SDK itself needs no OpenTelemetry.

    `locale` ("ar" or "en", or a callable asked at each call, for an adapter serving people in
    either) is the language refusals' messages are wanted in: TawasulError's `message` and
    `fields` are in it where the service has them in it; without one, in Arabic, Tawasul's
    default.
    """

    def __init__(
        self,
        *,
        intake: grpc.aio.Channel,
        docs: grpc.aio.Channel,
        token: str | Token | TokenProvider | None = None,
        timeout: float = 10.0,
        upload_timeout: float = 120.0,
        retry: RetryPolicy = RetryPolicy(),
        catalog_seconds: float = 300.0,
        owns_channels: bool = False,
        traceparent: TraceparentSource | None = None,
        locale: str | LocaleSource | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._channels = (intake, docs)
        self._owns_channels = owns_channels
        self.intake = intake_pb2_grpc.IntakeServiceStub(intake)
        self.docs = docs_pb2_grpc.DocsServiceStub(docs)
        self._credentials = Credentials(token) if token is not None else None
        self._timeout = timeout
        self._upload_timeout = upload_timeout
        self._retry = retry
        self._catalog_seconds = catalog_seconds
        self._catalogs: dict[str, _Cached] = {}
        self._catalog_version: int | None = None
        self._traceparent = traceparent
        self._locale = locale
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def connect(cls, *, intake: str, docs: str, tls: Tls | None, **options: Any) -> TawasulClient:
        """Opens the channels (closed by `close`); `options` as for the constructor. With `tls`
        read from files (`Tls.from_files`), calls show a renewed certificate from the first
        after the files changed (channel.RenewingChannel), with no restart."""
        return cls(
            intake=open_channel(intake, tls),
            docs=open_channel(docs, tls),
            owns_channels=True,
            **options,
        )

    async def close(self) -> None:
        if self._owns_channels:
            for channel in self._channels:
                await channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- intake -----------------------------------------------------------------------------

    @property
    def catalog_version(self) -> int | None:
        """The catalog version last seen, in any locale."""
        return self._catalog_version

    async def get_catalog(
        self, locale: str = "ar", *, refresh: bool = False
    ) -> intake_pb2.GetCatalogResponse:
        """The catalog in `locale`, cached per locale for `catalog_seconds`; then asked again,
        and the cached one kept while its version is the same. A new version drops every
        locale's copy. Calls while it is being asked for get that one answer (or error)."""
        cached = self._catalogs.get(locale)
        if cached is None:
            if len(self._catalogs) >= LOCALES_CACHED:
                # A channel passing its users' locales on must not grow without bound.
                del self._catalogs[next(iter(self._catalogs))]
            cached = self._catalogs.setdefault(
                locale, _Cached(intake_pb2.GetCatalogResponse(), fetched=float("-inf"))
            )
        if not refresh and self._clock() - cached.fetched < self._catalog_seconds:
            return cached.catalog
        told_in = self._current_locale()
        fetch = cached.fetching.get(told_in)
        if fetch is None:
            fetch = asyncio.create_task(self._fetch_catalog(locale, cached))
            cached.fetching[told_in] = fetch
            fetch.add_done_callback(lambda done: _fetched(cached, told_in, done))
        try:
            async with asyncio.timeout(self._timeout):
                # Shielded: a caller gone must not cancel the others' fetch.
                return await asyncio.shield(fetch)
        except TimeoutError:
            raise TawasulError(
                grpc.StatusCode.DEADLINE_EXCEEDED, said(OUT_OF_TIME, told_in)
            ) from None

    async def _fetch_catalog(self, locale: str, cached: _Cached) -> intake_pb2.GetCatalogResponse:
        fresh = await self._unary(
            self.intake.GetCatalog,
            intake_pb2.GetCatalogRequest(locale=locale),
            token=None,
            signed_in=False,
            retry=True,
        )
        if fresh.version != cached.catalog.version:
            if self._catalog_version is not None and fresh.version != self._catalog_version:
                for other in self._catalogs.values():
                    other.fetched = float("-inf")
            self._catalog_version = fresh.version
            cached.catalog = fresh
        cached.fetched = self._clock()
        return cached.catalog

    async def submit_request(
        self, request: intake_pb2.SubmitRequestRequest, *, token: str | None = None
    ) -> intake_pb2.SubmitRequestResponse:
        """Files a request; without an idempotency key the SDK gives it one, and every retry
        (on UNAVAILABLE) carries the same key, so at most one request is made."""
        if not request.idempotency_key:
            keyed = intake_pb2.SubmitRequestRequest()
            keyed.CopyFrom(request)
            keyed.idempotency_key = str(uuid.uuid4())
            request = keyed
        return await self._unary(self.intake.SubmitRequest, request, token=token, retry=True)

    async def get_request(
        self, request: intake_pb2.GetRequestRequest, *, token: str | None = None
    ) -> intake_pb2.GetRequestResponse:
        return await self._unary(self.intake.GetRequest, request, token=token, retry=True)

    async def list_my_requests(
        self, request: intake_pb2.ListMyRequestsRequest, *, token: str | None = None
    ) -> intake_pb2.ListMyRequestsResponse:
        return await self._unary(self.intake.ListMyRequests, request, token=token, retry=True)

    async def all_my_requests(
        self, *, page_size: int = 100, token: str | None = None
    ) -> AsyncIterator[intake_pb2.Request]:
        """Every request of the caller, newest first, page after page."""
        page_token = ""
        while True:
            page = await self.list_my_requests(
                intake_pb2.ListMyRequestsRequest(page_size=page_size, page_token=page_token),
                token=token,
            )
            for request in page.requests:
                yield request
            page_token = page.next_page_token
            if not page_token:
                return

    async def start_tracking(
        self, request: intake_pb2.StartTrackingRequest, *, on_behalf_of: str | None = None
    ) -> intake_pb2.StartTrackingResponse:
        """No sign-in; sends a code by SMS, so it is not retried.

        A server-side channel (the gateway) names the person's address in `on_behalf_of`, so
        that intake counts their attempts, not the channel's; intake heeds it only from a
        client certificate it trusts to forward.
        """
        return await self._unary(
            self.intake.StartTracking,
            request,
            token=None,
            signed_in=False,
            retry=False,
            extra=_forwarded(on_behalf_of),
        )

    async def track_request(
        self, request: intake_pb2.TrackRequestRequest, *, on_behalf_of: str | None = None
    ) -> intake_pb2.TrackRequestResponse:
        """No sign-in; each try counts against the attempt limits, so it is not retried."""
        return await self._unary(
            self.intake.TrackRequest,
            request,
            token=None,
            signed_in=False,
            retry=False,
            extra=_forwarded(on_behalf_of),
        )

    async def follow_up(
        self, request: intake_pb2.FollowUpRequest, *, token: str | None = None
    ) -> intake_pb2.FollowUpResponse:
        return await self._unary(self.intake.FollowUp, request, token=token, retry=False)

    async def cancel_request(
        self, request: intake_pb2.CancelRequestRequest, *, token: str | None = None
    ) -> intake_pb2.CancelRequestResponse:
        return await self._unary(self.intake.CancelRequest, request, token=token, retry=False)

    async def respond_to_info_request(
        self, request: intake_pb2.RespondToInfoRequestRequest, *, token: str | None = None
    ) -> intake_pb2.RespondToInfoRequestResponse:
        """Answers an information request; without an idempotency key the SDK gives it one,
        and every retry (on UNAVAILABLE) carries the same key, so the answer is taken once,
        even if the reviewer asks for more before a retry gets through."""
        if not request.idempotency_key:
            keyed = intake_pb2.RespondToInfoRequestRequest()
            keyed.CopyFrom(request)
            keyed.idempotency_key = str(uuid.uuid4())
            request = keyed
        return await self._unary(self.intake.RespondToInfoRequest, request, token=token, retry=True)

    async def appeal_rejection(
        self, request: intake_pb2.AppealRejectionRequest, *, token: str | None = None
    ) -> intake_pb2.AppealRejectionResponse:
        return await self._unary(self.intake.AppealRejection, request, token=token, retry=False)

    # -- docs -------------------------------------------------------------------------------

    async def upload_document(
        self,
        data: bytes | AsyncIterable[bytes],
        *,
        filename: str,
        content_type: str,
        sub_service_code: str = "",
        document_kind: str = "",
        size_bytes: int = 0,
        token: str | None = None,
    ) -> docs_pb2.UploadDocumentResponse:
        """Streams the file to docs in chunks of 256 KiB (docs' largest) as `data` yields
        it. An exception raised by `data` (an adapter's size limit, a client gone) cancels
        the upload (docs sees a cancelled stream, never a short file) and is raised here as
        it is; `data` that stops giving bytes (a client that stops sending, still connected)
        ends it when `upload_timeout` runs out, as DEADLINE_EXCEEDED. Not retried: the bytes
        of an iterator cannot be sent again, and a retry could leave a second document (docs
        removes unattached ones). Only `bytes` refused UNAUTHENTICATED, which docs refuses
        before it reads them, are sent once more with the provider's new token.

        The size is declared when known (`bytes`, or `size_bytes` for an iterator): docs then
        stores the bytes as they come."""
        first = docs_pb2.UploadDocumentRequest(
            metadata=docs_pb2.DocumentMetadata(
                filename=filename,
                declared_content_type=content_type,
                sub_service_code=sub_service_code,
                document_kind=document_kind,
                size_bytes=len(data) if isinstance(data, bytes) else size_bytes,
            )
        )
        locale = self._current_locale()
        # One budget for the whole upload: its token, and a second try's, come out of it.
        deadline = _Deadline(self._upload_timeout)
        renewed = False
        while True:
            source = _from_bytes(data) if isinstance(data, bytes) else rechunk(data)
            metadata = (
                *await self._metadata(token, signed_in=True, deadline=deadline, locale=locale),
                *self._trace(),
                *_language(locale),
            )
            try:
                return await self._upload(first, source, metadata, deadline, locale)
            except grpc.aio.AioRpcError as exc:
                # Refused before it ran: the token is forgotten either way (hence the bytes
                # checked last), and bytes are sent again with a new one; an iterator's cannot
                # be, and the next call has the new token.
                if (
                    not renewed
                    and self._forgot_refused_token(exc, token, metadata)
                    and isinstance(data, bytes)
                ):
                    renewed = True
                    continue
                raise TawasulError.from_rpc_error(exc, locale) from None

    async def _upload(
        self,
        first: docs_pb2.UploadDocumentRequest,
        source: AsyncGenerator[bytes, None],
        metadata: Metadata,
        deadline: _Deadline,
        locale: str | None,
    ) -> docs_pb2.UploadDocumentResponse:
        """One call of UploadDocument; docs' refusal is raised as gRPC's AioRpcError."""
        call = self.docs.UploadDocument(timeout=deadline.remaining(), metadata=metadata)
        # gRPC's deadline ends the call, but not a wait for `data` (an HTTP body that stops
        # coming): the writing has the upload's deadline too.
        writing = asyncio.timeout_at(deadline.at)
        try:
            async with writing:
                await call.write(first)
                async with contextlib.aclosing(source):
                    async for chunk in source:
                        if call.done():
                            # Docs has answered (a refusal): what is left is not read or sent.
                            # A write racing its answer could make gRPC report INTERNAL instead.
                            break
                        await call.write(docs_pb2.UploadDocumentRequest(chunk=chunk))
                await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # docs ended the call early: its status is raised below
        except BaseException as exc:
            # Before the stream is closed: a half-sent file must not look complete.
            call.cancel()
            if isinstance(exc, TimeoutError) and writing.expired():
                raise TawasulError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, said(OUT_OF_TIME, locale)
                ) from None
            raise  # `data`'s own error (a TimeoutError of its own too), as it is
        return await call

    async def get_document(
        self, request: docs_pb2.GetDocumentRequest, *, token: str | None = None
    ) -> docs_pb2.GetDocumentResponse:
        return await self._unary(self.docs.GetDocument, request, token=token, retry=True)

    async def scanned(
        self,
        document_id: str,
        *,
        within: float = 60.0,
        every: float = 0.5,
        token: str | None = None,
    ) -> docs_pb2.Document:
        """The document once the malware scanner has decided (clean or infected): a request
        takes clean documents only. TimeoutError when it is still quarantined after `within`
        seconds (docs scans again later when its scanner is down)."""
        deadline = self._clock() + within
        while True:
            answer = await self.get_document(
                docs_pb2.GetDocumentRequest(document_id=document_id), token=token
            )
            if answer.document.state != docs_pb2.DOCUMENT_STATE_QUARANTINED:
                return answer.document
            if self._clock() + every > deadline:
                raise TimeoutError(f"document {document_id} still quarantined after {within} s")
            await self._sleep(every)

    async def get_download_url(
        self, request: docs_pb2.GetDownloadUrlRequest, *, token: str | None = None
    ) -> docs_pb2.GetDownloadUrlResponse:
        return await self._unary(self.docs.GetDownloadUrl, request, token=token, retry=True)

    # -- plumbing ---------------------------------------------------------------------------

    async def _metadata(
        self, token: str | None, *, signed_in: bool, deadline: _Deadline, locale: str | None
    ) -> Metadata:
        if not signed_in:
            return ()
        if token is None and self._credentials is not None:
            # The provider may call an identity provider that does not answer: it is held
            # to what is left of the call's time, as the call itself is.
            try:
                async with asyncio.timeout_at(deadline.at):
                    token = await self._credentials.token()
            except TimeoutError:
                raise TawasulError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, said(NO_TOKEN, locale)
                ) from None
        if token and len(token) > MAX_TOKEN_LENGTH:
            raise TawasulError(grpc.StatusCode.UNAUTHENTICATED, said(_TOO_LONG, locale))
        if token and not _BEARER_TOKEN.fullmatch(token):
            # gRPC would refuse the header itself, with an error that is not an RPC's.
            raise TawasulError(grpc.StatusCode.UNAUTHENTICATED, said(NOT_BEARER, locale))
        return ((AUTHORIZATION, f"Bearer {token}"),) if token else ()

    def _trace(self) -> Metadata:
        value = self._traceparent() if self._traceparent is not None else None
        return ((TRACEPARENT, value),) if value else ()

    def _current_locale(self) -> str | None:
        return self._locale() if callable(self._locale) else self._locale

    async def _unary(
        self,
        method: Callable[..., Awaitable[R]],
        request: object,
        *,
        token: str | None,
        retry: bool,
        signed_in: bool = True,
        extra: Metadata = (),
    ) -> R:
        delays = (self._retry if retry else NO_RETRY).delays()
        # A call the server was too busy to start never ran: any may go again.
        unstarted = self._retry.delays()
        renewed = False
        locale = self._current_locale()
        # One budget for the whole call: each attempt gets what is left of it.
        deadline = _Deadline(self._timeout)
        while True:
            metadata = (
                *await self._metadata(token, signed_in=signed_in, deadline=deadline, locale=locale),
                *extra,
                *self._trace(),
                *_language(locale),
            )
            remaining = deadline.remaining()
            if remaining <= 0:
                raise TawasulError(grpc.StatusCode.DEADLINE_EXCEEDED, said(OUT_OF_TIME, locale))
            try:
                return await method(request, timeout=remaining, metadata=metadata)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if signed_in and not renewed and self._forgot_refused_token(exc, token, metadata):
                    # Refused before it ran: the same call with a new token is safe.
                    renewed = True
                    continue
                if too_busy_to_start(exc):
                    delay = next(unstarted, None)
                elif code == grpc.StatusCode.UNAVAILABLE:
                    delay = next(delays, None)
                else:
                    delay = None
                if delay is None or delay >= deadline.remaining():
                    # No time left for another attempt: the last one's error says the most.
                    raise TawasulError.from_rpc_error(exc, locale) from None
                await self._sleep(delay)

    def _forgot_refused_token(
        self, error: grpc.aio.AioRpcError, token: str | None, sent: Metadata
    ) -> bool:
        """Whether `error` refused the provider's token (not a caller's own `token=`), which
        is then forgotten (unless another call has a new one already): the provider is asked
        for a new one at the next call."""
        if (
            error.code() != grpc.StatusCode.UNAUTHENTICATED
            or token is not None
            or self._credentials is None
            or not self._credentials.refreshable
        ):
            return False
        self._credentials.invalidate(_bearer(sent))
        return True


class _Deadline:
    """When a call's time runs out, on the event loop's clock (asyncio.timeout's)."""

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self.at = self._loop.time() + seconds

    def remaining(self) -> float:
        return self.at - self._loop.time()


# The metadata a forwarding channel names the person's address in (intake's FORWARDED_FOR).
FORWARDED_FOR = "x-forwarded-for"
# W3C trace context, as the services read it from a call's metadata.
TRACEPARENT = "traceparent"
# The language refusals' messages are wanted in, as the services read it.
ACCEPT_LANGUAGE = "accept-language"


def _fetched(
    cached: _Cached, told_in: str | None, fetch: asyncio.Task[intake_pb2.GetCatalogResponse]
) -> None:
    """Ends a catalog fetch's sharing; its error is taken here, for it may have no caller
    left to take it (asyncio would log it as never retrieved)."""
    if cached.fetching.get(told_in) is fetch:
        del cached.fetching[told_in]
    if not fetch.cancelled():
        fetch.exception()


def _bearer(metadata: Metadata) -> str | None:
    """The token a call's metadata carried."""
    for key, value in metadata:
        if key == AUTHORIZATION and value.startswith("Bearer "):
            return value.removeprefix("Bearer ")
    return None


def _language(locale: str | None) -> Metadata:
    return ((ACCEPT_LANGUAGE, locale),) if locale else ()


def _forwarded(address: str | None) -> Metadata:
    return ((FORWARDED_FOR, address),) if address else ()
