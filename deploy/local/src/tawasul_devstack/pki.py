"""The development stack's own certificate authority, standing in for the office's CA.

`ensure` makes the CA once and keeps it in the stack's state dir, so certificates stay valid
across `up`s; it issues each named certificate that is missing, expiring, or not signed by
that CA. Service certificates serve and call (server and client usage); the others only call.
Every certificate names its holder in its common name (what `tawasul_platform.tls.peer_name`
returns) and is good for localhost and 127.0.0.1. P-256 keys: quick to make and to handshake.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tawasul_platform.kafka_acls import OPERATOR
from tawasul_platform.tls import TlsConfig

CA_NAME = "Tawasul development CA"
# The demo, the end-to-end tests, the benchmark and the stack's own readiness probe.
CLIENT = "client"
REVIEW_CLI = "review-cli"
# The channels' HTTP gateway: it calls intake and docs for the end users it serves.
GATEWAY = "gateway"
# The operators' Kafka tools (tawasul-dead-letters, tawasul-rewind): Kafka's ACLs know it.
CLIENTS = (CLIENT, REVIEW_CLI, GATEWAY, OPERATOR)
# The broker's TLS listener, which the services reach Kafka on.
KAFKA = "kafka"

CA_DAYS = 3650
LEAF_DAYS = 365
# Reissued this long before it expires, so a long-lived dev stack never meets an expired one.
RENEW_BEFORE = dt.timedelta(days=30)
# Other clocks on the machine may be a little behind.
BACKDATE = dt.timedelta(minutes=5)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tawasul development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class Authority:
    """A CA that signs certificates; tests make throwaway ones (an unknown CA) with `new`."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def new(cls, name: str = CA_NAME, *, days: int = CA_DAYS) -> Authority:
        key = _new_key()
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @property
    def cert_pem(self) -> bytes:
        return _cert_pem(self.cert)

    def issue(self, name: str, *, server: bool, days: int = LEAF_DAYS) -> tuple[bytes, bytes]:
        """A certificate for `name` (its common name) and its key, both PEM. `server` adds
        server usage to client usage."""
        key = _new_key()
        now = _now()
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if server:
            usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName(name),
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .sign(self.key, hashes.SHA256())
        )
        return _cert_pem(cert), _key_pem(key)

    def tls(self, name: str, *, server: bool) -> TlsConfig:
        """A ready TlsConfig for `name`, in memory: for tests."""
        cert, key = self.issue(name, server=server)
        return TlsConfig(cert=cert, key=key, ca=self.cert_pem)


@dataclass(frozen=True)
class Pki:
    """The files of a CA and the certificates it issued, in one directory."""

    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key_file(self) -> Path:
        return self.directory / "ca.key"

    def cert_file(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key_file(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def tls(self, name: str) -> TlsConfig:
        """What `name` connects (and serves) with."""
        return TlsConfig.from_files(
            cert_file=self.cert_file(name), key_file=self.key_file(name), ca_file=self.ca_file
        )

    def ensure(self, *, servers: Iterable[str], clients: Iterable[str]) -> None:
        """The CA, made once, and a current certificate for each server and client name."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # One writer at a time (an `up` and a test's client), so no certificate is signed by
        # a CA that another process replaces at the same moment.
        with (self.directory / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            authority = self.authority()
            for name, server in [*((s, True) for s in servers), *((c, False) for c in clients)]:
                if not self._current(name, authority):
                    cert, key = authority.issue(name, server=server)
                    write_whole(self.key_file(name), key, secret=True)
                    write_whole(self.cert_file(name), cert)

    def authority(self) -> Authority:
        """The CA of this directory, made (and kept) when there is none or it is expiring."""
        try:
            cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key_file.read_bytes(), None)
        except (OSError, ValueError):
            cert, key = None, None
        if (
            cert is not None
            and isinstance(key, ec.EllipticCurvePrivateKey)
            and cert.not_valid_after_utc - RENEW_BEFORE > _now()
        ):
            return Authority(cert, key)
        # A new CA: every certificate of the old one fails `_current` and is issued again.
        authority = Authority.new()
        write_whole(self.ca_key_file, _key_pem(authority.key), secret=True)
        write_whole(self.ca_file, authority.cert_pem)
        return authority

    def _current(self, name: str, authority: Authority) -> bool:
        try:
            cert = x509.load_pem_x509_certificate(self.cert_file(name).read_bytes())
            key = serialization.load_pem_private_key(self.key_file(name).read_bytes(), None)
            cert.verify_directly_issued_by(authority.cert)
        except (OSError, ValueError, TypeError, InvalidSignature):
            return False
        return (
            key.public_key() == cert.public_key()
            and cert.not_valid_after_utc - RENEW_BEFORE > _now()
        )


def keep_secret(path: Path, make: Callable[[], bytes]) -> bytes:
    """`path`'s content; made by `make` and kept, readable by its owner only, when there is
    none yet. Looked at again under a lock: processes that first use a state dir at once (an
    `up` and `tawasul-stack token`, test workers) all get the one made first, not one each."""
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            write_whole(path, make(), secret=True)
        return path.read_bytes()


def write_whole(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Whole or not at all (a service starting meanwhile never reads half a file); keys are
    readable by their owner only from the start (mkstemp makes a new file, 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            if not secret:
                os.fchmod(out.fileno(), 0o644)
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
