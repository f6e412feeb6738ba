"""The gateway's settings: every knob an environment variable prefixed TAWASUL_."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from tawasul_platform.settings import LogLevelSetting

WEB_DIR = Path(__file__).with_name("web")


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAWASUL_", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    # Proxies whose X-Forwarded-For names the client (uvicorn's forwarded_allow_ips).
    forwarded_allow_ips: str = "127.0.0.1"
    intake_address: str
    docs_address: str
    # Mutual TLS to intake and docs with the gateway's own client certificate: all or none.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    call_timeout_seconds: float = Field(default=10.0, gt=0)
    upload_timeout_seconds: float = Field(default=120.0, gt=0)
    catalog_cache_seconds: float = Field(default=300.0, ge=0)
    # JSON bodies, and uploaded files (docs applies each document kind's own, smaller limit).
    max_body_bytes: int = Field(default=256 * 1024, gt=0)
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_bulk_bytes: int = Field(default=1024 * 1024, gt=0)
    # Calls per minute per signed-in subject, and per client address whoever signs in
    # (several people may share an address); tracking without sign-in per address.
    rate_per_minute: float = Field(default=120.0, gt=0)
    rate_per_minute_per_address: float = Field(default=600.0, gt=0)
    tracking_per_minute_per_address: float = Field(default=10.0, gt=0)
    # The establishment portal's bulk filing: rows per file, files per hour per establishment.
    bulk_max_rows: int = Field(default=100, gt=0)
    bulk_files_per_hour: float = Field(default=30.0, gt=0)
    # Development only: the stand-in for the national single sign-on. It signs end users'
    # tokens with the development users' key (<dev identity dir>/users.key.pem, whose public
    # half is users.jwks.json) and lists the development registry's sample people.
    dev_sign_in: bool = False
    dev_identity_dir: Path | None = None
    dev_registry_file: Path | None = None
    dev_token_seconds: int = Field(default=3600, gt=0, le=12 * 3600)
    # The citizen web page; served at / when the directory exists.
    web_dir: Path = WEB_DIR
    log_level: LogLevelSetting = "INFO"
    # OTLP/gRPC collector for traces (http://host:4317); empty: spans are not exported.
    otlp_endpoint: str = ""
    # Development: print every finished span on stdout as well.
    trace_console: bool = False
    # host:port of the Prometheus /metrics endpoint, apart from the public API; empty: none.
    metrics_address: str = ""

    @model_validator(mode="after")
    def _check(self) -> Self:
        files = (self.tls_cert_file, self.tls_key_file, self.tls_ca_file)
        if any(files) and not all(files):
            raise ValueError(
                "TLS is half configured: set TAWASUL_TLS_CERT_FILE, TAWASUL_TLS_KEY_FILE and "
                "TAWASUL_TLS_CA_FILE, or none of them"
            )
        if self.dev_sign_in and (self.dev_identity_dir is None or self.dev_registry_file is None):
            raise ValueError(
                "TAWASUL_DEV_SIGN_IN needs TAWASUL_DEV_IDENTITY_DIR and TAWASUL_DEV_REGISTRY_FILE"
            )
        return self
