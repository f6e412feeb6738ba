"""Composition root: the only place the gateway's adapters are built and wired.

`app` takes its adapters as arguments (the SDK client's factory, the stand-in sign-in), so
the service tier builds the real app on in-process servers; `build` makes the real ones from
settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
from fastapi import FastAPI
from tawasul_platform import tracing
from tawasul_platform.tls import TlsConfig, renewing, tls_config
from tawasul_sdk import TawasulClient, Tls, open_channel

from tawasul_gateway.adapters.dev_identity import DevRegistry, DevTokenIssuer
from tawasul_gateway.adapters.ratelimit import RateLimiter
from tawasul_gateway.entrypoints import language
from tawasul_gateway.entrypoints.http import DevSignIn, Limits, create_app
from tawasul_gateway.settings import GatewaySettings


def limits(settings: GatewaySettings, *, clock: Callable[[], float] = time.monotonic) -> Limits:
    return Limits(
        per_subject=RateLimiter.per_minute(settings.rate_per_minute, clock=clock),
        per_address=RateLimiter.per_minute(settings.rate_per_minute_per_address, clock=clock),
        tracking=RateLimiter.per_minute(settings.tracking_per_minute_per_address, clock=clock),
        bulk=RateLimiter.per_hour(settings.bulk_files_per_hour, clock=clock),
    )


def dev_sign_in(settings: GatewaySettings) -> DevSignIn | None:
    """The stand-in sign-in when the settings enable it (development only)."""
    if not settings.dev_sign_in:
        return None
    assert settings.dev_identity_dir is not None
    assert settings.dev_registry_file is not None
    return DevSignIn(
        registry=DevRegistry(settings.dev_registry_file),
        issuer=DevTokenIssuer(settings.dev_identity_dir, ttl_seconds=settings.dev_token_seconds),
    )


def tls(settings: GatewaySettings) -> TlsConfig | None:
    """The gateway's certificate, key and CA, checked (a key not the certificate's stops it
    at start), and read again once renewed (`channel`)."""
    return tls_config(
        cert_file=settings.tls_cert_file,
        key_file=settings.tls_key_file,
        ca_file=settings.tls_ca_file,
    )


def channel(target: str, config: TlsConfig | None) -> grpc.aio.Channel:
    """The SDK's channel to `target`, opened again with the files once cert-manager renewed
    them: the calls after the renewal show the new certificate, with no restart
    (tawasul_platform.tls.renewing, as every service's channels)."""
    if config is None:
        return open_channel(target, None)
    return renewing(
        config, lambda current: open_channel(target, Tls(current.cert, current.key, current.ca))
    )


def app(
    settings: GatewaySettings,
    *,
    client_factory: Callable[[], TawasulClient],
    dev: DevSignIn | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    return create_app(
        settings, client_factory=client_factory, limits=limits(settings, clock=clock), dev=dev
    )


def client_factory(settings: GatewaySettings) -> Callable[[], TawasulClient]:
    """The SDK's channels to intake and docs with the gateway's own certificate, renewed
    without a restart (`channel`); each call carries the trace of the HTTP request it serves,
    so intake's and docs' spans are in it, and its language, so their refusals come in it."""
    config = tls(settings)

    def client() -> TawasulClient:
        return TawasulClient(
            intake=channel(settings.intake_address, config),
            docs=channel(settings.docs_address, config),
            owns_channels=True,
            timeout=settings.call_timeout_seconds,
            upload_timeout=settings.upload_timeout_seconds,
            catalog_seconds=settings.catalog_cache_seconds,
            traceparent=tracing.active_traceparent,
            locale=language.current,
        )

    return client


def build(settings: GatewaySettings) -> FastAPI:
    """The app with its real adapters: the SDK's client, and the stand-in sign-in when
    enabled."""
    return app(settings, client_factory=client_factory(settings), dev=dev_sign_in(settings))
