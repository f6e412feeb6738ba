"""The dev overlay (deploy/k8s/overlays/dev) run for real with `podman kube play`.

`kubectl kustomize deploy/k8s/overlays/dev` renders Deployments, Jobs, Services, ConfigMaps,
PodDisruptionBudgets and HPAs for a cluster. podman 4.3 (Debian bookworm) plays Pods and
Deployments, not Jobs, Services or Secrets, and has no cluster DNS. So this module renders
the overlay once more, for podman (`render`), keeping of each Deployment its image, args,
security context (non-root uid 10001, read-only root, no capabilities) and its settings, and
changing what only a cluster provides:

- every replica of a Deployment is a Pod of its own (`<name>`, `<name>-2`, …; podman plays
  one pod per Deployment), and each migration Job a Pod that runs once (restartPolicy Never);
- the pods share the host's network (hostNetwork; podman 4.3 has no cluster DNS, and its
  hostAliases do not reach a pod on the host's network), so the overlay's in-cluster
  endpoints (kafka:9092, postgres:5432, minio:9000, clamav:3310, sms-gateway, smtp, docs,
  notify, intake) become 127.0.0.1, each on its own port, derived from one port base as
  deploy/local derives them (`StackConfig`), so the demo's journey and the tests' clients
  reach the pods as they reach the local processes (the certificates carry 127.0.0.1);
- the ConfigMaps' values and the Secrets the base only names are resolved into each
  container's environment (`$(VAR)` references too); the Secrets are development values
  made here, the certificates are the dev PKI's (CN = the process, SANs its name, localhost,
  127.0.0.1), and the identity providers are deploy/local's stand-ins, whose public keys are
  mounted where the ConfigMap tawasul-identity would be;
- the probes are dropped (podman runs them with systemd timers, which these machines lack);
  readiness is checked here instead, through grpc.health.v1 with mutual TLS.

The infrastructure the overlay expects (PostgreSQL, Kafka, MinIO, ClamAV, the SMS gateway
and SMTP stand-ins) comes from the images deploy/images/build.sh makes, as pods beside them.

    uv run tawasul-podplay up [--replicas 2]    # or deploy/podman/play.sh up
    uv run tawasul-podplay demo                 # the demo's journey through the pods
    uv run tawasul-podplay down
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tawasul_platform.settings import CannotStart, outside_ephemeral
from tawasul_platform.tls import TlsConfig, open_sync_channel

from tawasul_devstack import clamav, kafka, smtp_server
from tawasul_devstack.config import SERVICES, StackConfig, repo_root
from tawasul_devstack.identity import ISSUERS
from tawasul_devstack.procs import StackError, port_in_use

__all__ = ["PodConfig", "PodPlay", "main", "podman_available", "render"]

_log = logging.getLogger(__name__)

TAG = "0.1.0"
PROCESSES = (*SERVICES, "gateway")
# The replicas that share each service's consumer groups (routing and review: two).
DEFAULT_REPLICAS = {"routing": 2, "review": 2}
INFRA_IMAGES = {
    "postgres": "localhost/tawasul/postgres:18",
    "kafka": "localhost/tawasul/kafka:4.1.1",
    "minio": f"localhost/tawasul/minio:{TAG}",
    "clamav": f"localhost/tawasul/clamav:{TAG}",
    "devstack": f"localhost/tawasul/devstack:{TAG}",
}
UID = 10001
READY_TIMEOUT = 120.0
MIGRATE_TIMEOUT = 180.0
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def podman_available() -> bool:
    return shutil.which("podman") is not None


@dataclass(frozen=True)
class PodConfig(StackConfig):
    """A StackConfig whose ports are the pods' (on the host's network); PostgreSQL listens on
    TCP here, not on a Unix socket, and docs' bucket is the overlay's."""

    # Below the host's ephemeral ports (32768-60999 on Linux), as every stack's are.
    port_base: int = 26000
    # Each process's replica count (1 unless named).
    replicas: Mapping[str, int] = dataclasses.field(default_factory=lambda: dict(DEFAULT_REPLICAS))

    @classmethod
    def for_pods(cls, state_dir: Path | None = None, port_base: int | None = None) -> PodConfig:
        env = os.environ
        base = port_base or int(env.get("TAWASUL_POD_PORT_BASE") or 26000)
        return cls(
            state_dir=state_dir or repo_root() / ".state" / f"pods-{base}",
            cache_dir=Path(env.get("TAWASUL_CACHE_DIR") or Path.home() / ".cache" / "tawasul"),
            port_base=base,
        )

    @property
    def prefix(self) -> str:
        """Pod names start with it: two plays (a developer's, the tests') run side by side."""
        return f"tw{self.port_base}"

    @property
    def pg_port(self) -> int:
        return self.port_base + 54

    @property
    def s3_bucket(self) -> str:
        return "tawasul-documents"

    def db_user(self, service: str) -> str:
        return f"tawasul_{service}"

    def database_url(self, service: str) -> str:
        return (
            f"postgresql+asyncpg://{self.db_user(service)}:{self.db_password(service)}"
            f"@127.0.0.1:{self.pg_port}/tawasul_{service}"
        )

    def db_password(self, service: str) -> str:
        return _kept(self.state_dir / "secrets" / f"{service}-db.password")

    @property
    def tracking_secret(self) -> str:
        return _kept(self.state_dir / "secrets" / "tracking.secret")

    def pod_name(self, name: str, replica: int = 1) -> str:
        return f"{self.prefix}-{name}" if replica == 1 else f"{self.prefix}-{name}-{replica}"

    def count(self, process: str) -> int:
        return int(self.replicas.get(process, 1))


def _kept(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.urlsafe_b64encode(secrets.token_bytes(24)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


# -- rendering ---------------------------------------------------------------------------------


def kustomize(overlay: Path | None = None) -> list[dict[str, Any]]:
    """The overlay as `kubectl kustomize` renders it (kubectl from this venv's bin)."""
    import yaml  # a dev dependency (types-pyyaml, kubernetes-validate)

    overlay = overlay or repo_root() / "deploy" / "k8s" / "overlays" / "dev"
    kubectl = Path(sys.executable).with_name("kubectl")
    binary = str(kubectl) if kubectl.is_file() else "kubectl"
    out = subprocess.run(
        [binary, "kustomize", str(overlay)], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _secrets(config: PodConfig) -> dict[str, dict[str, str]]:
    """Development values of the Secrets the base names (deploy/README.md's table)."""
    found: dict[str, dict[str, str]] = {
        f"{service}-db-app": {
            "username": config.db_user(service),
            "password": config.db_password(service),
        }
        for service in SERVICES
    }
    found["intake-tracking"] = {"secret": config.tracking_secret}
    found["docs-s3"] = {
        "CONSOLE_ACCESS_KEY": config.minio_access_key,
        "CONSOLE_SECRET_KEY": config.minio_secret_key,
    }
    # The SMTP stand-in takes mail without logging in (and would refuse AUTH without TLS).
    found["notify-providers"] = {
        "sms-user": config.sms_gateway_user,
        "sms-password": config.sms_gateway_password,
        "smtp-user": "",
        "smtp-password": "",
    }
    return found


def _overrides(config: PodConfig, process: str, replica: int) -> dict[str, str]:
    """What a pod on the host's network is told instead of the cluster's endpoints."""
    identity = [
        {
            "issuer": ISSUERS[kind],
            "kind": kind.value,
            "jwks": f"/etc/tawasul/identity/{kind.value}.jwks.json",
        }
        for kind in ISSUERS
    ]
    values = {
        "TAWASUL_KAFKA_BOOTSTRAP": f"127.0.0.1:{config.kafka_port}",
        "TAWASUL_DB_PORT": str(config.pg_port),
        "TAWASUL_DB_POOL_SIZE": "6",
        "TAWASUL_IDENTITY_ISSUERS": json.dumps(identity),
        "TAWASUL_DOCS_ADDRESS": config.grpc_address("docs"),
        "TAWASUL_NOTIFY_ADDRESS": config.grpc_address("notify"),
        "TAWASUL_INTAKE_ADDRESS": config.grpc_address("intake"),
        "TAWASUL_S3_ENDPOINT": config.minio_endpoint,
        "TAWASUL_CLAMD_ADDRESS": config.clamd_address,
        "TAWASUL_SMS_GATEWAY_URL": config.sms_gateway_url,
        "TAWASUL_SMTP_HOST": "127.0.0.1",
        "TAWASUL_SMTP_PORT": str(config.smtp_port),
        "TAWASUL_DB_HOST": "127.0.0.1",
        # deploy/local's pacing and limits: every client here is 127.0.0.1.
        "TAWASUL_TRACKING_PER_CALLER_PER_HOUR": "100000",
        "TAWASUL_RESCAN_SECONDS": "1",
        "TAWASUL_RECEIPTS_SECONDS": "1",
        "TAWASUL_SWEEP_SECONDS": "1",
        "TAWASUL_METRICS_SECONDS": "1",
        "TAWASUL_CLAIM_LEASE_SECONDS": str(config.claim_lease_seconds),
        "TAWASUL_DOWNLOAD_URL_SECONDS": str(config.download_url_seconds),
    }
    if process == "gateway":
        values |= {
            "TAWASUL_HTTP_HOST": "127.0.0.1",
            "TAWASUL_HTTP_PORT": str(config.gateway_port),
            "TAWASUL_RATE_PER_MINUTE_PER_ADDRESS": "100000",
            "TAWASUL_TRACKING_PER_MINUTE_PER_ADDRESS": "100000",
        }
    else:
        values |= {
            "TAWASUL_GRPC_ADDRESS": f"127.0.0.1:{config.grpc_port(process, replica)}",
            "TAWASUL_METRICS_ADDRESS": f"127.0.0.1:{config.metrics_port(process, replica)}",
        }
    return values


def _environment(
    container: dict[str, Any],
    config_maps: Mapping[str, Mapping[str, str]],
    secret_values: Mapping[str, Mapping[str, str]],
    overrides: Mapping[str, str],
) -> list[dict[str, str]]:
    """The container's environment as literal values, in Kubernetes' order (envFrom, then env,
    `$(VAR)` expanded from what came before), with `overrides` replacing values first."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef") or {}
        env.update(config_maps.get(ref.get("name", ""), {}))
    env.update({k: v for k, v in overrides.items() if k in env or not k.startswith("TAWASUL_DB_")})

    def expand(value: str) -> str:
        return _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), value)

    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(str(item["value"]))
            continue
        source = item.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = secret_values[ref["name"]][ref["key"]]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[item["name"]] = config_maps[ref["name"]][ref["key"]]
    return [{"name": name, "value": value} for name, value in sorted(env.items())]


def _pod(
    config: PodConfig,
    name: str,
    spec: dict[str, Any],
    *,
    labels: Mapping[str, str],
    volumes: Mapping[str, str],
    restart: str = "Always",
) -> dict[str, Any]:
    """A Pod on the host's network from a pod template's spec; `volumes` maps a volume's name
    to a host directory (the Secrets' and ConfigMaps' files made here)."""
    spec = json.loads(json.dumps(spec))
    for key in (
        "automountServiceAccountToken",
        "enableServiceLinks",
        "terminationGracePeriodSeconds",
    ):
        spec.pop(key, None)
    spec["hostNetwork"] = True
    spec["restartPolicy"] = restart
    for volume in spec.get("volumes", []):
        if volume["name"] in volumes:
            for kind in ("secret", "configMap"):
                volume.pop(kind, None)
            volume["hostPath"] = {"path": volumes[volume["name"]], "type": "Directory"}
    for container in spec["containers"]:
        # ports: on the host's network there is nothing to publish (each listens on its own).
        for key in ("readinessProbe", "livenessProbe", "startupProbe", "lifecycle", "ports"):
            container.pop(key, None)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {**labels, "tawasul.example/play": config.prefix}},
        "spec": spec,
    }


def render(
    config: PodConfig, docs: list[dict[str, Any]] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The podman rendering: {"infra": [...], "migrate": [...], "services": [...]} Pods."""
    docs = docs if docs is not None else kustomize()
    config_maps = {
        d["metadata"]["name"]: dict(d.get("data") or {}) for d in docs if d["kind"] == "ConfigMap"
    }
    secret_values = _secrets(config)
    files = config.state_dir / "files"
    migrate: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        name = doc["metadata"]["name"]
        template = doc["spec"]["template"]
        process = name.removesuffix("-migrate")
        volumes = {"tls": str(files / "tls" / process), "identity": str(files / "identity")}
        counts = [1] if doc["kind"] == "Job" else range(1, config.count(process) + 1)
        for replica in counts:
            spec = json.loads(json.dumps(template["spec"]))
            for container in spec["containers"]:
                container["env"] = _environment(
                    container, config_maps, secret_values, _overrides(config, process, replica)
                )
                container.pop("envFrom", None)
            labels = dict(template["metadata"].get("labels", {}))
            if doc["kind"] == "Job":
                migrate.append(
                    _pod(
                        config,
                        config.pod_name(name),
                        spec,
                        labels=labels,
                        volumes=volumes,
                        restart="Never",
                    )
                )
            else:
                services.append(
                    _pod(
                        config, config.pod_name(name, replica), spec, labels=labels, volumes=volumes
                    )
                )
    return {"infra": _infra(config), "migrate": migrate, "services": services}


def _container(name: str, image: str, *, env: Mapping[str, str], **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "securityContext": {"runAsUser": UID, "runAsGroup": UID, "allowPrivilegeEscalation": False},
        **more,
    }


def _infra(config: PodConfig) -> list[dict[str, Any]]:
    """PostgreSQL, Kafka, MinIO, ClamAV and the SMS and SMTP stand-ins, from build.sh's images:
    what the overlay expects to find in the namespace."""
    data = config.state_dir / "data"

    def pod(
        name: str, container: dict[str, Any], mounts: Mapping[str, Path] = {}
    ) -> dict[str, Any]:
        container["volumeMounts"] = [
            {"name": v, "mountPath": m}
            for v, m in ((f"v{i}", str(mp)) for i, mp in enumerate(mounts))
        ]
        spec = {
            "hostNetwork": True,
            "restartPolicy": "Always",
            "containers": [container],
            "volumes": [
                {"name": f"v{i}", "hostPath": {"path": str(host), "type": "Directory"}}
                for i, host in enumerate(mounts.values())
            ],
        }
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": config.pod_name(name),
                "labels": {"app.kubernetes.io/name": name, "tawasul.example/play": config.prefix},
            },
            "spec": spec,
        }

    databases = ",".join(f"tawasul_{service}" for service in SERVICES)
    devstack = INFRA_IMAGES["devstack"]
    return [
        pod(
            "postgres",
            _container(
                "postgres",
                INFRA_IMAGES["postgres"],
                env={"PG_PORT": str(config.pg_port), "PG_DATABASES": databases},
            ),
            {"/var/lib/postgresql": data / "postgres"},
        ),
        pod(
            "kafka",
            _container(
                "kafka",
                INFRA_IMAGES["kafka"],
                env={
                    "KAFKA_PORT": str(config.kafka_port),
                    "KAFKA_CONTROLLER_PORT": str(config.kafka_controller_port),
                    "KAFKA_ADVERTISED": config.kafka_bootstrap,
                },
            ),
            {"/var/lib/kafka": data / "kafka"},
        ),
        pod(
            "minio",
            _container(
                "minio",
                INFRA_IMAGES["minio"],
                env={
                    "MINIO_ROOT_USER": config.minio_access_key,
                    "MINIO_ROOT_PASSWORD": config.minio_secret_key,
                },
                args=[
                    "--address",
                    f"127.0.0.1:{config.minio_port}",
                    "--console-address",
                    f"127.0.0.1:{config.minio_console_port}",
                ],
            ),
            {"/data": data / "minio"},
        ),
        pod(
            "clamav",
            _container("clamav", INFRA_IMAGES["clamav"], env={"CLAMD_PORT": str(config.clamd_port)})
            | {"securityContext": {"allowPrivilegeEscalation": False}},
        ),
        pod(
            "sms-gateway",
            _container(
                "sms-gateway",
                devstack,
                env={
                    "TAWASUL_SMS_GATEWAY_USER": config.sms_gateway_user,
                    "TAWASUL_SMS_GATEWAY_PASSWORD": config.sms_gateway_password,
                },
                command=["/opt/tawasul/venv/bin/tawasul-sms-gateway"],
                args=[
                    "--port",
                    str(config.sms_gateway_port),
                    "--store",
                    "/var/lib/sms/messages.jsonl",
                ],
            ),
            {"/var/lib/sms": data / "sms-gateway"},
        ),
        pod(
            "smtp",
            _container(
                "smtp",
                devstack,
                env={},
                command=["/opt/tawasul/venv/bin/tawasul-smtp-server"],
                args=["--port", str(config.smtp_port), "--maildir", "/var/lib/smtp/maildir"],
            ),
            {"/var/lib/smtp": config.smtp_maildir.parent},
        ),
    ]


# -- running -----------------------------------------------------------------------------------


def _podman(
    *args: str, check: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise StackError(f"podman {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def _serving(address: str, tls: TlsConfig) -> bool:
    try:
        with open_sync_channel(address, tls) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
    except grpc.RpcError:
        return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _pg_ready(config: PodConfig) -> bool:
    import asyncpg

    async def probe() -> bool:
        try:
            url = config.database_url(SERVICES[-1]).replace("+asyncpg", "")
            connection = await asyncpg.connect(url, timeout=2)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


class PodPlay:
    """`podman kube play` of the dev overlay and its infrastructure, and `kube down`."""

    def __init__(self, config: PodConfig) -> None:
        self.config = config

    @property
    def kube_dir(self) -> Path:
        return self.config.state_dir / "kube"

    def kube_file(self, part: str) -> Path:
        return self.kube_dir / f"{part}.yaml"

    def prepare(self) -> dict[str, list[dict[str, Any]]]:
        """The files the pods mount (certificates, public keys, data dirs) and the kube YAML."""
        import yaml

        cfg = self.config
        cfg.ensure_pki()
        files = cfg.state_dir / "files"
        for process in PROCESSES:
            target = files / "tls" / process
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cfg.tls_cert_file(process), target / "tls.crt")
            shutil.copyfile(cfg.tls_key_file(process), target / "tls.key")
            shutil.copyfile(cfg.tls_ca_file, target / "ca.crt")
        identity = files / "identity"
        identity.mkdir(parents=True, exist_ok=True)
        for kind in ISSUERS:
            shutil.copyfile(cfg.identity.jwks_file(kind), identity / f"{kind.value}.jwks.json")
        data = cfg.state_dir / "data"
        for name in ("postgres", "kafka", "minio", "sms-gateway"):
            (data / name).mkdir(parents=True, exist_ok=True)
        cfg.smtp_maildir.parent.mkdir(parents=True, exist_ok=True)  # the server makes the Maildir
        # The containers run as uid 10001: theirs to read (the keys) and to write (the data).
        for path in (files, data, cfg.smtp_maildir.parent):
            _chown_tree(path)
        rendered = render(cfg)
        self.kube_dir.mkdir(parents=True, exist_ok=True)
        for part, pods in rendered.items():
            self.kube_file(part).write_text(yaml.safe_dump_all(pods, sort_keys=False))
        return rendered

    def up(self) -> dict[str, float]:
        """Infrastructure, migrations, then the services; the seconds each part took."""
        cfg = self.config
        times: dict[str, float] = {}
        self.down(quiet=True)
        busy = [port for port in self._ports() if port_in_use(port)]
        if busy:
            raise StackError(f"port(s) {busy} in use: choose another TAWASUL_POD_PORT_BASE")
        rendered = self.prepare()
        started = time.monotonic()
        _podman("kube", "play", str(self.kube_file("infra")))
        times["infra: kube play"] = time.monotonic() - started
        self._wait("postgres", lambda: _pg_ready(cfg))
        self._wait("minio", lambda: _http_ok(f"http://{cfg.minio_endpoint}/minio/health/ready"))
        self._wait("sms-gateway", lambda: _http_ok(f"{cfg.sms_gateway_url}/v1/health"))
        self._wait("smtp", lambda: smtp_server.greets(cfg.smtp_port))
        self._wait("clamav", lambda: clamav.ping(cfg.clamd_port))
        self._wait("kafka", lambda: port_in_use(cfg.kafka_port))
        kafka.ensure_topics_and_group(cfg.kafka_bootstrap, READY_TIMEOUT)
        times["infra: ready"] = time.monotonic() - started

        started = time.monotonic()
        _podman("kube", "play", str(self.kube_file("migrate")))
        for pod in rendered["migrate"]:
            container = f"{pod['metadata']['name']}-{pod['spec']['containers'][0]['name']}"
            code = _podman("wait", container, timeout=MIGRATE_TIMEOUT).stdout.strip()
            if code != "0":
                logs = _podman("logs", container, check=False)
                raise StackError(f"{container} exited {code}:\n{logs.stdout}{logs.stderr}")
        times["migrations"] = time.monotonic() - started

        started = time.monotonic()
        _podman("kube", "play", str(self.kube_file("services")))
        times["services: kube play"] = time.monotonic() - started
        probe = cfg.tls()
        for service in SERVICES:
            for replica in range(1, cfg.count(service) + 1):
                address = cfg.grpc_address(service, replica)
                self._wait(
                    cfg.pod_name(service, replica),
                    lambda a=address: _serving(a, probe),
                )
        self._wait(cfg.pod_name("gateway"), lambda: _http_ok(f"{cfg.gateway_url}/healthz"))
        times["services: serving"] = time.monotonic() - started
        return times

    def _ports(self) -> Iterable[int]:
        cfg = self.config
        yield from (cfg.pg_port, cfg.kafka_port, cfg.kafka_controller_port, cfg.minio_port)
        yield from (cfg.clamd_port, cfg.sms_gateway_port, cfg.smtp_port, cfg.gateway_port)
        for service in SERVICES:
            for replica in range(1, cfg.count(service) + 1):
                yield cfg.grpc_port(service, replica)

    def _wait(self, name: str, ready: Any, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                logs = self.logs(name)
                raise StackError(f"{name}: not ready after {timeout:.0f} s:\n{logs[-3000:]}")
            time.sleep(0.5)
        _log.info("  %s ready", name)

    def logs(self, name: str) -> str:
        """The logs of a pod's containers (a process's name or a pod's)."""
        pod = name if name.startswith(self.config.prefix) else self.config.pod_name(name)
        found = _podman("ps", "-a", "--filter", f"pod={pod}", "--format", "{{.Names}}", check=False)
        out = []
        for container in found.stdout.split():
            if container.endswith("-infra"):
                continue
            result = _podman("logs", container, check=False)
            out.append(f"--- {container}\n{result.stdout}{result.stderr}")
        return "\n".join(out)

    def pods(self) -> list[str]:
        found = _podman(
            "pod",
            "ps",
            "--filter",
            f"label=tawasul.example/play={self.config.prefix}",
            "--format",
            "{{.Name}}",
            check=False,
        )
        return found.stdout.split()

    def down(self, *, quiet: bool = False) -> None:
        """Every pod of this play, by its label (kube down needs the files it was played from)."""
        pods = self.pods()
        if pods:
            _podman("pod", "rm", "--force", "--time", "10", *pods, check=not quiet)
        # The data, not the keys: the next play starts from empty databases and topics.
        shutil.rmtree(self.config.state_dir / "data", ignore_errors=True)
        shutil.rmtree(self.config.smtp_maildir.parent, ignore_errors=True)


def _chown_tree(path: Path) -> None:
    if os.geteuid() != 0:
        return
    for root, dirs, names in os.walk(path):
        os.chown(root, UID, UID)
        for name in (*dirs, *names):
            os.chown(os.path.join(root, name), UID, UID)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tawasul-podplay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("render", "up", "demo", "down", "status"))
    parser.add_argument("--replicas", type=int, default=2, help="of routing and review (default 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = PodConfig.for_pods()
    config = dataclasses.replace(
        config, replicas={"routing": args.replicas, "review": args.replicas}
    )
    if args.command == "up":
        try:
            outside_ephemeral("TAWASUL_POD_PORT_BASE", config.ports())
        except CannotStart as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    play = PodPlay(config)
    if args.command == "render":
        play.prepare()
        print(play.kube_dir)
    elif args.command == "up":
        for part, seconds in play.up().items():
            print(f"{part}: {seconds:.1f} s")
    elif args.command == "demo":
        from tawasul_devstack import demo

        return demo.main(config)
    elif args.command == "down":
        play.down()
    else:
        print("\n".join(play.pods()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
