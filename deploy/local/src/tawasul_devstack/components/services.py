"""Tawasul's own processes: each service (or a replica of one), its migrations, and the
channels' HTTP gateway."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tawasul_platform.tls import TlsConfig, open_sync_channel

from tawasul_devstack import venvs
from tawasul_devstack.components import LocalProcess, http_ok
from tawasul_devstack.config import StackConfig, repo_root
from tawasul_devstack.pki import GATEWAY
from tawasul_devstack.procs import StackError, tail

SERVICE_READY_TIMEOUT = 90.0
GATEWAY_READY_TIMEOUT = 30.0
MIGRATE_TIMEOUT = 120.0

_log = logging.getLogger(__name__)


class Service(LocalProcess):
    """One process of a service: replica 1 is named after it, replica n "<service>-<n>"."""

    def __init__(self, config: StackConfig, service: str, replica: int, name: str) -> None:
        super().__init__(config, name)
        self.address = config.grpc_address(service, replica)
        self._service = service
        self._replica = replica

    def start(self) -> None:
        # Also makes the certificates of a service started on its own, before any `up`.
        self.config.ensure_pki()
        # Its /metrics port too: taken, the process would die at start on a bare OSError.
        self.spawn(
            [_script(f"tawasul-{self._service}"), "serve"],
            self.config.service_env(self._service, self._replica),
            [
                self.config.grpc_port(self._service, self._replica),
                self.config.metrics_port(self._service, self._replica),
            ],
        )

    def ready(self) -> None:
        probe = self.config.tls()
        self.proc.wait_until(
            lambda: _serving(self.address, probe), SERVICE_READY_TIMEOUT, "SERVING health"
        )
        _log.info("  %s serving on %s", self.name, self.address)


class Gateway(LocalProcess):
    """The channels' HTTP gateway (web, mobile, the establishment portal), a client of intake
    and docs: started once they serve."""

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, GATEWAY)

    def start(self) -> None:
        cfg = self.config
        cfg.ensure_pki()
        self.spawn(
            [_script("tawasul-gateway"), "serve"],
            cfg.gateway_env(),
            [cfg.gateway_port, cfg.metrics_port(GATEWAY)],
        )

    def ready(self) -> None:
        url = f"{self.config.gateway_url}/healthz"
        self.proc.wait_until(lambda: http_ok(url), GATEWAY_READY_TIMEOUT, "readiness")
        _log.info("  gateway serving on %s", self.config.gateway_url)


def migrate_log(config: StackConfig, service: str) -> Path:
    """The log of a service's last `migrate` (`tawasul-stack logs <service>-migrate`)."""
    return config.state_dir / "logs" / f"{service}-migrate.log"


def migrate(config: StackConfig, services: Iterable[str]) -> None:
    """`tawasul-<svc> migrate` for the services at once: their databases are separate."""
    runs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    for service in services:
        log = migrate_log(config, service)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            runs[service] = (
                subprocess.Popen(
                    [_script(f"tawasul-{service}"), "migrate"],
                    env=config.service_env(service),
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


def _serving(address: str, tls: TlsConfig) -> bool:
    with open_sync_channel(address, tls) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1.0
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def ensure_venvs(services: Iterable[str]) -> None:
    """Each process's own venv (tawasul_devstack.venvs), before any of them starts."""
    venvs.ensure(repo_root(), [f"tawasul-{service}" for service in services])


def _script(package: str) -> str:
    """A process's console script, named after its package, from the package's own venv."""
    return venvs.script(repo_root(), package, package)
