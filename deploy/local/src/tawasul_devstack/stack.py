"""The whole dev/test stack as local processes: PostgreSQL, Kafka, MinIO, the SMS gateway, the
SMTP server, ClamAV's daemon, every service and the gateway. Each is a component
(tawasul_devstack.components); this module holds the order they come up in and the lock."""

from __future__ import annotations

import fcntl
import logging
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from tawasul_devstack import install
from tawasul_devstack.components import Component
from tawasul_devstack.components.clamd import Clamd
from tawasul_devstack.components.containers import (
    ContainerKafka,
    ContainerMinio,
    ContainerPostgres,
)
from tawasul_devstack.components.kafka import Kafka
from tawasul_devstack.components.minio import Minio
from tawasul_devstack.components.postgres import Postgres
from tawasul_devstack.components.prometheus import Prometheus
from tawasul_devstack.components.services import (
    Gateway,
    Service,
    ensure_venvs,
    migrate,
    migrate_log,
)
from tawasul_devstack.components.sms_gateway import SmsGateway
from tawasul_devstack.components.smtp import Smtp
from tawasul_devstack.config import (
    MAX_REPLICAS,
    REVIEW_ADMIN,
    SERVICES,
    StackConfig,
    replica_name,
    split_replica,
)
from tawasul_devstack.pki import GATEWAY
from tawasul_devstack.procs import StackError

__all__ = [
    "GATEWAY_PROCESS",
    "MAX_REPLICAS",
    "PROCESSES",
    "REVIEW_ADMIN",
    "SERVICES",
    "Stack",
    "StackConfig",
    "StackError",
    "replica_name",
]

# The infrastructure's processes, in the order they start (PostgreSQL apart: see `up`).
PROCESSES = ("kafka", "minio", "sms-gateway", "smtp", "clamd")
# The channels' HTTP gateway (web, mobile, the establishment portal): a sixth service process,
# a client of intake and docs, started once they serve.
GATEWAY_PROCESS = GATEWAY

# The test tier's Prometheus: built on demand (`install --prometheus`), started on its own.
PROMETHEUS = "prometheus"

# Every process but the services' (named by service and replica).
_INFRA: dict[str, Callable[[StackConfig], Component]] = {
    "kafka": Kafka,
    "minio": Minio,
    "sms-gateway": SmsGateway,
    "smtp": Smtp,
    "clamd": Clamd,
    GATEWAY_PROCESS: Gateway,
    PROMETHEUS: Prometheus,
}

# StackConfig.infra == "containers": these run as containers (testcontainers), the rest stays.
_CONTAINERS: dict[str, Callable[[StackConfig], Component]] = {
    "kafka": ContainerKafka,
    "minio": ContainerMinio,
}

_log = logging.getLogger(__name__)


@contextmanager
def step(what: str) -> Iterator[None]:
    _log.info("%s ...", what)
    started = time.monotonic()
    yield
    _log.info("%s: done in %.1f s", what, time.monotonic() - started)


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        # One component object per name: a process this one started is reaped by it.
        self._postgres: Postgres | ContainerPostgres = (
            ContainerPostgres(config) if config.infra == "containers" else Postgres(config)
        )
        self._components: dict[str, Component] = {"postgres": self._postgres}

    # -- public API -------------------------------------------------------------------------

    def install(self, *, prometheus: bool = False) -> None:
        """Fetch Kafka's jars and build MinIO into the cache dir, and install ClamAV's daemon
        with apt, each only once; with `prometheus`, build Prometheus and promtool too."""
        cache = self.config.cache_dir
        # Side by side: the downloads wait on the network, the builds on the CPU.
        with ThreadPoolExecutor(max_workers=4) as pool:
            steps: list[Callable[[Path], object]] = [
                install.ensure_kafka,
                install.ensure_minio,
                install.ensure_clamav,
            ]
            if prometheus:
                steps.append(install.ensure_prometheus)
            for future in [pool.submit(ensure, cache) for ensure in steps]:
                future.result()

    def up(self) -> None:
        """Bring everything up, reusing whatever already runs; return once all services serve.

        If a step fails (a port another process holds, a service that will not serve), what this
        `up` started is stopped again: the machine is left as it was found, not half a stack
        holding Kafka's and PostgreSQL's memory that only `down` would end."""
        started = time.monotonic()
        with self._state_lock():
            running = {name for name, runs in self.status().items() if runs}
            try:
                self._bring_up()
            except BaseException:
                self._stop([name for name in self._stop_order() if name not in running])
                raise
        _log.info(
            "stack up in %.1f s (state %s)", time.monotonic() - started, self.config.state_dir
        )

    def _bring_up(self) -> None:
        with step(
            "install Kafka jars, MinIO and ClamAV (cached; the first MinIO build takes ~6 min)"
        ):
            self.install()
        infra = [self.component(name) for name in PROCESSES]
        # Kafka's JVM takes longest: start it and the others, then do PostgreSQL meanwhile.
        with step(f"start {', '.join(PROCESSES)}"):
            for component in infra:
                component.start()
        with step("postgres"):
            self._postgres.start()
        with step("certificates (the stack's CA is made once)"):
            self.config.ensure_pki()
        with step("databases"):
            self._postgres.create_databases(SERVICES)
        with step("a venv per service, as its image has (no-op when unchanged)"):
            ensure_venvs([*SERVICES, GATEWAY_PROCESS])
        # Kafka last: its topics are made once it listens.
        for component in sorted(infra, key=lambda c: c.name == "kafka"):
            with step(f"{component.name} ready"):
                component.ready()
        with step("migrations"):
            migrate(self.config, SERVICES)
        with step("services serving"):
            self._start(SERVICES)
        with step("gateway serving"):
            self._start([GATEWAY_PROCESS])

    def down(self) -> None:
        """Stop everything this stack runs; no process or listening port is left behind."""
        started = time.monotonic()
        with self._state_lock():
            self._stop(self._stop_order())
        _log.info("stack down in %.1f s", time.monotonic() - started)

    def start_service(self, name: str, *, wait: bool = True) -> None:
        """Start one process and wait until it serves (unless `wait` is False: a test of a
        service starting while a dependency is down). A service, a replica of one
        ("routing-2"), the gateway, or an infrastructure process (postgres, kafka, minio,
        sms-gateway, smtp, clamd), for tests that restart the infrastructure under the
        services, or the test tier's Prometheus (once `install --prometheus` built it)."""
        self._start([name], wait=wait)

    def stop_service(self, name: str, sig: int = signal.SIGTERM) -> bool:
        """Signal one process (any name start_service takes) and wait for its end; whether it
        was running. SIGKILL stops PostgreSQL as a crash would."""
        return self.component(name).stop(sig)

    def status(self) -> dict[str, bool]:
        """Whether each process runs; a service's extra replicas and Prometheus only while
        they run."""
        extra = self.replicas()
        if self.component(PROMETHEUS).pid() is not None:
            extra.append(PROMETHEUS)
        return {
            **{
                name: self.component(name).pid() is not None
                for name in ("postgres", *PROCESSES, *SERVICES, GATEWAY_PROCESS)
            },
            **dict.fromkeys(extra, True),
        }

    def replicas(self) -> list[str]:
        """The extra replicas of services that run ("routing-2", ...)."""
        return [
            name
            for service in SERVICES
            for replica in range(2, MAX_REPLICAS + 1)
            if self.component(name := replica_name(service, replica)).pid() is not None
        ]

    def pid(self, name: str) -> int | None:
        """The pid of a running process of this stack (a service, kafka, minio, ...)."""
        return self.component(name).pid()

    def log_path(self, name: str) -> Path:
        """A process's log, or for "<service>-migrate" that of the service's last migrations
        (run by `up`, not a process the stack keeps)."""
        service = name.removesuffix("-migrate")
        if service != name and service in SERVICES:
            return migrate_log(self.config, service)
        return self.component(name).log_file

    def component(self, name: str) -> Component:
        """The component of a process name; StackError for a name this stack has not."""
        if name not in self._components:
            self._components[name] = self._make(name)
        return self._components[name]

    # -- internals --------------------------------------------------------------------------

    def _stop_order(self) -> list[str]:
        """Every process of the stack, those that depend on others first."""
        return [
            PROMETHEUS,
            GATEWAY_PROCESS,
            *self.replicas(),
            *reversed(SERVICES),
            *reversed(PROCESSES),
            "postgres",
        ]

    def _stop(self, names: list[str]) -> None:
        for name in names:
            began = time.monotonic()
            if self.component(name).stop(signal.SIGTERM):
                _log.info("stopped %s in %.1f s", name, time.monotonic() - began)

    def _make(self, name: str) -> Component:
        if self.config.infra == "containers" and name in _CONTAINERS:
            return _CONTAINERS[name](self.config)
        if name in _INFRA:
            return _INFRA[name](self.config)
        found = split_replica(name)
        if found is None:
            raise StackError(f"no process named {name!r} in this stack")
        return Service(self.config, *found, name=name)

    def _start(self, names: list[str] | tuple[str, ...], *, wait: bool = True) -> None:
        """Start them all, then wait for each: together they take as long as the slowest."""
        components = [self.component(name) for name in names]
        for component in components:
            component.start()
        if wait:
            for component in components:
                component.ready()

    @contextmanager
    def _state_lock(self) -> Iterator[None]:
        """One `up` or `down` at a time per state dir (e.g. parallel test workers)."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.config.state_dir / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
