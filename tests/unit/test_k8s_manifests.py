"""deploy/k8s, rendered and checked offline: every overlay renders with `kubectl kustomize`,
every built-in object validates with `kubernetes-validate --strict`, and the properties the
cluster will not check for us hold (probes, limits, hardening, secrets, HPA caps, PDBs,
image names, and the operators' custom resources against the platform's own declarations).

kubernetes-validate has schemas for Kubernetes' own kinds only: for a kind it does not know
(the operators' Kafka, KafkaNodePool, KafkaTopic, Cluster, Tenant) it prints a WARN and
exits 0, so passing it proves nothing about them. The custom resources are therefore split
off, the validator is shown to skip them (test_the_validator_skips_custom_kinds), and their
fields are checked here instead.

The Prometheus operator's PodMonitor and PrometheusRule are custom kinds too: the monitor
must select every process's pods on their metrics port, and the alert rules must read only
metrics the services declare; `promtool check rules` then parses them as Prometheus will
(tests/e2e/test_prometheus.py evaluates them against a running stack).

Prod's NetworkPolicies are checked against the calls the rendered settings make: each let-in
is a caller, each caller let in.

The checks are functions returning problems; test_the_checks_catch_broken_manifests breaks
rendered objects on purpose and expects each check to object, so a check cannot rot into
one that passes whatever it reads.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from prometheus_client import REGISTRY
from pydantic import TypeAdapter
from tawasul_devstack import install
from tawasul_devstack.components.prometheus import rule_groups
from tawasul_devstack.config import StackConfig
from tawasul_docs.adapters.storage import MinioObjectStore, S3Client
from tawasul_docs.settings import DocsSettings
from tawasul_gateway.settings import GatewaySettings
from tawasul_intake.settings import IntakeSettings
from tawasul_notify.settings import NotifySettings
from tawasul_platform import metrics, vitals
from tawasul_platform.kafka_acls import OPERATOR, QUOTA, Grant, grants
from tawasul_platform.settings import ServiceSettings
from tawasul_platform.topics import (
    REQUEST_ROUTED,
    REQUEST_SUBMITTED,
    SUBSCRIPTIONS,
    TOPICS,
    group_service,
)
from tawasul_review.settings import ReviewSettings
from tawasul_routing.settings import RoutingSettings

from tests.dashboard import declared, metric_names

Doc = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
BIN = Path(sys.executable).parent
KUBECTL = BIN / "kubectl"
VALIDATE = BIN / "kubernetes-validate"

SETTINGS: dict[str, type[Any]] = {
    "intake": IntakeSettings,
    "routing": RoutingSettings,
    "review": ReviewSettings,
    "docs": DocsSettings,
    "notify": NotifySettings,
    "gateway": GatewaySettings,
}
GRPC_SERVICES = ("intake", "routing", "review", "docs", "notify")
# The operators' kinds: no schema in kubernetes-validate, checked field by field below.
CUSTOM = {
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("kafka.strimzi.io/v1beta2", "KafkaUser"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("minio.min.io/v2", "Tenant"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
IMAGE = re.compile(r"^localhost/tawasul/(?P<name>[a-z]+):(?P<tag>[\w][\w.-]{0,127})$")
# Env names whose value is a secret: they may only come from a Secret.
SECRETISH = re.compile(r"(PASSWORD|SECRET|ACCESS_KEY|TOKEN|_USER)$")
# A URL with credentials written into it.
INLINE_CREDENTIALS = re.compile(r"://[^/@\s$]+:[^/@\s$]+@")
HARDENED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
}
SEVERITIES = {"warning", "critical"}
# Prometheus's durations: 90s, 1h30m, ...
DURATION = re.compile(r"^(\d+(ms|[smhdwy]))+$")
ALERT_RULES = ROOT / "deploy" / "k8s" / "overlays" / "prod" / "prometheus-rules.yaml"
SHUTDOWN_BUDGET = float(ServiceSettings.model_fields["shutdown_budget_seconds"].default)


@cache
def _render(overlay: str) -> tuple[Doc, ...]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def _docs(overlay: str) -> list[Doc]:
    return copy.deepcopy(list(_render(overlay)))


def _of(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def _by_name(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in _of(docs, kind)}


def _is_custom(doc: Doc) -> bool:
    return (doc["apiVersion"], doc["kind"]) in CUSTOM


def _workloads(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(object, pod spec) of every Deployment and Job."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def _validate(docs: list[Doc], tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return subprocess.run(
        [str(VALIDATE), "--strict", "--quiet", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# -- the checks ------------------------------------------------------------------------------


def deployment_problems(docs: list[Doc]) -> list[str]:
    problems: list[str] = []
    for dep in _of(docs, "Deployment"):
        name = dep["metadata"]["name"]
        pod = dep["spec"]["template"]["spec"]
        grace = pod.get("terminationGracePeriodSeconds", 30)
        stop = pod["containers"][0].get("lifecycle", {}).get("preStop", {})
        pre_stop = stop.get("sleep", {}).get("seconds", 0)
        if grace <= SHUTDOWN_BUDGET + pre_stop:
            problems.append(
                f"{name}: terminationGracePeriodSeconds {grace} is not above the shutdown "
                f"budget {SHUTDOWN_BUDGET:.0f} s + preStop {pre_stop} s"
            )
        pod_ctx = pod.get("securityContext", {})
        if pod_ctx.get("runAsNonRoot") is not True:
            problems.append(f"{name}: the pod does not say runAsNonRoot")
        if len(pod["containers"]) != 1:
            problems.append(f"{name}: one container (one process) per pod")
        for c in pod["containers"]:
            where = f"{name}/{c['name']}"
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    problems.append(f"{where}: no {probe}")
            if name in GRPC_SERVICES:
                problems += _probe_problems(where, c)
            resources = c.get("resources", {})
            for side in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    if what not in resources.get(side, {}):
                        problems.append(f"{where}: no {side}.{what}")
            problems += _hardening_problems(where, c.get("securityContext", {}), pod_ctx)
            match = IMAGE.match(c["image"])
            if match is None or match["name"] != name:
                problems.append(
                    f"{where}: image {c['image']} is not localhost/tawasul/{name}:<tag>"
                )
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", ())}
            volumes = {v["name"]: v for v in pod.get("volumes", ())}
            if "emptyDir" not in volumes.get(mounts.get("/tmp", ""), {}):
                problems.append(f"{where}: no writable /tmp (emptyDir) beside the read-only root")
    return problems


def _probe_problems(where: str, container: Doc) -> list[str]:
    """The kubelet asks each service over HTTP on its metrics port (tawasul_platform.vitals):
    its native grpc probe cannot get through mutual TLS, and an exec of tawasul-health costs
    the pod a Python process per probe, which its autoscaler counts as load."""
    problems = []
    for probe, path in (("readinessProbe", vitals.READYZ), ("livenessProbe", vitals.LIVEZ)):
        spec = container.get(probe, {})
        if "grpc" in spec:
            problems.append(f"{where}: {probe} is the native grpc probe, refused by mutual TLS")
            continue
        http = spec.get("httpGet", {})
        if http.get("port") != "metrics" or http.get("path") != path:
            problems.append(f"{where}: {probe} does not ask {path} on the metrics port")
    return problems


def _hardening_problems(where: str, ctx: Doc, pod_ctx: Doc) -> list[str]:
    problems = [
        f"{where}: securityContext.{key} is not {value}"
        for key, value in HARDENED.items()
        if ctx.get(key) != value
    ]
    uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
    if not isinstance(uid, int) or uid == 0:
        problems.append(f"{where}: no fixed non-root runAsUser")
    if ctx.get("capabilities", {}).get("drop") != ["ALL"]:
        problems.append(f"{where}: capabilities do not drop ALL")
    seccomp: Doc = ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    return problems


def secret_problems(docs: list[Doc]) -> list[str]:
    problems = [
        f"Secret {d['metadata']['name']} is in the manifests: secrets are only referenced"
        for d in _of(docs, "Secret")
    ]
    for cm in _of(docs, "ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            if SECRETISH.search(key):
                problems.append(f"ConfigMap {cm['metadata']['name']}: {key} looks like a secret")
            if INLINE_CREDENTIALS.search(str(value)):
                problems.append(f"ConfigMap {cm['metadata']['name']}: {key} has credentials")
    for doc, pod in _workloads(docs):
        for c in pod["containers"]:
            where = f"{doc['kind']} {doc['metadata']['name']}"
            for env in c.get("env", ()):
                if "value" in env and SECRETISH.search(env["name"]):
                    problems.append(f"{where}: {env['name']} has an inline value")
                if INLINE_CREDENTIALS.search(env.get("value", "")):
                    problems.append(f"{where}: {env['name']} has credentials written into it")
                source = env.get("valueFrom", {})
                if SECRETISH.search(env["name"]) and "secretKeyRef" not in source:
                    problems.append(f"{where}: {env['name']} is not from a Secret")
    return problems


def _consumer_partitions() -> dict[str, int]:
    """Per service, the fewest partitions of any topic its consumer groups read: more pods
    than that leave some group's consumer without a partition."""
    partitions = {t.name: t.partitions for t in TOPICS}
    fewest: dict[str, int] = {}
    for topic, group in SUBSCRIPTIONS:
        service = group_service(group)
        fewest[service] = min(fewest.get(service, partitions[topic]), partitions[topic])
    return fewest


def hpa_problems(docs: list[Doc]) -> list[str]:
    problems = []
    caps = _consumer_partitions()
    topics = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in _of(docs, "KafkaTopic")}
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in _of(docs, "HorizontalPodAutoscaler")}
    for service, cap in caps.items():
        hpa = hpas.get(service)
        if hpa is None:
            problems.append(f"{service} consumes Kafka but has no HorizontalPodAutoscaler")
            continue
        most = hpa["spec"]["maxReplicas"]
        if most > cap:
            problems.append(f"{service}: maxReplicas {most} > {cap} partitions")
        for topic, group in SUBSCRIPTIONS:
            if group_service(group) == service and topic in topics and most > topics[topic]:
                problems.append(f"{service}: maxReplicas {most} > KafkaTopic {topic}'s partitions")
        if hpa["spec"].get("minReplicas", 1) > most:
            problems.append(f"{service}: minReplicas above maxReplicas")
    # A count of its own on a Deployment an HPA scales puts the scale back at every apply.
    deployments = _by_name(docs, "Deployment")
    for target in hpas:
        replicas = deployments[target]["spec"].get("replicas")
        if replicas is not None:
            problems.append(f"{target}: replicas {replicas} on a Deployment its HPA scales")
    return problems


def service_problems(docs: list[Doc]) -> list[str]:
    """The gRPC services' Services are headless: their name resolves to every ready pod, which
    callers' channels go round (round_robin); through a virtual IP each caller's one
    connection would hold a single pod. Nothing translates a headless Service's port, so the
    port callers dial is the pods' own."""
    problems = []
    services = _by_name(docs, "Service")
    deployments = _by_name(docs, "Deployment")
    for name in GRPC_SERVICES:
        spec = services[name]["spec"]
        if spec.get("clusterIP") != "None":
            problems.append(f"Service {name} is not headless (clusterIP: None)")
        pod_ports = {
            p["name"]: p["containerPort"]
            for p in deployments[name]["spec"]["template"]["spec"]["containers"][0]["ports"]
        }
        for port in spec["ports"]:
            if port["port"] != pod_ports.get(port["targetPort"]):
                problems.append(
                    f"Service {name}: port {port['port']} is not its pods' {port['targetPort']}"
                )
    for dep in deployments.values():
        for key, value in _expanded_env(
            docs, dep["spec"]["template"]["spec"]["containers"][0]
        ).items():
            host, _, port = value.rpartition(":")
            if key.endswith("_ADDRESS") and host in GRPC_SERVICES:
                served = [p["port"] for p in services[host]["spec"]["ports"]]
                if int(port) not in served:
                    problems.append(f"{dep['metadata']['name']}: {key}={value}, served on {served}")
    return problems


def pdb_problems(docs: list[Doc]) -> list[str]:
    problems = []
    pdbs = _of(docs, "PodDisruptionBudget")
    for dep in _of(docs, "Deployment"):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        covering = [
            p
            for p in pdbs
            if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
            and p["metadata"].get("namespace") == dep["metadata"].get("namespace")
        ]
        if len(covering) != 1:
            problems.append(f"{dep['metadata']['name']}: {len(covering)} PDBs, not one")
    # A budget counts its pods against their controller's scale, which a Job has not: the
    # disruption controller then allows no eviction of any pod it selects (SyncFailed).
    for job in _of(docs, "Job"):
        labels = job["spec"]["template"]["metadata"]["labels"]
        problems.extend(
            f"PDB {p['metadata']['name']} selects Job {job['metadata']['name']}'s pods"
            for p in pdbs
            if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
            and p["metadata"].get("namespace") == job["metadata"].get("namespace")
        )
    return problems


def _env_names(docs: list[Doc], container: Doc) -> set[str]:
    config_maps = _by_name(docs, "ConfigMap")
    names = {e["name"] for e in container.get("env", ())}
    for ref in container.get("envFrom", ()):
        cm = config_maps.get(ref.get("configMapRef", {}).get("name", ""))
        if cm is not None:
            names |= set(cm.get("data") or {})
    return names


def settings_problems(docs: list[Doc]) -> list[str]:
    """Every setting without a default reaches every process that needs it (pydantic-settings
    fails at start without it), the migration Jobs included: `migrate` validates them all."""
    problems = []
    for doc, pod in _workloads(docs):
        service = doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        cls = SETTINGS[service]
        required = {
            f"TAWASUL_{name.upper()}"
            for name, field in cls.model_fields.items()
            if field.is_required()
        }
        missing = required - _env_names(docs, pod["containers"][0])
        if missing:
            problems.append(f"{doc['kind']} {doc['metadata']['name']}: no {sorted(missing)}")
    return problems


def migration_problems(docs: list[Doc]) -> list[str]:
    problems = []
    jobs = _by_name(docs, "Job")
    for dep in _of(docs, "Deployment"):
        name = dep["metadata"]["name"]
        c = dep["spec"]["template"]["spec"]["containers"][0]
        if "TAWASUL_DATABASE_URL" not in {e["name"] for e in c.get("env", ())}:
            continue
        job = jobs.get(f"{name}-migrate")
        if job is None:
            problems.append(f"{name} has a database but no {name}-migrate Job")
            continue
        jc = job["spec"]["template"]["spec"]["containers"][0]
        if jc["image"] != c["image"] or jc.get("args") != ["migrate"]:
            problems.append(f"{name}-migrate does not run `tawasul-{name} migrate` of its image")
    return problems


_STRIMZI_QUOTAS = {
    "producerByteRate": QUOTA.produce_bytes_per_second,
    "consumerByteRate": QUOTA.fetch_bytes_per_second,
    "requestPercentage": QUOTA.request_percentage,
}


def _kafka_user_problems(docs: list[Doc], cluster: str) -> list[str]:
    """Strimzi's KafkaUsers grant exactly what tawasul_platform.kafka_acls does, to the names
    of the office's certificates (tls-external), each within its quota."""
    problems = []
    found = set()
    for user in _of(docs, "KafkaUser"):
        name = user["metadata"]["name"]
        spec = user["spec"]
        if user["metadata"].get("labels", {}).get("strimzi.io/cluster") != cluster:
            problems.append(f"KafkaUser {name} is not of Kafka {cluster}")
        if spec.get("authentication") != {"type": "tls-external"}:
            problems.append(f"KafkaUser {name}: not the office's certificate (tls-external)")
        if spec.get("quotas") != _STRIMZI_QUOTAS:
            problems.append(f"KafkaUser {name}: quotas are not kafka_acls.QUOTA's")
        authorization = spec.get("authorization", {})
        if authorization.get("type") != "simple":
            problems.append(f"KafkaUser {name}: no simple authorization")
        for acl in authorization.get("acls", ()):
            resource = acl["resource"]
            for operation in acl.get("operations", ()):
                found.add(
                    Grant(
                        name, resource["type"], resource["name"], operation, resource["patternType"]
                    )
                )
    if found != grants():
        diff = sorted(found ^ grants())
        problems.append(f"KafkaUsers' ACLs differ from tawasul_platform.kafka_acls: {diff}")
    return problems


def custom_resource_problems(docs: list[Doc]) -> list[str]:
    """The operators' objects, checked as their CRDs would (required fields) and against what
    the services expect of them."""
    problems: list[str] = []
    kafkas = _of(docs, "Kafka")
    if len(kafkas) != 1:
        return [f"{len(kafkas)} Kafka clusters, not one"]
    kafka = kafkas[0]
    name = kafka["metadata"]["name"]
    annotations = kafka["metadata"].get("annotations", {})
    if annotations.get("strimzi.io/kraft") != "enabled":
        problems.append("Kafka is not in KRaft mode (strimzi.io/kraft: enabled)")
    if annotations.get("strimzi.io/node-pools") != "enabled":
        problems.append("Kafka does not use node pools (strimzi.io/node-pools: enabled)")
    listeners = kafka["spec"].get("kafka", {}).get("listeners", [])
    if not listeners:
        problems.append("Kafka has no listeners")
    for listener in listeners:
        # What the services carry is personal data: no listener without mutual TLS.
        mutual = listener.get("tls") is True and listener.get("authentication") == {"type": "tls"}
        if not mutual:
            problems.append(f"Kafka listener {listener.get('name')} is not mutual TLS")
    for ca in ("clusterCa", "clientsCa"):
        # The services show the office's certificates: Strimzi must not make CAs of its own.
        if kafka["spec"].get(ca, {}).get("generateCertificateAuthority") is not False:
            problems.append(f"Kafka's {ca} is Strimzi's own, not the office's")
    if kafka["spec"]["kafka"].get("authorization") != {"type": "simple"}:
        problems.append("Kafka does not authorize: any certificate of the office may do all")
    problems += _kafka_user_problems(docs, name)
    if kafka["spec"]["kafka"].get("config", {}).get("auto.create.topics.enable") is not False:
        problems.append("Kafka creates topics on its own: every topic is declared")
    roles: set[str] = set()
    for pool in _of(docs, "KafkaNodePool"):
        spec = pool["spec"]
        if pool["metadata"].get("labels", {}).get("strimzi.io/cluster") != name:
            problems.append(f"KafkaNodePool {pool['metadata']['name']} is not of Kafka {name}")
        if not spec.get("replicas") or not spec.get("roles") or not spec.get("storage"):
            problems.append(f"KafkaNodePool {pool['metadata']['name']}: replicas/roles/storage")
        roles |= set(spec.get("roles", ()))
    if roles != {"controller", "broker"}:
        problems.append(f"the node pools' roles are {sorted(roles)}, not controller and broker")
    kafka_settings = {
        (cm["data"]["TAWASUL_KAFKA_BOOTSTRAP"], cm["data"].get("TAWASUL_KAFKA_TLS"))
        for cm in _of(docs, "ConfigMap")
        if "TAWASUL_KAFKA_BOOTSTRAP" in (cm.get("data") or {})
    }
    ports = {listener.get("port") for listener in listeners}
    if kafka_settings != {(f"{name}-kafka-bootstrap:{port}", "true") for port in ports}:
        problems.append(
            f"the services' Kafka settings {kafka_settings} are not Strimzi's TLS listener"
        )

    declared = {
        t.name: (t.partitions, t.config()["retention.ms"], t.config()["cleanup.policy"])
        for t in TOPICS
    }
    found = {}
    for topic in _of(docs, "KafkaTopic"):
        spec = topic["spec"]
        if topic["metadata"].get("labels", {}).get("strimzi.io/cluster") != name:
            problems.append(f"KafkaTopic {topic['metadata']['name']} is not of Kafka {name}")
        config = spec.get("config", {})
        found[spec.get("topicName", topic["metadata"]["name"])] = (
            spec.get("partitions"),
            config.get("retention.ms"),
            config.get("cleanup.policy"),
        )
        if not isinstance(spec.get("replicas"), int):
            problems.append(f"KafkaTopic {topic['metadata']['name']}: no replicas")
    if found != declared:
        diff = set(found.items()) ^ set(declared.items())
        problems.append(f"KafkaTopics differ from tawasul_platform.topics.TOPICS: {sorted(diff)}")

    clusters = _by_name(docs, "Cluster")
    for dep in _of(docs, "Deployment"):
        service = dep["metadata"]["name"]
        c = dep["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in c.get("env", ())}
        if "TAWASUL_DATABASE_URL" not in env:
            continue
        config = _by_name(docs, "ConfigMap")
        host = next(
            (
                config[r["configMapRef"]["name"]]["data"].get("TAWASUL_DB_HOST")
                for r in c["envFrom"]
                if "TAWASUL_DB_HOST" in config[r["configMapRef"]["name"]].get("data", {})
            ),
            None,
        )
        cluster = clusters.get(f"{service}-db")
        if cluster is None:
            problems.append(f"{service}: no CloudNativePG Cluster {service}-db")
            continue
        if host != f"{service}-db-rw":
            problems.append(f"{service}: TAWASUL_DB_HOST {host} is not its cluster's primary")
        initdb = cluster["spec"].get("bootstrap", {}).get("initdb", {})
        secret = env["TAWASUL_DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
        if initdb.get("secret", {}).get("name") != secret:
            problems.append(f"{service}: its pods' DB secret {secret} is not the cluster's")
        if not cluster["spec"].get("instances") or not cluster["spec"].get("storage", {}).get(
            "size"
        ):
            problems.append(f"Cluster {service}-db: instances and storage.size are required")

    tenants = _of(docs, "Tenant")
    if len(tenants) != 1:
        return [*problems, f"{len(tenants)} MinIO Tenants, not one"]
    tenant = tenants[0]["spec"]
    for pool in tenant.get("pools", ()):
        if not pool.get("servers") or not pool.get("volumesPerServer"):
            problems.append("Tenant pool: servers and volumesPerServer are required")
    if not tenant.get("pools"):
        problems.append("Tenant has no pools")
    if not tenant.get("configuration", {}).get("name"):
        problems.append("Tenant has no configuration Secret")
    docs_pod = _by_name(docs, "Deployment")["docs"]["spec"]["template"]["spec"]
    docs_env = {e["name"]: e for e in docs_pod["containers"][0].get("env", ())}
    key_secret = docs_env["TAWASUL_S3_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"]
    if key_secret not in {u["name"] for u in tenant.get("users", ())}:
        problems.append(f"docs' S3 secret {key_secret} is not a user of the Tenant")
    bucket = next(
        cm["data"]["TAWASUL_S3_BUCKET"]
        for cm in _of(docs, "ConfigMap")
        if "TAWASUL_S3_BUCKET" in (cm.get("data") or {})
    )
    if bucket not in {b["name"] for b in tenant.get("buckets", ())}:
        problems.append(f"docs' bucket {bucket} is not made by the Tenant")
    return problems


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Whether a label selector selects these labels: its matchLabels, and its matchExpressions
    of operator In (any other operator selects nothing here)."""
    expressions = selector.get("matchExpressions", [])
    return bool(selector.get("matchLabels") or expressions) and all(
        [labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()]
        + [e["operator"] == "In" and labels.get(e["key"]) in e["values"] for e in expressions]
    )


def monitoring_problems(docs: list[Doc]) -> list[str]:
    """The Prometheus operator's objects: one PodMonitor scraping every process's pods on the
    port they serve /metrics on, and alert rules of known metrics, severities and durations."""
    problems: list[str] = []
    monitors = _of(docs, "PodMonitor")
    if len(monitors) != 1:
        return [f"{len(monitors)} PodMonitors, not one"]
    monitor = monitors[0]["spec"]
    endpoints = monitor.get("podMetricsEndpoints", [])
    if [e.get("port") for e in endpoints] != ["metrics"]:
        problems.append("the PodMonitor does not scrape the port named metrics alone")
    if any(e.get("path", "/metrics") != "/metrics" for e in endpoints):
        problems.append("the PodMonitor scrapes another path than /metrics")
    for dep in _of(docs, "Deployment"):
        name = dep["metadata"]["name"]
        template = dep["spec"]["template"]
        if not _selects(monitor.get("selector", {}), template["metadata"].get("labels", {})):
            problems.append(f"the PodMonitor does not select {name}'s pods")
        ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        annotated = int(template["metadata"].get("annotations", {}).get("prometheus.io/port", 0))
        if ports.get("metrics") != annotated:
            problems.append(f"{name}: its port metrics is not {annotated}, where it serves")

    known = declared()
    alerts: list[str] = []
    rule_sets = _of(docs, "PrometheusRule")
    if not rule_sets:
        problems.append("no PrometheusRule")
    for rule_set in rule_sets:
        groups = rule_set["spec"].get("groups", [])
        if not groups or len({g.get("name") for g in groups}) != len(groups):
            problems.append(f"PrometheusRule {rule_set['metadata']['name']}: groups unnamed")
        for group in groups:
            if not group.get("rules"):
                problems.append(f"rule group {group.get('name')}: no rules")
            for rule in group.get("rules", []):
                alert = str(rule.get("alert"))
                alerts.append(alert)
                expr = str(rule.get("expr", ""))
                unknown = metric_names(expr) - known
                if not metric_names(expr) or unknown:
                    problems.append(f"{alert}: reads no metric or unknown ones {sorted(unknown)}")
                if rule.get("labels", {}).get("severity") not in SEVERITIES:
                    problems.append(f"{alert}: severity is not one of {sorted(SEVERITIES)}")
                if not rule.get("annotations", {}).get("summary"):
                    problems.append(f"{alert}: no summary")
                if "for" in rule and not DURATION.match(str(rule["for"])):
                    problems.append(f"{alert}: for {rule['for']!r} is not a duration")
    if len(set(alerts)) != len(alerts):
        problems.append(f"alert names repeat: {sorted(alerts)}")
    return problems


# Who outside the namespace may call each process, by its namespace's label (the policies'
# header in overlays/prod/network-policies.yaml).
CLIENTS_LABEL = "tawasul.gov.sa/clients"
OUTSIDE_CALLERS = {
    "intake": {"channels"},
    "routing": {"staff"},
    "review": {"staff"},
    "docs": {"channels", "staff"},
    "notify": {"channels", "staff"},
    "gateway": {"channels"},
    # The ingress controller, for GetDownloadUrl's links (TAWASUL_S3_PUBLIC_ENDPOINT).
    "minio": {"channels"},
}
MONITORING = {"tawasul.gov.sa/monitoring": "true"}


def _pods(docs: list[Doc]) -> dict[str, dict[str, str]]:
    """Every workload of the overlay and the operators' pod: name → its pods' labels."""
    pods = {
        doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["labels"]
        for doc, _ in _workloads(docs)
    }
    (operator,) = yaml.safe_load_all((K8S / "tools" / "operator.yaml").read_text())
    pods[OPERATOR] = operator["metadata"]["labels"]
    return pods


def _covers(rule: Doc, port: str | int) -> bool:
    return "ports" not in rule or any(p.get("port") == port for p in rule["ports"])


def _let_in(docs: list[Doc], target: dict[str, str], port: str | int) -> list[Doc]:
    """The peers the NetworkPolicies let reach pods labelled `target` on `port`."""
    return [
        peer
        for policy in _of(docs, "NetworkPolicy")
        if _selects(policy["spec"]["podSelector"], target)
        for rule in policy["spec"].get("ingress", ())
        if _covers(rule, port)
        for peer in rule.get("from", ())
    ]


def _pods_let_in(docs: list[Doc], target: dict[str, str], port: str | int) -> set[str]:
    """Which of the namespace's workloads may reach `target` on `port` (a peer with a pod
    selector alone is of the policy's own namespace)."""
    peers = [p["podSelector"] for p in _let_in(docs, target, port) if set(p) == {"podSelector"}]
    return {name for name, labels in _pods(docs).items() if any(_selects(p, labels) for p in peers)}


def _namespaces_let_in(docs: list[Doc], target: dict[str, str], port: str | int) -> list[Doc]:
    return [p["namespaceSelector"] for p in _let_in(docs, target, port) if "namespaceSelector" in p]


def network_policy_problems(docs: list[Doc]) -> list[str]:
    """Ingress is denied but for the calls the rendered settings make: a process's gRPC port
    from the workloads whose TAWASUL_<CALLEE>_ADDRESS names it, a database from its service's
    workloads, MinIO from docs, Kafka's listener from the services and the operators' pod;
    from outside the namespace, by its labels, the clients and Prometheus."""
    problems: list[str] = []
    pods = _pods(docs)
    denied = [
        p["spec"]["podSelector"]
        for p in _of(docs, "NetworkPolicy")
        if "Ingress" in p["spec"].get("policyTypes", ())
    ]
    for name, labels in pods.items():
        if not any(_selects(selector, labels) for selector in denied):
            problems.append(f"{name}: no NetworkPolicy selects its pods")
    calls: dict[tuple[str, str | int], set[str]] = {}
    for doc, spec in _workloads(docs):
        env = _expanded_env(docs, spec["containers"][0])
        for key, value in env.items():
            host = value.rpartition(":")[0]
            if key.endswith("_ADDRESS") and host in GRPC_SERVICES:
                calls.setdefault((host, "grpc"), set()).add(doc["metadata"]["name"])
        if host := env.get("TAWASUL_DB_HOST", "").removesuffix("-rw"):
            calls.setdefault((f"db:{host}", 5432), set()).add(doc["metadata"]["name"])
        if env.get("TAWASUL_S3_ENDPOINT", "").startswith("minio:"):
            calls.setdefault(("minio", 9000), set()).add(doc["metadata"]["name"])
    deployments = _by_name(docs, "Deployment")
    targets = {
        name: dep["spec"]["template"]["metadata"]["labels"] for name, dep in deployments.items()
    }
    targets |= {f"db:{c}": {"cnpg.io/cluster": c} for c in _by_name(docs, "Cluster")}
    (tenant,) = _by_name(docs, "Tenant")
    targets["minio"] = {"v1.min.io/tenant": tenant}
    for (target, port), callers in sorted(calls.items(), key=str):
        allowed = _pods_let_in(docs, targets.get(target, {}), port)
        if allowed != callers:
            problems.append(
                f"{target} on {port}: let in {sorted(allowed)}, called by {sorted(callers)}"
            )
    for name, labels in targets.items():
        uncalled = name in GRPC_SERVICES and (name, "grpc") not in calls
        if uncalled and (allowed := _pods_let_in(docs, labels, "grpc")):
            problems.append(f"{name} on grpc: let in {sorted(allowed)}, called by none")
    for name, roles in OUTSIDE_CALLERS.items():
        port = "grpc" if name in GRPC_SERVICES else 9000 if name == "minio" else "http"
        let_in = {
            value
            for selector in _namespaces_let_in(docs, targets[name], port)
            for e in selector.get("matchExpressions", ())
            if e["key"] == CLIENTS_LABEL and e["operator"] == "In"
            for value in e["values"]
        }
        if let_in != roles:
            problems.append(f"{name} on {port}: clients {sorted(let_in)}, not {sorted(roles)}")
    for name, labels in targets.items():
        port = 9187 if name.startswith("db:") else 9000 if name == "minio" else "metrics"
        scrapers = _namespaces_let_in(docs, labels, port)
        if {"matchLabels": MONITORING} not in scrapers:
            problems.append(f"{name}: Prometheus may not reach its metrics ({port})")
    (kafka,) = _of(docs, "Kafka")
    kafka_clients = {
        name
        for name, labels in pods.items()
        for listener in kafka["spec"]["kafka"]["listeners"]
        for peer in listener.get("networkPolicyPeers", ())
        if set(peer) == {"podSelector"} and _selects(peer["podSelector"], labels)
    }
    expected = {
        name
        for name, dep in deployments.items()
        if "TAWASUL_KAFKA_BOOTSTRAP"
        in _expanded_env(docs, dep["spec"]["template"]["spec"]["containers"][0])
    } | {OPERATOR}
    if kafka_clients != expected or any(
        "networkPolicyPeers" not in listener for listener in kafka["spec"]["kafka"]["listeners"]
    ):
        problems.append(f"Kafka's listener lets in {sorted(kafka_clients)}, not {sorted(expected)}")
    return problems


CHECKS = (
    deployment_problems,
    secret_problems,
    hpa_problems,
    service_problems,
    pdb_problems,
    settings_problems,
    migration_problems,
)


# -- the tests -------------------------------------------------------------------------------


def test_every_process_has_its_objects(overlay: str) -> None:
    docs = _docs(overlay)
    assert set(_by_name(docs, "Deployment")) == set(SETTINGS)
    assert set(_by_name(docs, "Service")) == set(SETTINGS)
    assert set(_by_name(docs, "Job")) == {f"{s}-migrate" for s in GRPC_SERVICES}
    namespaces = {d["metadata"].get("namespace") for d in docs}
    assert namespaces == {"tawasul-dev" if overlay == "dev" else "tawasul"}


def test_built_in_kinds_validate_strictly(overlay: str, tmp_path: Path) -> None:
    built_in = [d for d in _docs(overlay) if not _is_custom(d)]
    result = _validate(built_in, tmp_path, overlay)
    assert result.returncode == 0, result.stdout + result.stderr
    # --quiet prints only warnings and failures: none, not even a kind without a schema.
    assert result.stdout.strip() == "", result.stdout


def test_the_validator_skips_custom_kinds(tmp_path: Path) -> None:
    """Why the custom resources are checked here: the validator passes them unread."""
    custom = [d for d in _docs("prod") if _is_custom(d)]
    assert {(d["apiVersion"], d["kind"]) for d in custom} == CUSTOM
    result = _validate(custom, tmp_path, "custom")
    assert result.returncode == 0
    warned = re.findall(
        r"Couldn't find schema for kind (\w+) with api version (\S+)", result.stdout
    )
    assert {(api, kind) for kind, api in warned} == CUSTOM


def test_a_broken_built_in_object_fails_validation(tmp_path: Path) -> None:
    dep = _by_name(_docs("dev"), "Deployment")["intake"]
    dep["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["prot"] = 1
    result = _validate([dep], tmp_path, "broken")
    assert result.returncode != 0
    assert "ERROR" in result.stdout


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_the_manifests_hold(overlay: str, check: Any) -> None:
    assert check(_docs(overlay)) == []


def test_the_operators_resources_match_the_services() -> None:
    assert custom_resource_problems(_docs("prod")) == []


def test_prods_network_policies_let_through_the_calls_the_settings_make() -> None:
    assert network_policy_problems(_docs("prod")) == []


def test_prometheus_scrapes_every_process_and_alerts_on_known_metrics() -> None:
    docs = _docs("prod")
    assert monitoring_problems(docs) == []
    (rule_set,) = _of(docs, "PrometheusRule")
    # What the dev stack's Prometheus loads is what production gets.
    assert rule_set["spec"]["groups"] == rule_groups(ALERT_RULES)
    alerts = {r["alert"] for g in rule_groups(ALERT_RULES) for r in g["rules"]}
    assert {
        "TawasulQueueSlaBreached",
        "TawasulOutboxStalled",
        "TawasulConsumerLagHigh",
        "TawasulConsumerStalled",
        "TawasulDeadLetters",
        "TawasulOutboxRowsParked",
        "TawasulGrpcErrors",
        "TawasulNotificationFailures",
    } <= alerts


def _promtool() -> Path:
    """promtool as `tawasul-stack install --prometheus` builds it (`make test` does)."""
    path = install.prometheus_binary(StackConfig.from_env().cache_dir, "promtool")
    if not path.is_file():
        pytest.skip(f"{path} is not built: `uv run tawasul-stack install --prometheus`")
    return path


def _check_rules(groups: list[Doc], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    return subprocess.run(
        [str(_promtool()), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_promtool_accepts_the_alert_rules(tmp_path: Path) -> None:
    groups = rule_groups(ALERT_RULES)
    result = _check_rules(groups, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = sum(len(g["rules"]) for g in groups)
    assert f"SUCCESS: {rules} rules found" in result.stdout


def _alert(alert: str, labels: dict[str, str], summary: str) -> Doc:
    """An alert promtool expects: its labels and annotations as the rule makes them."""
    (rule,) = [r for g in rule_groups(ALERT_RULES) for r in g["rules"] if r["alert"] == alert]
    return {
        "exp_labels": {**labels, **rule["labels"]},
        "exp_annotations": {"summary": summary, "description": rule["annotations"]["description"]},
    }


def _dead_letters_at_start() -> str:
    """What a replica exports for review's dead letters of REQUEST_ROUTED once the group has
    started (as service.serve starts it), before any dead letter: promtool's "_" when there is
    no series. A counter born at its first dead letter, already at 1, gives increase() no
    earlier sample, and the alert never fires for a pod's first dead letters."""
    metrics.subscribed("review")
    value = REGISTRY.get_sample_value(
        "tawasul_consumer_events_total",
        {"topic": REQUEST_ROUTED, "group": "review", "outcome": "dead_lettered"},
    )
    return "_" if value is None else "0"


def _refusals_at_start() -> str:
    """What a docs pod exports for AccessDenied refusals once its object store is built (as
    bootstrap builds it at start), before any refusal: promtool's "_" when there is no series.
    A counter born at its first refusal, already at 1, hides that refusal from increase()."""
    MinioObjectStore(cast(S3Client, None), "tawasul-documents")
    value = REGISTRY.get_sample_value(
        "tawasul_docs_object_deletions_refused_total", {"code": "AccessDenied"}
    )
    return "_" if value is None else "0"


def _refusals(minutes: list[int], end: int) -> str:
    """A docs pod's tawasul_docs_object_deletions_refused_total, a value a minute up to `end`:
    what it exports from its start, one more at each of `minutes`."""
    start = _refusals_at_start()
    return " ".join(
        start if m < minutes[0] else str(sum(r <= m for r in minutes)) for m in range(end)
    )


# Series as two replicas export them (their instance labels differ), a minute apart.
REPLICAS = ("10.0.0.1:9090", "10.0.0.2:9090")
# When a docs pod's sweep asks again for an object storage refuses for good (1, 2, 4... minutes
# after the first refusal, then hourly), and for one refused a few minutes only.
REFUSED_FOR_GOOD = [2, 3, 5, 9, 17, 33, 65, 125, 185]
REFUSED_AWHILE = [2, 3, 5, 9]
# A new pod's sweep, asking hourly for an object refused for good since before it started.
REFUSED_BEFORE_START = [5, 65, 125, 185, 245]
RULE_CASES: list[Doc] = [
    {
        # Both replicas read the same breached items: one alert, once they stayed 5 min.
        "input_series": [
            {
                "series": 'tawasul_review_queue_items{department="reports",queue="general",'
                f'state="breached",instance="{instance}"}}',
                "values": "0 0 2x10",
            }
            for instance in REPLICAS
        ],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "TawasulQueueSlaBreached", "exp_alerts": []},
            {
                "eval_time": "8m",
                "alertname": "TawasulQueueSlaBreached",
                "exp_alerts": [
                    _alert(
                        "TawasulQueueSlaBreached",
                        {"department": "reports", "queue": "general"},
                        "reports/general: 2 open items past their SLA",
                    )
                ],
            },
        ],
    },
    {
        # Refusals are the callers' doing; failures on the server's side alert.
        "input_series": [
            {
                "series": 'tawasul_grpc_server_handled_seconds_count{grpc_service="intake",'
                f'grpc_code="{code}",instance="{REPLICAS[0]}"}}',
                "values": values,
            }
            for code, values in (
                ("OK", "0+90x30"),
                ("INVALID_ARGUMENT", "0+60x30"),
                ("INTERNAL", "0+0x10 0+10x20"),
            )
        ],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "TawasulGrpcErrors", "exp_alerts": []},
            {
                "eval_time": "30m",
                "alertname": "TawasulGrpcErrors",
                "exp_alerts": [
                    _alert(
                        "TawasulGrpcErrors",
                        {"grpc_service": "intake"},
                        "intake: 6.25% of calls fail on the server's side",
                    )
                ],
            },
        ],
    },
    {
        # A pod's first dead letter: no series before the pod starts, then what its group
        # exports from its start, then 1.
        "input_series": [
            {
                "series": f'tawasul_consumer_events_total{{group="review",topic="{REQUEST_ROUTED}",'
                f'outcome="dead_lettered",instance="{REPLICAS[1]}"}}',
                "values": f"_ {_dead_letters_at_start()}x2 1 1",
            }
        ],
        "alert_rule_test": [
            {"eval_time": "2m", "alertname": "TawasulDeadLetters", "exp_alerts": []},
            {
                "eval_time": "4m",
                "alertname": "TawasulDeadLetters",
                "exp_alerts": [
                    _alert(
                        "TawasulDeadLetters",
                        {"group": "review", "topic": REQUEST_ROUTED},
                        f"review dead-lettered events of {REQUEST_ROUTED}",
                    )
                ],
            },
        ],
    },
    {
        # Review's replica 0 has been stuck on a poll started at 2m (an outage it waits out):
        # fires 10 min after, once held 5 min. Replica 1 applies a poll a minute at a time, and
        # notify's group one poll of 13 minutes, over before the alert's 5 minutes: neither.
        "input_series": [
            {
                "series": 'tawasul_consumer_batch_started_timestamp_seconds{group="review",'
                f'instance="{REPLICAS[0]}"}}',
                "values": "0 0 120x30",
            },
            {
                "series": 'tawasul_consumer_batch_started_timestamp_seconds{group="review",'
                f'instance="{REPLICAS[1]}"}}',
                "values": " ".join(str(m * 60 * (m % 2)) for m in range(32)),
            },
            {
                "series": 'tawasul_consumer_batch_started_timestamp_seconds{group="notify",'
                f'instance="{REPLICAS[0]}"}}',
                "values": "0 60x13 0x20",
            },
        ],
        "alert_rule_test": [
            {"eval_time": "16m", "alertname": "TawasulConsumerStalled", "exp_alerts": []},
            {
                "eval_time": "18m",
                "alertname": "TawasulConsumerStalled",
                "exp_alerts": [
                    _alert(
                        "TawasulConsumerStalled",
                        {"group": "review"},
                        "review has been applying one poll for 16m 0s",
                    )
                ],
            },
        ],
    },
    {
        # The relay's series start at 0 (every topic its service writes); one row parked.
        "input_series": [
            {
                "series": f'tawasul_outbox_parked_total{{service="intake",topic="{REQUEST_ROUTED}",'
                f'instance="{REPLICAS[0]}"}}',
                "values": "_ 0x2 1 1",
            }
        ],
        "alert_rule_test": [
            {"eval_time": "2m", "alertname": "TawasulOutboxRowsParked", "exp_alerts": []},
            {
                "eval_time": "4m",
                "alertname": "TawasulOutboxRowsParked",
                "exp_alerts": [
                    _alert(
                        "TawasulOutboxRowsParked",
                        {"service": "intake", "topic": REQUEST_ROUTED},
                        f"intake: Kafka refused an event for {REQUEST_ROUTED} for good",
                    )
                ],
            },
        ],
    },
    {
        "input_series": [
            {
                "series": f'tawasul_notify_deliveries_last_hour{{channel="sms",status="{status}",'
                f'instance="{instance}"}}',
                "values": f"{count}x20",
            }
            for status, count in (("delivered", 15), ("failed", 5))
            for instance in REPLICAS
        ],
        "alert_rule_test": [
            {
                "eval_time": "16m",
                "alertname": "TawasulNotificationFailures",
                "exp_alerts": [
                    _alert(
                        "TawasulNotificationFailures",
                        {"channel": "sms"},
                        "sms: 25% of the last hour's deliveries failed",
                    )
                ],
            },
        ],
    },
    {
        "input_series": [
            {
                "series": f'tawasul_outbox_oldest_unsent_seconds{{service="intake",'
                f'instance="{REPLICAS[0]}"}}',
                "values": "0 0 400+60x10",
            }
        ],
        "alert_rule_test": [
            {
                "eval_time": "8m",
                "alertname": "TawasulOutboxStalled",
                "exp_alerts": [
                    _alert(
                        "TawasulOutboxStalled",
                        {"service": "intake"},
                        "intake: an outbox row has waited 12m 40s for Kafka",
                    )
                ],
            },
        ],
    },
    *(
        {
            # Refused for good: it fires 2 hours after the pod's first refusal (its series is
            # at 0 before, so that refusal counts; a series born with it would wait an hour
            # for the new pod's second).
            "input_series": [
                {
                    "series": 'tawasul_docs_object_deletions_refused_total{code="AccessDenied",'
                    f'instance="{REPLICAS[0]}"}}',
                    "values": _refusals(minutes, 300),
                }
            ],
            "alert_rule_test": [
                {
                    "eval_time": "2h",
                    "alertname": "TawasulDocumentDeletionsRefused",
                    "exp_alerts": [],
                },
                {
                    "eval_time": "2h10m",
                    "alertname": "TawasulDocumentDeletionsRefused",
                    "exp_alerts": [
                        _alert(
                            "TawasulDocumentDeletionsRefused",
                            {},
                            "docs: object storage keeps refusing to delete documents' objects",
                        )
                    ],
                },
            ],
        }
        for minutes in (REFUSED_FOR_GOOD, REFUSED_BEFORE_START)
    ),
    {
        # Refused for a few minutes, then deleted: no alert.
        "input_series": [
            {
                "series": 'tawasul_docs_object_deletions_refused_total{code="AccessDenied",'
                f'instance="{REPLICAS[0]}"}}',
                "values": _refusals(REFUSED_AWHILE, 200),
            }
        ],
        "alert_rule_test": [
            {"eval_time": t, "alertname": "TawasulDocumentDeletionsRefused", "exp_alerts": []}
            for t in ("1h", "2h10m", "3h")
        ],
    },
    {
        # promtool's clock starts at 0: a channel's certificate 14 days and 30 minutes from
        # expiry crosses the line at 30m and fires 10m on; the server's, renewed, does not.
        "input_series": [
            {
                "series": f'tawasul_tls_certificate_expiry_timestamp_seconds{{which="{which}",'
                f'job="tawasul/tawasul",instance="{REPLICAS[0]}"}}',
                "values": f"{seconds}x60",
            }
            for which, seconds in (("channel", 14 * 86400 + 1800), ("server", 60 * 86400))
        ],
        "alert_rule_test": [
            {"eval_time": "35m", "alertname": "TawasulCertificateExpiring", "exp_alerts": []},
            {
                "eval_time": "45m",
                "alertname": "TawasulCertificateExpiring",
                "exp_alerts": [
                    _alert(
                        "TawasulCertificateExpiring",
                        {"which": "channel", "job": "tawasul/tawasul", "instance": REPLICAS[0]},
                        f"{REPLICAS[0]} (tawasul/tawasul): its channel certificate expires in "
                        "13d 23h 45m 0s",
                    )
                ],
            },
        ],
    },
]


def test_the_alerts_fire_when_they_should(tmp_path: Path) -> None:
    """`promtool test rules`: each alert on series as the replicas export them, before and
    after its `for`, with its labels and rendered annotations."""
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups(ALERT_RULES)}))
    cases = tmp_path / "cases.yml"
    cases.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(rules)],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", **case} for case in RULE_CASES],
            }
        )
    )
    result = subprocess.run(
        [str(_promtool()), "test", "rules", str(cases)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_dead_letters_alert_sends_the_operator_to_the_operators_pod() -> None:
    """Kafka's ACLs let only the operator's certificate read dead letters: a service's pod
    cannot list them."""
    (rule,) = [
        r
        for g in rule_groups(ALERT_RULES)
        for r in g["rules"]
        if r["alert"] == "TawasulDeadLetters"
    ]
    description = rule["annotations"]["description"]
    assert "kubectl -n tawasul exec operator -- tawasul-dead-letters list" in description
    assert "deploy/k8s/tools/operator.yaml" in description
    assert (ROOT / "deploy" / "k8s" / "tools" / "operator.yaml").is_file()


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    groups = rule_groups(ALERT_RULES)
    groups[0]["rules"][0]["expr"] = "max by (department (tawasul_review_queue_items) > 0"
    result = _check_rules(groups, tmp_path)
    assert result.returncode != 0
    assert "parse error" in result.stdout + result.stderr


def test_dev_runs_one_replica_of_each() -> None:
    docs = _docs("dev")
    # The five services' count is their HPA's (1 at first, as the API server defaults it).
    assert {d["spec"].get("replicas", 1) for d in _of(docs, "Deployment")} == {1}
    assert {h["spec"]["maxReplicas"] for h in _of(docs, "HorizontalPodAutoscaler")} == {1}
    assert not [d for d in docs if _is_custom(d)]


def _bytes(quantity: str) -> int:
    """A memory quantity as Kubernetes writes it (128Mi, 1Gi, 500M)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def test_dev_gives_each_process_the_memory_prod_does() -> None:
    """Dev's smaller requests are for a small cluster; a process's memory need is its own
    (docs parses PDFs and images: 512Mi), and a lower limit only OOM-kills it."""

    def limits(overlay_name: str) -> dict[str, int]:
        return {
            name: _bytes(_container(docs, name)["resources"]["limits"]["memory"])
            for docs in [_docs(overlay_name)]
            for name in _by_name(docs, "Deployment")
        }

    dev, prod = limits("dev"), limits("prod")
    assert {name: dev[name] >= prod[name] for name in prod} == dict.fromkeys(prod, True)
    assert dev["docs"] == _bytes("512Mi")


def test_prods_download_links_name_a_host_outside_the_namespace() -> None:
    """GetDownloadUrl signs links for TAWASUL_S3_PUBLIC_ENDPOINT's host: empty, they name
    minio:80, which nothing outside the namespace can reach. The placeholder host is the
    installation's to fill in, so deploy/README.md lists it with the prerequisites."""
    docs = _docs("prod")
    env = _expanded_env(docs, _container(docs, "docs"))
    public = env.get("TAWASUL_S3_PUBLIC_ENDPOINT", "")
    assert public, "prod's docs-config sets no TAWASUL_S3_PUBLIC_ENDPOINT"
    # host[:port], as the S3 client takes it, and not the in-cluster Service.
    assert "://" not in public
    assert public.split(":")[0] != env["TAWASUL_S3_ENDPOINT"].split(":")[0]
    assert public in (ROOT / "deploy" / "README.md").read_text()


README = ROOT / "deploy" / "README.md"
# The rollout's steps as deploy/README.md documents them: each `kubectl apply -k <overlay> -l`.
ROLLOUT_STEP = re.compile(r"^kubectl apply -k deploy/k8s/overlays/prod -l '?([^'\n]+?)'?$", re.M)


def _label_selector(text: str) -> Doc:
    """kubectl's -l, as a selector `_selects` reads: `k=v` and `k in (a,b)`, comma-joined."""
    selector: Doc = {"matchLabels": {}, "matchExpressions": []}
    for term in re.findall(r"[^,(]+\([^)]*\)|[^,]+", text):
        if match := re.fullmatch(r"\s*(\S+)\s+in\s+\(([^)]*)\)\s*", term):
            values = [v.strip() for v in match[2].split(",")]
            selector["matchExpressions"].append(
                {"key": match[1], "operator": "In", "values": values}
            )
        else:
            key, _, value = term.strip().partition("=")
            selector["matchLabels"][key] = value
    return selector


def _job_references(job: Doc) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret a Job's pod reads."""
    pod = job["spec"]["template"]["spec"]
    refs: set[tuple[str, str]] = set()
    for c in pod["containers"] + pod.get("initContainers", []):
        for source in c.get("envFrom", ()):
            if "configMapRef" in source:
                refs.add(("ConfigMap", source["configMapRef"]["name"]))
            if "secretRef" in source:
                refs.add(("Secret", source["secretRef"]["name"]))
        for env in c.get("env", ()):
            value_from = env.get("valueFrom", {})
            if "configMapKeyRef" in value_from:
                refs.add(("ConfigMap", value_from["configMapKeyRef"]["name"]))
            if "secretKeyRef" in value_from:
                refs.add(("Secret", value_from["secretKeyRef"]["name"]))
    for volume in pod.get("volumes", ()):
        sources = [volume, *volume.get("projected", {}).get("sources", ())]
        for source in sources:
            if "configMap" in source:
                refs.add(("ConfigMap", source["configMap"]["name"]))
            if "secret" in source:
                refs.add(("Secret", source["secret"].get("secretName") or source["secret"]["name"]))
    return refs


def rollout_problems(docs: list[Doc], steps: list[str]) -> list[str]:
    """The documented rollout applies, by label, what the migration Jobs read before the Jobs
    (their hash-named ConfigMaps, prod's database Clusters), then the Jobs, and no process
    before the migrations ran; what no step applies (Secrets, tawasul-identity) must exist
    already, so deploy/README.md names it."""
    *before, jobs_step = [_label_selector(step) for step in steps]
    readme = README.read_text()
    objects = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    problems = []
    for name, job in _by_name(docs, "Job").items():
        labels = job["metadata"].get("labels", {})
        if not _selects(jobs_step, labels):
            problems.append(f"Job {name}: not applied by the migration step")
        if any(_selects(step, labels) for step in before):
            problems.append(f"Job {name}: applied before what it reads")
        service = name.removesuffix("-migrate")
        needs = _job_references(job)
        host = _expanded_env(docs, job["spec"]["template"]["spec"]["containers"][0]).get(
            "TAWASUL_DB_HOST", ""
        )
        if ("Cluster", host.removesuffix("-rw")) in objects:
            needs.add(("Cluster", host.removesuffix("-rw")))
        for kind, ref in sorted(needs):
            doc = objects.get((kind, ref))
            if doc is None:
                documented = {f"`{ref}`", f"`{ref}`".replace(service, "<service>", 1)}
                documented.add(f"`{ref}`".replace(service, "<process>", 1))
                if not any(d in readme for d in documented):
                    problems.append(f"Job {name}: {kind} {ref} is neither applied nor documented")
            elif not any(_selects(step, doc["metadata"].get("labels", {})) for step in before):
                problems.append(f"Job {name}: {kind} {ref} is not applied before it")
    for name, dep in _by_name(docs, "Deployment").items():
        if any(_selects(step, dep["metadata"].get("labels", {})) for step in (*before, jobs_step)):
            problems.append(f"Deployment {name}: rolled out before the migrations ran")
    return problems


def _rollout_steps() -> list[str]:
    return ROLLOUT_STEP.findall(README.read_text())


def test_the_documented_rollout_applies_what_each_migration_job_reads_before_it(
    overlay: str,
) -> None:
    steps = _rollout_steps()
    assert len(steps) == 2, steps
    assert rollout_problems(_docs(overlay), steps) == []
    # Each Job's own comment gives the same steps.
    for job in GRPC_SERVICES:
        comment = (K8S / "base" / job / "migrate-job.yaml").read_text()
        assert all(f"-l {step}" in comment or f"-l '{step}'" in comment for step in steps)


def test_the_rollout_check_catches_what_a_job_could_not_start_without() -> None:
    docs = _docs("prod")
    config = next(n for n in _by_name(docs, "ConfigMap") if n.startswith("routing-config"))
    del _by_name(docs, "ConfigMap")[config]["metadata"]["labels"]["app.kubernetes.io/component"]
    del _by_name(docs, "Cluster")["docs-db"]["metadata"]["labels"]["app.kubernetes.io/component"]
    assert sorted(rollout_problems(docs, _rollout_steps())) == [
        "Job docs-migrate: Cluster docs-db is not applied before it",
        f"Job routing-migrate: ConfigMap {config} is not applied before it",
    ]
    # The selector as it once was, the Jobs alone: nothing a Job reads comes first.
    found = rollout_problems(_docs("prod"), ["app.kubernetes.io/component=migration"])
    assert "Job intake-migrate: Cluster intake-db is not applied before it" in found
    assert any(p.startswith("Job intake-migrate: ConfigMap tawasul-common-") for p in found)


# Production's OpenTelemetry Collector (deploy/README.md: a prerequisite, not in the overlay).
COLLECTOR = "http://otel-collector.observability.svc:4317"


@pytest.mark.parametrize(("overlay_name", "endpoint"), [("prod", COLLECTOR), ("dev", None)])
def test_prod_sends_every_process_traces_to_the_collector_and_dev_to_none(
    overlay_name: str, endpoint: str | None
) -> None:
    """One trace from the gateway to notify needs every process exporting to one collector;
    dev (and podman kube play of it) has none, so it sets no endpoint."""
    docs = _docs(overlay_name)
    exported = {
        service: _expanded_env(docs, _container(docs, service)).get("TAWASUL_OTLP_ENDPOINT")
        for service in (*GRPC_SERVICES, "gateway")
    }
    assert exported == dict.fromkeys((*GRPC_SERVICES, "gateway"), endpoint)


def _deployment(docs: list[Doc], name: str) -> Doc:
    return _by_name(docs, "Deployment")[name]


def _container(docs: list[Doc], name: str) -> Doc:
    container: Doc = _deployment(docs, name)["spec"]["template"]["spec"]["containers"][0]
    return container


def test_the_checks_catch_broken_manifests() -> None:
    """Each check objects to a manifest broken in the way it is there to catch."""
    docs = _docs("prod")
    del _container(docs, "routing")["livenessProbe"]
    _container(docs, "review")["readinessProbe"] = {"grpc": {"port": 50051}}
    _container(docs, "docs")["readinessProbe"]["httpGet"]["path"] = vitals.LIVEZ
    _container(docs, "notify")["securityContext"]["readOnlyRootFilesystem"] = False
    _container(docs, "docs")["image"] = "docker.io/tawasul/docs:latest"
    _deployment(docs, "intake")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 25
    del _container(docs, "gateway")["resources"]["limits"]
    found = "\n".join(deployment_problems(docs))
    for expected in (
        "routing/routing: no livenessProbe",
        "review/review: readinessProbe is the native grpc probe",
        "docs/docs: readinessProbe does not ask /readyz on the metrics port",
        "notify/notify: securityContext.readOnlyRootFilesystem",
        "docs/docs: image docker.io/tawasul/docs:latest",
        "intake: terminationGracePeriodSeconds 25",
        "gateway/gateway: no limits.cpu",
    ):
        assert expected in found

    docs = _docs("prod")
    env = _container(docs, "intake")["env"]
    env.append({"name": "TAWASUL_TRACKING_CODE_SECRET", "value": "s3cret"})
    url = next(e for e in env if e["name"] == "TAWASUL_DATABASE_URL")
    url["value"] = "postgresql+asyncpg://tawasul:hunter2@intake-db-rw/tawasul_intake"
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "data": {}})
    found = "\n".join(secret_problems(docs))
    assert "TAWASUL_TRACKING_CODE_SECRET has an inline value" in found
    assert "TAWASUL_DATABASE_URL has credentials written into it" in found
    assert "Secret x is in the manifests" in found

    docs = _docs("prod")
    next(h for h in _of(docs, "HorizontalPodAutoscaler") if h["metadata"]["name"] == "notify")[
        "spec"
    ]["maxReplicas"] = 7
    assert any("notify: maxReplicas 7 > 6 partitions" in p for p in hpa_problems(docs))

    docs = _docs("prod")
    _deployment(docs, "review")["spec"]["replicas"] = 2
    assert hpa_problems(docs) == ["review: replicas 2 on a Deployment its HPA scales"]

    docs = _docs("prod")
    del _by_name(docs, "Service")["notify"]["spec"]["clusterIP"]
    _by_name(docs, "Service")["docs"]["spec"]["ports"][0]["port"] = 443
    assert service_problems(docs) == [
        "Service docs: port 443 is not its pods' grpc",
        "Service notify is not headless (clusterIP: None)",
        "gateway: TAWASUL_DOCS_ADDRESS=docs:50051, served on [443]",
        "intake: TAWASUL_DOCS_ADDRESS=docs:50051, served on [443]",
        "review: TAWASUL_DOCS_ADDRESS=docs:50051, served on [443]",
    ]

    docs = _docs("prod")
    docs.remove(
        next(p for p in _of(docs, "PodDisruptionBudget") if p["metadata"]["name"] == "docs")
    )
    assert pdb_problems(docs) == ["docs: 0 PDBs, not one"]

    docs = _docs("prod")
    pdb = next(p for p in _of(docs, "PodDisruptionBudget") if p["metadata"]["name"] == "docs")
    del pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
    assert pdb_problems(docs) == ["PDB docs selects Job docs-migrate's pods"]

    docs = _docs("prod")
    env = _container(docs, "intake")["env"]
    env.remove(next(e for e in env if e["name"] == "TAWASUL_TRACKING_CODE_SECRET"))
    assert settings_problems(docs) == ["Deployment intake: no ['TAWASUL_TRACKING_CODE_SECRET']"]

    docs = _docs("prod")
    docs.remove(_by_name(docs, "Job")["review-migrate"])
    assert migration_problems(docs) == ["review has a database but no review-migrate Job"]

    docs = _docs("prod")
    next(t for t in _of(docs, "KafkaTopic") if t["spec"]["partitions"] == 6)["spec"][
        "partitions"
    ] = 3
    docs.remove(_by_name(docs, "Cluster")["routing-db"])
    (kafka,) = _of(docs, "Kafka")
    del kafka["spec"]["kafka"]["listeners"][0]["authentication"]
    del kafka["spec"]["clientsCa"]
    del kafka["spec"]["kafka"]["authorization"]
    notify = _by_name(docs, "KafkaUser")["notify"]
    notify["spec"]["authorization"]["acls"][0]["resource"]["name"] = REQUEST_SUBMITTED
    del _by_name(docs, "KafkaUser")["operator"]["spec"]["quotas"]["consumerByteRate"]
    found = "\n".join(custom_resource_problems(docs))
    assert "KafkaUser operator: quotas are not kafka_acls.QUOTA's" in found
    assert "Kafka does not authorize" in found
    assert "KafkaUsers' ACLs differ from tawasul_platform.kafka_acls" in found
    assert "KafkaTopics differ from tawasul_platform.topics.TOPICS" in found
    assert "routing: no CloudNativePG Cluster routing-db" in found
    assert "Kafka listener tls is not mutual TLS" in found
    assert "Kafka's clientsCa is Strimzi's own, not the office's" in found

    docs = _docs("prod")
    policies = _by_name(docs, "NetworkPolicy")
    del policies["intake-grpc"]["spec"]["ingress"][0]["from"][0]
    policies["intake-db"]["spec"]["ingress"][0]["from"].append(
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "routing"}}}
    )
    policies["review-grpc"]["spec"]["ingress"][0]["from"][0]["namespaceSelector"][
        "matchExpressions"
    ][0]["values"] = ["channels"]
    policies["routing-grpc"]["spec"]["ingress"][0]["from"].append(
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "notify"}}}
    )
    docs.remove(policies["tawasul-deny-ingress"])
    docs.remove(policies["tawasul-minio"])
    del _of(docs, "Kafka")[0]["spec"]["kafka"]["listeners"][0]["networkPolicyPeers"]
    assert network_policy_problems(docs) == [
        "operator: no NetworkPolicy selects its pods",
        "db:intake-db on 5432: let in ['intake', 'intake-migrate', 'routing', 'routing-migrate'],"
        " called by ['intake', 'intake-migrate']",
        "intake on grpc: let in [], called by ['gateway']",
        "minio on 9000: let in [], called by ['docs', 'docs-migrate']",
        "routing on grpc: let in ['notify', 'notify-migrate'], called by none",
        "review on grpc: clients ['channels'], not ['staff']",
        "minio on 9000: clients [], not ['channels']",
        "minio: Prometheus may not reach its metrics (9000)",
        "Kafka's listener lets in [], not ['docs', 'intake', 'notify', 'operator', 'review',"
        " 'routing']",
    ]

    docs = _docs("prod")
    tawasul_common = _by_name(docs, "ConfigMap")
    common = next(cm for n, cm in tawasul_common.items() if n.startswith("tawasul-common"))
    common["data"]["TAWASUL_KAFKA_TLS"] = "false"
    assert any("are not Strimzi's TLS listener" in p for p in custom_resource_problems(docs))

    docs = _docs("prod")
    (monitor,) = _of(docs, "PodMonitor")
    monitor["spec"]["selector"]["matchExpressions"][0]["values"].remove("notify")
    monitor["spec"]["podMetricsEndpoints"][0]["port"] = "grpc"
    (rule_set,) = _of(docs, "PrometheusRule")
    breached = rule_set["spec"]["groups"][0]["rules"][0]
    breached["expr"] = breached["expr"].replace("queue_items", "queue_itemz")
    del breached["labels"]["severity"]
    breached["for"] = "five minutes"
    assert monitoring_problems(docs) == [
        "the PodMonitor does not scrape the port named metrics alone",
        "the PodMonitor does not select notify's pods",
        "TawasulQueueSlaBreached: reads no metric or unknown ones ['tawasul_review_queue_itemz']",
        "TawasulQueueSlaBreached: severity is not one of ['critical', 'warning']",
        "TawasulQueueSlaBreached: for 'five minutes' is not a duration",
    ]


def _expanded_env(docs: list[Doc], container: Doc) -> dict[str, str]:
    """The container's environment as the kubelet makes it: envFrom first, then env with
    $(VAR) references expanded; a Secret's value stands in as a placeholder."""
    config_maps = _by_name(docs, "ConfigMap")
    env: dict[str, str] = {}
    for ref in container.get("envFrom", ()):
        env.update(config_maps[ref["configMapRef"]["name"]].get("data") or {})
    for entry in container.get("env", ()):
        if "valueFrom" in entry:
            env[entry["name"]] = f"from-secret-{entry['valueFrom']['secretKeyRef']['key']}"
        else:
            env[entry["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), entry["value"]
            )
    return env


def test_the_operators_pod_is_prods_and_shows_the_operators_certificate(
    tmp_path: Path,
) -> None:
    (pod,) = yaml.safe_load_all((K8S / "tools" / "operator.yaml").read_text())
    result = _validate([pod], tmp_path, "tools")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert (
        _hardening_problems("operator", container["securityContext"], spec["securityContext"]) == []
    )
    docs = _docs("prod")
    routing = _container(docs, "routing")
    assert container["image"] == routing["image"]
    prod = _expanded_env(docs, routing)
    assert _expanded_env(docs, container) == {
        name: prod[name]
        for name in (
            "TAWASUL_KAFKA_BOOTSTRAP",
            "TAWASUL_KAFKA_TLS",
            "TAWASUL_TLS_CERT_FILE",
            "TAWASUL_TLS_KEY_FILE",
            "TAWASUL_TLS_CA_FILE",
        )
    }
    tls = {m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/etc/tawasul/tls"}
    (volume,) = [v for v in spec["volumes"] if v["name"] in tls]
    assert volume["secret"]["secretName"] == f"{OPERATOR}-tls"
    assert OPERATOR in _by_name(docs, "KafkaUser")


SITE_PACKAGES = "/opt/tawasul/venv/lib/python3.11/site-packages/"


def _shipped(path: str) -> Path | None:
    """Where a file the image's venv holds is in the workspace: its package's src/."""
    inside = path.removeprefix(SITE_PACKAGES)
    sources = [*ROOT.glob("services/*/src"), *ROOT.glob("libs/*/src")]
    return next((src / inside for src in sources if (src / inside).is_file()), None)


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_the_settings_parse_from_the_rendered_environment(
    overlay: str, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the pod would start with is valid for the service's settings class: types,
    JSON, and the database URL once its $(…) references are expanded."""
    env = _expanded_env(_docs(overlay), _container(_docs(overlay), service))
    for name in list(env):
        # The certificate files are read at validation; they come from the pod's Secret.
        if name.startswith("TAWASUL_TLS_"):
            del env[name]
    # Kafka over TLS needs those files too: its switch is checked on its own.
    if "TAWASUL_KAFKA_TLS" in env:
        assert TypeAdapter(bool).validate_python(env.pop("TAWASUL_KAFKA_TLS")) is (
            overlay == "prod"
        )
    for name, value in env.items():
        # The files a setting names are read at validation too: the image's copy is this one.
        shipped = _shipped(value) if value.startswith(SITE_PACKAGES) else None
        monkeypatch.setenv(name, str(shipped or value))
    settings = SETTINGS[service]()
    if service != "gateway":
        assert settings.database_url.startswith("postgresql+asyncpg://from-secret-username:")
        assert "$(" not in settings.database_url


def test_files_named_inside_the_image_are_shipped(overlay: str) -> None:
    """A setting naming a file of an installed package (the development registry, the staff
    directory) points where the image's venv has it: the package's src/ in the workspace,
    installed non-editable by deploy/images/Containerfile on python3.11."""
    assert "python3.11" in (ROOT / "deploy" / "images" / "Containerfile").read_text()
    named = {
        value
        for cm in _of(_docs(overlay), "ConfigMap")
        for value in (cm.get("data") or {}).values()
        if value.startswith(SITE_PACKAGES)
    }
    assert named, "the registry file at least is named inside the image"
    for path in named:
        assert _shipped(path), f"{path} is not shipped"


def test_every_process_serves_its_metrics_on_the_port_it_declares(overlay: str) -> None:
    docs = _docs(overlay)
    for service in (*GRPC_SERVICES, "gateway"):
        container = _container(docs, service)
        _, _, port = _expanded_env(docs, container)["TAWASUL_METRICS_ADDRESS"].rpartition(":")
        declared = {p["name"]: p["containerPort"] for p in container["ports"]}
        annotations = _deployment(docs, service)["spec"]["template"]["metadata"]["annotations"]
        assert declared["metrics"] == int(port) == int(annotations["prometheus.io/port"])
        assert annotations["prometheus.io/scrape"] == "true"


def test_the_grafana_dashboard_ships_for_grafanas_sidecar(overlay: str) -> None:
    (dashboards,) = [
        cm
        for cm in _of(_docs(overlay), "ConfigMap")
        if cm["metadata"]["name"] == "tawasul-grafana-dashboards"
    ]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(dashboards["data"]["tawasul.json"])
    assert shipped == json.loads((ROOT / "deploy" / "grafana" / "tawasul.json").read_text())
