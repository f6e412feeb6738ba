"""TLS for every gRPC server and channel: mutual TLS on the office's own CA.

Every caller of a service (another service, a channel adapter, the reviewers' CLI) holds a
client certificate from the office's CA, and every server demands one: end users never reach
gRPC directly, so a connection without such a certificate is refused at the handshake. The
name in the verified certificate (`peer_name`) says which service or tool is calling.

TLS is on when the certificate, its key and the CA are all given (TAWASUL_TLS_CERT_FILE,
TAWASUL_TLS_KEY_FILE, TAWASUL_TLS_CA_FILE); none of them is plaintext (tests, in-process
servers); some of them is a mistake, refused at start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from tawasul_platform.tracing import ClientTracing

ENV_CERT = "TAWASUL_TLS_CERT_FILE"
ENV_KEY = "TAWASUL_TLS_KEY_FILE"
ENV_CA = "TAWASUL_TLS_CA_FILE"

ChannelOptions = Sequence[tuple[str, Any]]

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
class TlsConfig:
    """PEM bytes: this process's certificate and key, and the CA that signs its peers'."""

    cert: bytes
    key: bytes
    ca: bytes

    @classmethod
    def from_files(cls, *, cert_file: Path, key_file: Path, ca_file: Path) -> TlsConfig:
        return cls(cert=cert_file.read_bytes(), key=key_file.read_bytes(), ca=ca_file.read_bytes())


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
    except OSError as exc:
        raise ValueError(f"cannot read a TLS file: {exc}") from exc


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """Serve with our certificate; admit only clients whose certificate the CA signed."""
    return grpc.ssl_server_credentials(
        [(tls.key, tls.cert)], root_certificates=tls.ca, require_client_auth=True
    )


def channel_credentials(tls: TlsConfig) -> grpc.ChannelCredentials:
    """Trust only servers the CA signed, and show our own certificate to them."""
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert
    )


def open_channel(
    target: str, tls: TlsConfig | None, *, options: ChannelOptions | None = None
) -> grpc.aio.Channel:
    """The one way to open an asyncio channel: mutual TLS when configured, else plaintext;
    calls go round the addresses `target` resolves to (BALANCED), and its unary calls carry
    the caller's trace (tracing.ClientTracing)."""
    traced = [ClientTracing()]
    balanced = [*BALANCED, *(options or ())]
    if tls is None:
        return grpc.aio.insecure_channel(target, options=balanced, interceptors=traced)
    return grpc.aio.secure_channel(
        target, channel_credentials(tls), options=balanced, interceptors=traced
    )


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
