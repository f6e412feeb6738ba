"""The dev overlay's rendering for `podman kube play` (tawasul_devstack.podplay.render): pods
that keep each Deployment's image, user and read-only root, with every setting resolved."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tawasul_devstack.podplay import PodConfig, render
from tawasul_devstack.stack import SERVICES
from tawasul_platform.settings import outside_ephemeral


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[PodConfig, dict[str, Any]]:
    state = tmp_path_factory.mktemp("pods")
    config = PodConfig(state_dir=state, cache_dir=Path(state / "cache"), port_base=35700)
    return config, render(config)


def _env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}


def test_each_replica_is_a_pod_and_each_job_a_pod_that_runs_once(
    rendered: tuple[PodConfig, dict[str, Any]],
) -> None:
    config, parts = rendered
    names = Counter(p["metadata"]["labels"]["app.kubernetes.io/name"] for p in parts["services"])
    assert names == {**dict.fromkeys((*SERVICES, "gateway"), 1), "routing": 2, "review": 2}
    assert len({p["metadata"]["name"] for p in parts["services"]}) == 8
    assert sorted(p["metadata"]["name"] for p in parts["migrate"]) == sorted(
        config.pod_name(f"{s}-migrate") for s in SERVICES
    )
    for pod in parts["migrate"]:
        assert pod["spec"]["restartPolicy"] == "Never"
        assert pod["spec"]["containers"][0]["args"] == ["migrate"]


def test_the_pods_keep_the_images_user_and_read_only_root(
    rendered: tuple[PodConfig, dict[str, Any]],
) -> None:
    _, parts = rendered
    for pod in parts["services"] + parts["migrate"]:
        (container,) = pod["spec"]["containers"]
        name = pod["metadata"]["labels"]["app.kubernetes.io/name"]
        assert container["image"] == f"localhost/tawasul/{name}:0.1.0"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["runAsUser"] == 10001
        assert "readinessProbe" not in container
        assert "envFrom" not in container
        assert pod["spec"]["hostNetwork"] is True


def test_every_setting_is_resolved_and_every_replica_has_its_own_port(
    rendered: tuple[PodConfig, dict[str, Any]],
) -> None:
    config, parts = rendered
    addresses = []
    for pod in parts["services"]:
        env = _env(pod)
        assert not [k for k, v in env.items() if "$(" in v], env
        assert env["TAWASUL_KAFKA_BOOTSTRAP"] == config.kafka_bootstrap
        if "TAWASUL_DATABASE_URL" in env:
            service = pod["metadata"]["labels"]["app.kubernetes.io/name"]
            assert env["TAWASUL_DATABASE_URL"] == config.database_url(service)
        if "TAWASUL_GRPC_ADDRESS" in env:
            addresses.append(env["TAWASUL_GRPC_ADDRESS"])
    assert len(addresses) == len(set(addresses)) == 7


PLAY = Path(__file__).resolve().parents[2] / "deploy" / "podman" / "play.sh"


def test_play_sh_states_the_ports_the_play_takes() -> None:
    """Its header said base 35000, which the play refuses (in the host's ephemeral range), and
    ports derived from it: the default is 26000."""
    header = PLAY.read_text().split("\n#\n", 1)[0]
    base = re.search(r"TAWASUL_POD_PORT_BASE \((\d+)", header)
    assert base is not None
    config = PodConfig.for_pods(port_base=int(base[1]))
    assert config.port_base == PodConfig.port_base
    outside_ephemeral("TAWASUL_POD_PORT_BASE", config.ports(), Path("/nonexistent"))
    stated = {int(port) for port in re.findall(r"\b\d{5}\b", header)}
    ranges = {
        port
        for first, last in re.findall(r"\b(\d{5})-(\d{5})\b", header)
        for port in range(int(first), int(last) + 1)
    }
    assert stated | ranges <= set(config.ports()) | {config.port_base}
    assert {config.gateway_port, config.pg_port, config.kafka_port} <= stated
