"""Kafka over mutual TLS, with the certificate a process already shows on gRPC.

With `kafka_tls` (TAWASUL_KAFKA_TLS) a service reaches the brokers on their TLS listener: it
verifies the broker's certificate against the office's CA and the broker's name, and shows its
own (TAWASUL_TLS_CERT_FILE, _KEY_FILE), which the broker requires: events carry beneficiaries'
names, ID numbers and mobile numbers, and nothing without a certificate of the office reads or
writes them. Every aiokafka client the platform builds (producer, consumer groups, admin)
takes `security(context)`; None is plaintext (tests, tools on the dev stack's plain listener).

The context takes the files again once they are renewed (tawasul_platform.tls.Renewals), at
the next connection it makes: a broker connection already open keeps the certificate it
showed, and a renewed one is shown when it reconnects. The CA bundle is taken whole: a CA
dropped from it is no longer trusted from that connection on.
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
from pathlib import Path
from typing import Any, TypeVar

from tawasul_platform.tls import ENV_CA, ENV_CERT, ENV_KEY, Renewals, TlsFiles

ENV_KAFKA_TLS = "TAWASUL_KAFKA_TLS"
ENV_KAFKA_BOOTSTRAP = "TAWASUL_KAFKA_BOOTSTRAP"

log = logging.getLogger(__name__)


class RenewingContext(ssl.SSLContext):
    """An SSLContext whose connections take the files again once they were renewed.

    aiokafka keeps the context it was given and passes it to each connection it opens
    (`loop.create_connection(ssl=...)`), whose TLS transport, asyncio's or uvloop's, starts with
    `wrap_bio`. That call goes to a context built afresh from the renewed files (`renewed`):
    loading them into this one would only add CAs to those it trusts, and a pair failing to
    load (the files rewritten again since Renewals read them) would leave it without a
    certificate. A fresh one that fails to load is dropped, and the one in use stays.
    """

    renewals: Renewals | None = None
    renewed: ssl.SSLContext | None = None

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        config = None if self.renewals is None else self.renewals.renewed()
        if config is not None and config.files is not None:
            try:
                self.renewed = _context(
                    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
                    cert_file=config.files.cert,
                    key_file=config.files.key,
                    # The bundle Renewals read and checked; OpenSSL checks the pair it loads.
                    cadata=config.ca.decode(),
                )
            except (OSError, ssl.SSLError) as exc:
                log.error("renewed TLS files not loaded for Kafka, the ones in use stay: %s", exc)
        if self.renewed is not None:
            return self.renewed.wrap_bio(*args, **kwargs)
        return super().wrap_bio(*args, **kwargs)


Context = TypeVar("Context", bound=ssl.SSLContext)


def _context(
    context: Context,
    *,
    cert_file: Path,
    key_file: Path,
    cafile: Path | None = None,
    cadata: str | None = None,
) -> Context:
    """`context` with ssl.create_default_context's settings, trusting only the CA given and
    showing this process's certificate."""
    defaults = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.options, context.verify_flags = defaults.options, defaults.verify_flags
    context.load_verify_locations(cafile=cafile, cadata=cadata)
    context.load_cert_chain(cert_file, key_file)
    return context


def client_context(*, cert_file: Path, key_file: Path, ca_file: Path) -> ssl.SSLContext:
    """Trusts brokers the CA signed, for the name dialled, and shows this process's certificate.

    ValueError names the files when one is missing, unreadable or no PEM of its kind (ssl's
    own errors name none), so the tools print it as their error line.
    """
    try:
        context = _context(
            RenewingContext(ssl.PROTOCOL_TLS_CLIENT),
            cert_file=cert_file,
            key_file=key_file,
            cafile=ca_file,
        )
        context.renewals = Renewals(TlsFiles(cert_file, key_file, ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"cannot load Kafka's TLS files ({ENV_CERT}={cert_file}, {ENV_KEY}={key_file},"
            f" {ENV_CA}={ca_file}): {exc}"
        ) from exc
    return context


def security(context: ssl.SSLContext | None) -> dict[str, Any]:
    """aiokafka's keyword arguments for `context`: none for plaintext."""
    if context is None:
        return {}
    return {"security_protocol": "SSL", "ssl_context": context}


def from_env() -> ssl.SSLContext | None:
    """For tools run in a service's pod (tawasul-dead-letters): TLS as the service has it."""
    if os.environ.get(ENV_KAFKA_TLS, "").lower() not in ("1", "true", "yes", "on"):
        return None
    files = [os.environ.get(name, "") for name in (ENV_CERT, ENV_KEY, ENV_CA)]
    if not all(files):
        raise ValueError(f"{ENV_KAFKA_TLS} needs {ENV_CERT}, {ENV_KEY} and {ENV_CA}")
    cert, key, ca = map(Path, files)
    return client_context(cert_file=cert, key_file=key, ca_file=ca)


def add_bootstrap_argument(parser: argparse.ArgumentParser) -> None:
    """The operators' tools' `--bootstrap`, else the pod's TAWASUL_KAFKA_BOOTSTRAP."""
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get(ENV_KAFKA_BOOTSTRAP, ""),
        help=f"Kafka's bootstrap servers (default: ${ENV_KAFKA_BOOTSTRAP})",
    )


def require_bootstrap(parser: argparse.ArgumentParser, bootstrap: str) -> None:
    """Stops the tool when neither `--bootstrap` nor the environment names Kafka."""
    if not bootstrap:
        sys.exit(f"{parser.prog}: --bootstrap or {ENV_KAFKA_BOOTSTRAP} names Kafka")
