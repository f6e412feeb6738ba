"""TLS for every gRPC server and channel: mutual TLS on the office's own CA.

Every caller of a service (another service, a channel adapter, the reviewers' CLI) holds a
client certificate from the office's CA, and every server demands one: end users never reach
gRPC directly, so a connection without such a certificate is refused at the handshake. The
name in the verified certificate (`peer_name`) says which service or tool is calling.

TLS is on when the certificate, its key and the CA are all given (TAWASUL_TLS_CERT_FILE,
TAWASUL_TLS_KEY_FILE, TAWASUL_TLS_CA_FILE); none of them is plaintext (tests, in-process
servers); some of them is a mistake, refused at start.

The files are renewed while the process runs (cert-manager rewrites the `<service>-tls`
Secret before the certificate expires; the kubelet swaps the mounted files). The server takes
the new ones at its next handshake after they change (`server_credentials`), Kafka's context
likewise (tawasul_platform.kafka_tls), and a channel at its next call (`RenewingChannel`: a
new channel, the old one closed once its calls finished). The expiry gauge
(CERTIFICATE_EXPIRY) shows what the process uses, for an alert.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import Gauge

from tawasul_platform.tracing import ClientTracing

ENV_CERT = "TAWASUL_TLS_CERT_FILE"
ENV_KEY = "TAWASUL_TLS_KEY_FILE"
ENV_CA = "TAWASUL_TLS_CA_FILE"

ChannelOptions = Sequence[tuple[str, Any]]

log = logging.getLogger(__name__)

# How often, at most, a handshake looks whether the files changed (a few stat calls): the
# kubelet takes a minute or so to show a renewed Secret anyway.
RENEWAL_CHECK_SECONDS = 5.0

# How long a channel replaced by a renewal waits for its calls in flight before cancelling
# them: longer than any call's deadline (the services' 5 s, the SDK's uploads' 120 s).
CHANNEL_GRACE_SECONDS = 300.0

# Here rather than in tawasul_platform.metrics, which imports the settings that import this.
CERTIFICATE_EXPIRY = Gauge(
    "tawasul_tls_certificate_expiry_timestamp_seconds",
    "When a certificate this process uses expires (Unix time), each taken again when the files "
    "are renewed: server, the one its gRPC server and Kafka clients show; channel, the one its "
    "gRPC channels show; ca, the earliest of the CA bundle it trusts",
    ["which"],
)

# A service's name resolves to every ready replica (a headless Service in Kubernetes): calls go
# round the replicas. gRPC's default, pick_first, sends every call on the first address, so
# replicas added for load got none of a running caller's calls. A replica that went away is
# tried again every half second at most: with gRPC's backoff (1 s, growing to 2 minutes) one
# back from a restart took a second or more to be called again.
BALANCED: ChannelOptions = (
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
)


@dataclass(frozen=True)
class TlsFiles:
    """Where a TlsConfig was read from, to read it again once renewed."""

    cert: Path
    key: Path
    ca: Path

    def stamp(self) -> tuple[tuple[int, int, int], ...]:
        """What changes when a file is rewritten, or replaced (the kubelet swaps a symlink)."""
        stats = [os.stat(path) for path in (self.cert, self.key, self.ca)]
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


@dataclass(frozen=True)
class TlsConfig:
    """PEM bytes: this process's certificate and key, and the CA that signs its peers'; and
    the files they came from, if any."""

    cert: bytes
    key: bytes
    ca: bytes
    files: TlsFiles | None = field(default=None, compare=False)

    @classmethod
    def from_files(cls, *, cert_file: Path, key_file: Path, ca_file: Path) -> TlsConfig:
        """The files' PEM, checked: OSError when one cannot be read; ValueError naming the one
        that is no PEM of its kind, or the key when it is not the certificate's (a renewal
        half written)."""
        tls = cls(
            cert=cert_file.read_bytes(),
            key=key_file.read_bytes(),
            ca=ca_file.read_bytes(),
            files=TlsFiles(cert_file, key_file, ca_file),
        )
        try:
            leaf, *_ = x509.load_pem_x509_certificates(tls.cert)
        except ValueError:
            raise ValueError(f"{cert_file} holds no PEM certificate") from None
        try:
            key = serialization.load_pem_private_key(tls.key, password=None)
        except (ValueError, TypeError):
            raise ValueError(f"{key_file} holds no PEM private key without a password") from None
        try:
            cas = x509.load_pem_x509_certificates(tls.ca)
        except ValueError:
            raise ValueError(f"{ca_file} holds no PEM certificate") from None
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
            raise ValueError(f"{key_file} is not the key of the certificate in {cert_file}")
        CERTIFICATE_EXPIRY.labels("server").set(leaf.not_valid_after_utc.timestamp())
        CERTIFICATE_EXPIRY.labels("ca").set(min(c.not_valid_after_utc.timestamp() for c in cas))
        return tls


class Renewals:
    """Watches a TlsConfig's files: `renewed` answers them read again once they changed.

    Called on each handshake or call, from gRPC's threads as well as the event loop, so it
    never waits: it looks at the files at most every RENEWAL_CHECK_SECONDS, and a look already
    under way on another thread answers "unchanged". Files that changed but do not make a
    config (a renewal half written, a key not the certificate's) are logged once and read again
    at each look until they do: the certificate in use stays meanwhile. A rewrite need not
    change what `stamp` sees (a coarse clock, a file rewritten in place to the same size), so
    a look that failed is not taken as the files' last state.
    """

    def __init__(self, files: TlsFiles) -> None:
        self._files = files
        self._lock = threading.Lock()
        self._looked = time.monotonic()
        self._stamp = files.stamp()
        self._refused: tuple[tuple[int, int, int], ...] | None = None

    def renewed(self) -> TlsConfig | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            now = time.monotonic()
            if now - self._looked < RENEWAL_CHECK_SECONDS:
                return None
            self._looked = now
            files = self._files
            stamp: tuple[tuple[int, int, int], ...] | None = None
            try:
                stamp = files.stamp()
                if stamp == self._stamp:
                    return None
                tls = TlsConfig.from_files(
                    cert_file=files.cert, key_file=files.key, ca_file=files.ca
                )
            except (OSError, ValueError) as exc:
                if stamp is None or stamp != self._refused:
                    log.error("renewed TLS files not taken, the certificate in use stays: %s", exc)
                self._refused = stamp
                return None
            self._stamp, self._refused = stamp, None
            log.info("TLS files renewed, taken from the next handshake: %s", files.cert)
            return tls
        finally:
            self._lock.release()


def tls_config(
    *, cert_file: Path | None, key_file: Path | None, ca_file: Path | None
) -> TlsConfig | None:
    """The TLS config of three optional files: all three or none (plaintext).

    ValueError names what is missing when only some are given: a half-configured process
    would otherwise quietly serve plaintext, or fail later at its first handshake.
    """
    if cert_file is None or key_file is None or ca_file is None:
        files = {ENV_CERT: cert_file, ENV_KEY: key_file, ENV_CA: ca_file}
        given = [name for name, path in files.items() if path is not None]
        if not given:
            return None
        missing = [name for name in files if name not in given]
        raise ValueError(
            f"TLS is half configured: {', '.join(given)} set but {', '.join(missing)} not; "
            "set all three for mutual TLS, or none for plaintext"
        )
    try:
        return TlsConfig.from_files(cert_file=cert_file, key_file=key_file, ca_file=ca_file)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read a TLS file: {exc}") from exc


def _server_configuration(tls: TlsConfig) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(tls.key, tls.cert)], tls.ca)


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """Serve with our certificate; admit only clients whose certificate the CA signed.

    A config read from files is read again once they are renewed: gRPC asks the fetcher on
    every new connection, before its handshake (with the GIL, on one of its own threads), for
    a new configuration or None to keep the current one.
    """
    if tls.files is None:
        return grpc.ssl_server_credentials(
            [(tls.key, tls.cert)], root_certificates=tls.ca, require_client_auth=True
        )
    renewals = Renewals(tls.files)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        renewed = renewals.renewed()
        return None if renewed is None else _server_configuration(renewed)

    # grpc's stub types the fetcher without its documented None ("no change").
    return grpc.dynamic_ssl_server_credentials(
        _server_configuration(tls),
        fetch,  # type: ignore[arg-type]
        require_client_authentication=True,
    )


def channel_credentials(tls: TlsConfig) -> grpc.ChannelCredentials:
    """Trust only servers the CA signed, and show our own certificate to them.

    For the channel's life: gRPC's Python API cannot give a channel new credentials, and it
    reconnects with these; `RenewingChannel` opens a new channel instead.
    """
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert
    )


Request = TypeVar("Request")
Response = TypeVar("Response")
MultiCallable = TypeVar("MultiCallable")


class _Follows(Generic[MultiCallable]):
    """A method of whichever channel a RenewingChannel holds at each call: stubs take their
    methods once, when built, and keep them."""

    def __init__(
        self, holder: RenewingChannel, method: Callable[[grpc.aio.Channel], MultiCallable]
    ) -> None:
        self._holder = holder
        self._method = method
        self._on: grpc.aio.Channel | None = None
        self._callable: MultiCallable | None = None

    def _current(self) -> MultiCallable:
        channel = self._holder.current()
        if self._callable is None or channel is not self._on:
            self._on, self._callable = channel, self._method(channel)
        return self._callable


# A call is made on the channel current when it starts, and stays on it to its end. Its
# arguments go on as given (mypy accepts `*args: Any, **kwargs: Any` for any signature).
class _UnaryUnary(
    _Follows[grpc.aio.UnaryUnaryMultiCallable[Request, Response]],
    grpc.aio.UnaryUnaryMultiCallable[Request, Response],
):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._current()(*args, **kwargs)


class _UnaryStream(
    _Follows[grpc.aio.UnaryStreamMultiCallable[Request, Response]],
    grpc.aio.UnaryStreamMultiCallable[Request, Response],
):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._current()(*args, **kwargs)


class _StreamUnary(
    _Follows[grpc.aio.StreamUnaryMultiCallable[Request, Response]],
    grpc.aio.StreamUnaryMultiCallable[Request, Response],
):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._current()(*args, **kwargs)


class _StreamStream(
    _Follows[grpc.aio.StreamStreamMultiCallable[Request, Response]],
    grpc.aio.StreamStreamMultiCallable[Request, Response],
):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._current()(*args, **kwargs)


class RenewingChannel(grpc.aio.Channel):
    """A channel that shows a renewed client certificate from its next call, without a restart.

    gRPC cannot give a channel new credentials, so once the files changed (Renewals, looked at
    on a call at most every RENEWAL_CHECK_SECONDS) a call opens a new channel with them
    (`opener`) and goes on it, as do the calls after it; the old channel takes no new call and is
    closed once its calls in flight finished (CHANNEL_GRACE_SECONDS at most). Renewed files
    that do not make a config leave the channel as it is.
    """

    def __init__(
        self, tls: TlsConfig, files: TlsFiles, opener: Callable[[TlsConfig], grpc.aio.Channel]
    ) -> None:
        self._opener = opener
        self._renewals = Renewals(files)
        self._channel = self._open(tls)
        # Replaced channels, each closing once its calls finished.
        self._retiring: dict[grpc.aio.Channel, asyncio.Task[None]] = {}

    def _open(self, tls: TlsConfig) -> grpc.aio.Channel:
        leaf, *_ = x509.load_pem_x509_certificates(tls.cert)
        CERTIFICATE_EXPIRY.labels("channel").set(leaf.not_valid_after_utc.timestamp())
        return self._opener(tls)

    def current(self) -> grpc.aio.Channel:
        """The channel a call starting now goes on: a new one once the files were renewed."""
        renewed = self._renewals.renewed()
        if renewed is not None:
            old, self._channel = self._channel, self._open(renewed)
            closing = asyncio.get_running_loop().create_task(old.close(CHANNEL_GRACE_SECONDS))
            self._retiring[old] = closing
            closing.add_done_callback(lambda _: self._retiring.pop(old, None))
            log.info("a channel shows the renewed certificate from its next call")
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

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Request], bytes] | None = None,
        response_deserializer: Callable[[bytes], Response] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryUnaryMultiCallable[Request, Response]:
        return _UnaryUnary(
            self,
            lambda channel: channel.unary_unary(  # type: ignore[call-arg]
                method, request_serializer, response_deserializer, _registered_method
            ),
        )

    def unary_stream(
        self,
        method: str,
        request_serializer: Callable[[Request], bytes] | None = None,
        response_deserializer: Callable[[bytes], Response] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryStreamMultiCallable[Request, Response]:
        return _UnaryStream(
            self,
            lambda channel: channel.unary_stream(  # type: ignore[call-arg]
                method, request_serializer, response_deserializer, _registered_method
            ),
        )

    def stream_unary(
        self,
        method: str,
        request_serializer: Callable[[Request], bytes] | None = None,
        response_deserializer: Callable[[bytes], Response] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.StreamUnaryMultiCallable[Request, Response]:
        return _StreamUnary(
            self,
            lambda channel: channel.stream_unary(  # type: ignore[call-arg]
                method, request_serializer, response_deserializer, _registered_method
            ),
        )

    def stream_stream(
        self,
        method: str,
        request_serializer: Callable[[Request], bytes] | None = None,
        response_deserializer: Callable[[bytes], Response] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.StreamStreamMultiCallable[Request, Response]:
        return _StreamStream(
            self,
            lambda channel: channel.stream_stream(  # type: ignore[call-arg]
                method, request_serializer, response_deserializer, _registered_method
            ),
        )


def renewing(tls: TlsConfig, opener: Callable[[TlsConfig], grpc.aio.Channel]) -> grpc.aio.Channel:
    """`opener(tls)`, opened again with the files once renewed (RenewingChannel); a config
    given as bytes, of no files, as it is."""
    if tls.files is None:
        return opener(tls)
    return RenewingChannel(tls, tls.files, opener)


def open_channel(
    target: str, tls: TlsConfig | None, *, options: ChannelOptions | None = None
) -> grpc.aio.Channel:
    """The one way to open an asyncio channel: mutual TLS when configured, else plaintext;
    calls go round the addresses `target` resolves to (BALANCED), and its unary calls carry
    the caller's trace (tracing.ClientTracing). It shows a renewed certificate from the next
    call after the files changed (`renewing`)."""
    traced = [ClientTracing()]
    balanced = [*BALANCED, *(options or ())]
    if tls is None:
        return grpc.aio.insecure_channel(target, options=balanced, interceptors=traced)

    def secure(current: TlsConfig) -> grpc.aio.Channel:
        credentials = channel_credentials(current)
        return grpc.aio.secure_channel(target, credentials, options=balanced, interceptors=traced)

    return renewing(tls, secure)


def open_sync_channel(
    target: str, tls: TlsConfig | None, *, options: ChannelOptions | None = None
) -> grpc.Channel:
    """open_channel for blocking code (the dev stack's readiness probe)."""
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, channel_credentials(tls), options=options)


def peer_name(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The name in the caller's verified client certificate: its common name, else its first
    subject alternative name. None on a plaintext connection.

    With mutual TLS the handshake already refused any certificate the CA did not sign, so
    this name can be trusted to say which service or tool is calling.
    """
    auth = context.auth_context()
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        for value in auth.get(key, ()):
            name = value.decode() if isinstance(value, bytes) else str(value)
            if name:
                return name
    return None
