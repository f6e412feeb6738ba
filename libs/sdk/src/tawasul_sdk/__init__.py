"""Tawasul's channel SDK: a typed async client of intake and docs for web, mobile and the
establishment portal. It depends on the generated contracts, grpcio and protobuf only."""

from tawasul_sdk.auth import Credentials, Token, TokenProvider, jwt_expiry
from tawasul_sdk.channel import RenewingChannel, Tls, open_channel
from tawasul_sdk.client import (
    CHUNK_SIZE,
    NO_RETRY,
    TRACEPARENT,
    LocaleSource,
    RetryPolicy,
    TawasulClient,
    TraceparentSource,
    rechunk,
)
from tawasul_sdk.errors import TawasulError

__all__ = [
    "CHUNK_SIZE",
    "NO_RETRY",
    "TRACEPARENT",
    "Credentials",
    "LocaleSource",
    "RenewingChannel",
    "RetryPolicy",
    "TawasulClient",
    "TawasulError",
    "Tls",
    "Token",
    "TokenProvider",
    "TraceparentSource",
    "jwt_expiry",
    "open_channel",
    "rechunk",
]
