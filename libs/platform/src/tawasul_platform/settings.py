"""Settings every service shares; each service subclasses with its own fields.

Every knob is an environment variable prefixed TAWASUL_; a missing, malformed or out-of-range
one fails at start, told as one line naming the variable (`problems`).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterable
from datetime import time
from pathlib import Path
from typing import Annotated, Self, TypeVar

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from tawasul_calendar import ConfigError, OfficeHours, Sector

from tawasul_platform.identity import Issuer
from tawasul_platform.kafka_tls import client_context
from tawasul_platform.logs import LogFormat, LogLevel
from tawasul_platform.tls import TlsConfig, tls_config
from tawasul_platform.workdays import working_calendar

PREFIX = "TAWASUL_"
T = TypeVar("T")
DATABASE_URL_FORM = "expected postgresql+asyncpg://user:password@host:port/database"
OFFICE_OPENS = time(7, 30)
OFFICE_CLOSES = time(14, 30)
# The ports Linux gives a connection's own end, and its default where the host does not say.
EPHEMERAL_PORTS_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
EPHEMERAL_PORTS = (32768, 60999)


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


# TAWASUL_LOG_LEVEL in any case ("info"); a name `logging` does not know ("trace") is a bad
# setting, not a traceback from configure_logging.
LogLevelSetting = Annotated[LogLevel, BeforeValidator(_upper)]


class CannotStart(Exception):
    """What a setting names cannot be had on this host (its address is in use): told, like a
    bad setting, as one line naming the variable, not a traceback."""


def listening(setting: str, address: str, listen: Callable[[str, int], T]) -> T:
    """`listen(host, port)` for a host:port `address`, or CannotStart naming `setting`."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise CannotStart(f"{setting}: {address} is not host:port")
    try:
        return listen(host.strip("[]") or "0.0.0.0", int(port))
    except OSError as error:
        raise CannotStart(
            f"{setting}: cannot listen on {address}: {error.strerror or error}"
        ) from None


def ephemeral_ports(source: Path = EPHEMERAL_PORTS_FILE) -> tuple[int, int]:
    """The first and last port this host gives a connection's own end."""
    try:
        first, last = map(int, source.read_text().split())
    except (OSError, ValueError):
        return EPHEMERAL_PORTS
    return first, last


def outside_ephemeral(
    setting: str, ports: Iterable[int], source: Path = EPHEMERAL_PORTS_FILE
) -> None:
    """CannotStart naming `setting` when any of `ports`, which clients on this host connect
    to, is in the host's ephemeral range: connecting to one while nothing listens on it (Kafka
    down) may be given that port as its own end and meet itself (TCP simultaneous open), and
    the client takes its own bytes for the server's answer."""
    first, last = ephemeral_ports(source)
    inside = sorted(port for port in ports if first <= port <= last)
    if inside:
        raise CannotStart(
            f"{setting}: ports {inside[0]}-{inside[-1]} are in this host's ephemeral range "
            f"{first}-{last} (net.ipv4.ip_local_port_range), where a client may connect to "
            f"itself while nothing listens; choose ports below {first} or above {last}"
        )


def loadable(path: Path, load: Callable[[Path], object]) -> Path:
    """`path` once `load` reads it: a file setting's check, so a missing file or a typo in it
    stops the process with one line naming the variable, not a traceback from the build."""
    try:
        load(path)
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    except KeyError as error:
        raise ValueError(f"{path}: {error} is missing") from None
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: {error}") from None
    return path


def problems(error: ValidationError | SettingsError) -> list[str]:
    """One line per setting `error` refuses, naming its environment variable and never its
    value (a URL or a key may hold a secret)."""
    if isinstance(error, SettingsError):
        # pydantic-settings says only which field's text it could not parse (JSON, a list).
        field = re.search(r'field "(\w+)"', str(error))
        return [f"{PREFIX}{field[1].upper()}: cannot be parsed" if field else str(error)]
    lines = []
    for each in error.errors(include_url=False, include_input=False):
        name, *within = each["loc"] or ("",)
        where = f"{PREFIX}{str(name).upper()}" if name else "settings"
        if within:
            where += f" ({'.'.join(map(str, within))})"
        # A validator's own ValueError says what is wrong; pydantic's prefix adds nothing.
        lines.append(f"{where}: {each['msg'].removeprefix('Value error, ')}")
    return lines


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    database_url: str
    kafka_bootstrap: str
    # The brokers' TLS listener, with this process's certificate (tawasul_platform.kafka_tls).
    kafka_tls: bool = False
    grpc_address: str
    # The identity providers whose tokens this service accepts (JSON list of {issuer, kind,
    # jwks}) and the audience a token must name; each service sets its own default.
    identity_issuers: list[Issuer]
    identity_audience: str
    # Longer-lived tokens are refused even when signed: a stolen one stays useful for less.
    identity_max_token_seconds: int = Field(default=12 * 3600, ge=1)
    # How old the providers' keys may get before they are read again: a key a provider
    # withdraws is refused about this long later. Not below a second (each read is a request
    # to the provider), not above an hour.
    identity_refresh_seconds: float = Field(default=60.0, ge=1, le=3600)
    # Mutual TLS on this service's server and on its channels to other services: all three
    # or none (plaintext); see tawasul_platform.tls.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    log_level: LogLevelSetting = "INFO"
    # json: one JSON object a line, for shippers (the default); console: for people, in dev.
    log_format: LogFormat = "json"
    # OTLP/gRPC collector for traces (http://host:4317); empty: spans are not exported.
    otlp_endpoint: str = ""
    # Development: print every finished span on stdout as well.
    trace_console: bool = False
    # host:port of the Prometheus /metrics endpoint (tawasul_platform.metrics); empty: none.
    metrics_address: str = ""
    # How often the gauges read from the database (outbox backlog, review's queues) refresh.
    metrics_seconds: float = Field(default=15.0, gt=0)
    # gRPC calls one process serves at once; more are answered RESOURCE_EXHAUSTED at once
    # rather than queued past their deadlines.
    grpc_max_concurrent_rpcs: int = Field(default=200, ge=1)
    # A handler still running after this is cancelled and answered DEADLINE_EXCEEDED.
    grpc_handler_seconds: float = Field(default=30.0, gt=0)
    # A caller's connection is closed after about this long, so that it resolves the service's
    # name again and spreads its calls over the replicas started meanwhile (ServerLimits).
    grpc_connection_seconds: float = Field(default=60.0, gt=0)
    # Seconds in-flight RPCs and event handlers get to finish on SIGTERM.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # From SIGTERM to exit at most: past it the process exits with whatever still hangs.
    # Below the orchestrator's kill timeout (Kubernetes: terminationGracePeriodSeconds, 30).
    shutdown_budget_seconds: float = Field(default=25.0, gt=0)
    # A consumed event is tried this many times, with backoff, before it is dead-lettered.
    consumer_max_attempts: int = Field(default=4, ge=1)
    consumer_backoff_seconds: float = Field(default=0.5, ge=0)
    # Events one poll hands a consumer at most, applied in one transaction when the handler
    # only touches the database; handlers that call out apply this many keys at once.
    consumer_max_batch: int = Field(default=200, ge=1)
    consumer_key_concurrency: int = Field(default=8, ge=1)
    # How long a poll waits for records; it returns as soon as any arrive, so this is no
    # delay, only how often an idle consumer's loop turns.
    consumer_poll_ms: int = Field(default=500, ge=1)
    # Applied polls' offsets are committed together this long after the first of them; a
    # crash re-delivers at most this long's worth, which the inbox skips.
    consumer_commit_seconds: float = Field(default=0.1, ge=0)
    # How long the broker may hold a fetch to gather this service's records: 0 answers as soon
    # as one is there, for the groups a request's path waits on (routing, review). A service
    # nobody waits on at each step sets more and takes a steady stream a poll's worth at a
    # time: a poll costs the service, Kafka and PostgreSQL about the same for one record as
    # for fifty.
    consumer_gather_ms: int = Field(default=0, ge=0, le=5000)
    # A process opens at most 2 × db_pool_size connections (docs/database-connections.md).
    db_pool_size: int = Field(default=10, ge=1)
    # How long a statement waits for a free connection before the call is UNAVAILABLE.
    db_pool_timeout_seconds: float = Field(default=2.0, gt=0)
    # Safety net only: the relay wakes on PostgreSQL NOTIFY at each commit.
    outbox_fallback_seconds: float = Field(default=5.0, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1)
    # Published outbox rows are kept this long, for inspection, then pruned; inbox entries are
    # kept as long as the topics keep events (docs/retention.md).
    outbox_keep_hours: float = Field(default=72.0, gt=0)
    prune_seconds: float = Field(default=3600.0, gt=0)
    # The Saudi working-day calendar: whose Eid breaks apply, office hours for hour-based SLAs,
    # and a newer closures file than the shipped one (see tawasul_platform.workdays).
    calendar_sector: Sector = Sector.PUBLIC
    office_opens: time = OFFICE_OPENS
    office_closes: time = OFFICE_CLOSES
    calendar_config_path: Path | None = None

    _tls: TlsConfig | None = PrivateAttr(default=None)
    _kafka_ssl: ssl.SSLContext | None = PrivateAttr(default=None)

    @field_validator("database_url")
    @classmethod
    def _asyncpg(cls, url: str) -> str:
        # Checked here: the engine would fail later, deep in the build, naming a driver module
        # (a CloudNativePG `uri`, postgresql://, asks for psycopg), never the variable.
        try:
            driver = make_url(url).drivername
        except ArgumentError:
            raise ValueError(f"not a database URL; {DATABASE_URL_FORM}") from None
        if driver != "postgresql+asyncpg":
            raise ValueError(f"the driver is {driver}; {DATABASE_URL_FORM}")
        return url

    @field_validator("calendar_config_path")
    @classmethod
    def _calendar_config(cls, path: Path | None) -> Path | None:
        # The file operators edit each year (an Eid announcement), so the likeliest to hold a typo.
        if path is None:
            return None
        return loadable(
            path, lambda p: working_calendar(Sector.PUBLIC, OFFICE_OPENS, OFFICE_CLOSES, p)
        )

    @model_validator(mode="after")
    def _office_hours(self) -> Self:
        try:
            OfficeHours(opens=self.office_opens, closes=self.office_closes)
        except ConfigError as error:
            raise ValueError(f"{error} (TAWASUL_OFFICE_OPENS, TAWASUL_OFFICE_CLOSES)") from None
        return self

    @model_validator(mode="after")
    def _drain_within_budget(self) -> Self:
        # Past the budget the process exits with handlers still draining.
        if self.shutdown_grace_seconds >= self.shutdown_budget_seconds:
            raise ValueError(
                "shutdown_grace_seconds must be below shutdown_budget_seconds "
                "(TAWASUL_SHUTDOWN_GRACE_SECONDS, TAWASUL_SHUTDOWN_BUDGET_SECONDS)"
            )
        return self

    @model_validator(mode="after")
    def _load_tls(self) -> Self:
        # Read at start: a half-set, unreadable or mismatched TLS config stops the process before
        # it serves. Renewed files are taken later by its server and its Kafka context.
        self._tls = tls_config(
            cert_file=self.tls_cert_file, key_file=self.tls_key_file, ca_file=self.tls_ca_file
        )
        if self.kafka_tls:
            if self.tls_cert_file is None or self.tls_key_file is None or self.tls_ca_file is None:
                raise ValueError("kafka_tls needs this process's certificate (tls_*_file)")
            self._kafka_ssl = client_context(
                cert_file=self.tls_cert_file, key_file=self.tls_key_file, ca_file=self.tls_ca_file
            )
        return self

    @property
    def kafka_ssl(self) -> ssl.SSLContext | None:
        """How every Kafka client of the process reaches the brokers: mutual TLS, or None for
        plaintext (tawasul_platform.kafka_tls)."""
        return self._kafka_ssl

    @property
    def tls(self) -> TlsConfig | None:
        """Mutual TLS for the server and every channel; None for plaintext."""
        return self._tls
