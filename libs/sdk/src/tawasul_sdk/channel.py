"""Channels to Tawasul's services: mutual TLS on the office's CA, calls round the replicas.

The adapter's certificate is renewed while it runs (cert-manager rewrites the Secret before
the certificate expires; the kubelet swaps the mounted files). gRPC cannot give a channel new
credentials, so a channel opened from files (`Tls.from_files`) is a RenewingChannel: once the
files changed, the next call opens a new channel with them and goes on it, and the old one is
closed once its calls finished, as the services' own channels do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger(__name__)

# How often, at most, a call looks whether the files changed (three stat calls): the kubelet
# takes a minute or so to show a renewed Secret anyway.
RENEWAL_CHECK_SECONDS = 5.0
# How long a channel replaced by a renewal waits for its calls in flight before cancelling
# them: longer than any call's deadline (uploads' 120 s by default).
CHANNEL_GRACE_SECONDS = 300.0


@dataclass(frozen=True)
class TlsFiles:
    """Where a Tls was read from, to read it again once renewed."""

    cert: Path
    key: Path
    ca: Path

    def stamp(self) -> tuple[tuple[int, int, int], ...]:
        """What changes when a file is rewritten, or replaced (the kubelet swaps a symlink)."""
        stats = [os.stat(path) for path in (self.cert, self.key, self.ca)]
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)

    def read(self) -> Tls:
        """The files' PEM, checked as a renewal's must be: OSError when one cannot be read;
        ValueError naming the CA bundle when it holds no certificate, or the key when it is not
        the certificate's (a renewal half written)."""
        tls = Tls(self.cert.read_bytes(), self.key.read_bytes(), self.ca.read_bytes(), self)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_verify_locations(cadata=tls.ca.decode())
        except (ssl.SSLError, ValueError):
            raise ValueError(f"{self.ca} holds no PEM certificate") from None
        try:
            # ssl reads the files anew (it takes paths only); a password, never asked for,
            # keeps OpenSSL from prompting for one on a terminal.
            context.load_cert_chain(self.cert, self.key, password=b"")
        except ssl.SSLError as exc:
            if exc.reason == "KEY_VALUES_MISMATCH":
                raise ValueError(
                    f"{self.key} is not the key of the certificate in {self.cert}"
                ) from None
            raise ValueError(
                f"{self.cert} and {self.key} hold no PEM certificate and key"
            ) from None
        if (self.cert.read_bytes(), self.key.read_bytes()) != (tls.cert, tls.key):
            raise ValueError(f"{self.cert} or {self.key} changed while read")
        return tls


@dataclass(frozen=True)
class Tls:
    """Mutual TLS: the adapter's client certificate and key, and the office's CA (PEM); and the
    files they came from, read again once renewed."""

    cert: bytes
    key: bytes
    ca: bytes
    files: TlsFiles | None = field(default=None, compare=False)

    @classmethod
    def from_files(cls, *, cert_file: Path, key_file: Path, ca_file: Path) -> Tls:
        return cls(
            cert=cert_file.read_bytes(),
            key=key_file.read_bytes(),
            ca=ca_file.read_bytes(),
            files=TlsFiles(cert_file, key_file, ca_file),
        )


# The services' names resolve to every ready replica: calls go round them (gRPC's default
# sends them all to the first address, whatever replicas are added for load), and one back from
# a restart is called again within half a second (gRPC's backoff grows to 2 minutes).
_BALANCED = (
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
)


def open_channel(target: str, tls: Tls | None) -> grpc.aio.Channel:
    """A channel to a Tawasul service: mutual TLS with `tls`, plaintext without (tests); calls
    go round the addresses `target` resolves to. With `tls` read from files, it shows a renewed
    certificate from the next call after the files changed (RenewingChannel)."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=_BALANCED)

    def secure(current: Tls) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=current.ca, private_key=current.key, certificate_chain=current.cert
        )
        return grpc.aio.secure_channel(target, credentials, options=_BALANCED)

    if tls.files is None:
        return secure(tls)
    return RenewingChannel(secure(tls), tls.files, secure)


class _Follows(
    grpc.aio.UnaryUnaryMultiCallable[Any, Any],
    grpc.aio.UnaryStreamMultiCallable[Any, Any],
    grpc.aio.StreamUnaryMultiCallable[Any, Any],
    grpc.aio.StreamStreamMultiCallable[Any, Any],
):
    """A stub's method on whichever channel its RenewingChannel holds when a call starts (a
    stub takes its methods once, when built); the call stays on that channel to its end."""

    def __init__(self, holder: RenewingChannel, method: Callable[[grpc.aio.Channel], Any]) -> None:
        self._holder = holder
        self._method = method
        self._on: grpc.aio.Channel | None = None
        self._callable: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        channel = self._holder.current()
        if channel is not self._on:
            self._on, self._callable = channel, self._method(channel)
        return self._callable(*args, **kwargs)


class RenewingChannel(grpc.aio.Channel):
    """A channel that shows a renewed client certificate from its next call, without a restart.

    A call looks whether the files changed (at most every RENEWAL_CHECK_SECONDS); once they
    did, it opens a new channel with them (`opener`) and goes on it, as do the calls after it;
    the old channel takes no new call and is closed once its calls in flight finished
    (CHANNEL_GRACE_SECONDS at most). Renewed files that do not make a certificate and its key
    (a renewal half written) are logged once and read again at each look until they do: the
    channel stays meanwhile. A rewrite need not change what `stamp` sees (a coarse clock), so a
    look that failed is not taken as the files' last state.
    """

    def __init__(
        self, channel: grpc.aio.Channel, files: TlsFiles, opener: Callable[[Tls], grpc.aio.Channel]
    ) -> None:
        self._channel = channel
        self._files = files
        self._opener = opener
        self._looked = time.monotonic()
        self._stamp = files.stamp()
        self._refused: tuple[tuple[int, int, int], ...] | None = None
        # Replaced channels, each closing once its calls finished.
        self._retiring: dict[grpc.aio.Channel, asyncio.Task[None]] = {}

    def _renewed(self) -> Tls | None:
        now = time.monotonic()
        if now - self._looked < RENEWAL_CHECK_SECONDS:
            return None
        self._looked = now
        stamp: tuple[tuple[int, int, int], ...] | None = None
        try:
            stamp = self._files.stamp()
            if stamp == self._stamp:
                return None
            tls = self._files.read()
        except (OSError, ValueError) as exc:
            if stamp is None or stamp != self._refused:
                log.error("renewed TLS files not taken, the certificate in use stays: %s", exc)
            self._refused = stamp
            return None
        self._stamp, self._refused = stamp, None
        return tls

    def current(self) -> grpc.aio.Channel:
        """The channel a call starting now goes on: a new one once the files were renewed."""
        renewed = self._renewed()
        if renewed is not None:
            old, self._channel = self._channel, self._opener(renewed)
            closing = asyncio.get_running_loop().create_task(old.close(CHANNEL_GRACE_SECONDS))
            self._retiring[old] = closing
            closing.add_done_callback(lambda _: self._retiring.pop(old, None))
            log.info("TLS files renewed, shown from this call: %s", self._files.cert)
        return self._channel

    async def close(self, grace: float | None = None) -> None:
        # The replaced channels' calls get no longer than the current one's.
        closing = list(self._retiring.values())
        channels = [self._channel, *self._retiring]
        await asyncio.gather(*(channel.close(grace) for channel in channels))
        await asyncio.gather(*closing, return_exceptions=True)

    async def __aenter__(self) -> RenewingChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.current().channel_ready()

    # Each method's arguments go on as given to the channel of the call (gRPC's stubs type
    # none past `method`, nor the generated code's `_registered_method`).
    def unary_unary(
        self, method: str, *args: Any, **kwargs: Any
    ) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        return _Follows(self, lambda channel: channel.unary_unary(method, *args, **kwargs))

    def unary_stream(
        self, method: str, *args: Any, **kwargs: Any
    ) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
        return _Follows(self, lambda channel: channel.unary_stream(method, *args, **kwargs))

    def stream_unary(
        self, method: str, *args: Any, **kwargs: Any
    ) -> grpc.aio.StreamUnaryMultiCallable[Any, Any]:
        return _Follows(self, lambda channel: channel.stream_unary(method, *args, **kwargs))

    def stream_stream(
        self, method: str, *args: Any, **kwargs: Any
    ) -> grpc.aio.StreamStreamMultiCallable[Any, Any]:
        return _Follows(self, lambda channel: channel.stream_stream(method, *args, **kwargs))
