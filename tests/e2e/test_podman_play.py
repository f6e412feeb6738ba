"""The dev overlay run for real with `podman kube play` (tawasul_devstack.podplay): the demo's
journey goes through its pods, and two replicas of routing and review share the work with
nothing applied twice.

Marked `pods`: `make test-containers` runs it (`pytest -m pods`), after building the images;
a plain `pytest` leaves it out. Skipped when podman is not installed, or its images are not
built (deploy/images/build.sh).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from tawasul_devstack import demo
from tawasul_devstack.journey import Clients
from tawasul_devstack.podplay import INFRA_IMAGES, TAG, PodConfig, PodPlay, podman_available
from tawasul_devstack.stack import Stack
from tawasul_platform import topics

from tests.e2e.chaos import Load, assert_exactly_once, settled_counts
from tests.e2e.groups import membership, settled
from tests.e2e.topics import records

ROOT = Path(__file__).resolve().parents[2]
IMAGES = [
    f"localhost/tawasul/{name}:{TAG}"
    for name in ("intake", "routing", "review", "docs", "notify", "gateway")
]
IMAGES += list(INFRA_IMAGES.values())


def _missing_images() -> list[str]:
    if not podman_available():
        return IMAGES
    return [
        image
        for image in IMAGES
        if subprocess.run(["podman", "image", "exists", image], check=False).returncode != 0
    ]


pytestmark = [
    pytest.mark.pods,
    pytest.mark.skipif(not podman_available(), reason="podman is not installed (INFRA.md)"),
    pytest.mark.skipif(
        podman_available() and bool(_missing_images()),
        reason="images not built: run deploy/images/build.sh (as root)",
    ),
]

REQUESTS = 60
REPLICATED = {"routing": topics.REQUEST_SUBMITTED, "review": topics.REQUEST_ROUTED}


@pytest.fixture(scope="module")
def pods() -> Iterator[PodPlay]:
    config = PodConfig.for_pods(
        state_dir=Path(os.environ.get("TAWASUL_TEST_PODS_DIR", ROOT / ".state" / "test-pods")),
        port_base=int(os.environ.get("TAWASUL_TEST_POD_PORT_BASE", "26500")),
    )
    play = PodPlay(config)
    shutil.rmtree(config.state_dir / "data", ignore_errors=True)
    try:
        times = play.up()
        print("podman kube play:", {part: round(s, 1) for part, s in times.items()})
        yield play
    finally:
        play.down()


@pytest.fixture(scope="module")
async def pod_clients(pods: PodPlay) -> AsyncIterator[Clients]:
    async with Clients(pods.config) as clients:
        yield clients


def _inspect(container: str) -> dict[str, Any]:
    out = subprocess.run(
        ["podman", "inspect", container], capture_output=True, text=True, check=True
    ).stdout
    return cast(dict[str, Any], json.loads(out)[0])


def test_every_process_runs_from_its_image_non_root_on_a_read_only_root(pods: PodPlay) -> None:
    cfg = pods.config
    for process in ("intake", "routing", "review", "docs", "notify", "gateway"):
        for replica in range(1, cfg.count(process) + 1):
            found = _inspect(f"{cfg.pod_name(process, replica)}-{process}")
            assert found["State"]["Running"], process
            assert found["ImageName"] == f"localhost/tawasul/{process}:{TAG}"
            assert found["Config"]["User"].split(":")[0] == "10001"
            assert found["HostConfig"]["ReadonlyRootfs"] is True
            assert (
                "ALL" in [c.upper() for c in found["HostConfig"]["CapDrop"]]
                or not found["EffectiveCaps"]
            )


async def test_two_replicas_of_routing_and_review_share_the_work(
    pods: PodPlay, pod_clients: Clients
) -> None:
    cfg = pods.config
    bootstrap = cfg.kafka_bootstrap
    assert cfg.count("routing") == cfg.count("review") == 2
    for service, topic in REPLICATED.items():
        await settled(bootstrap, service, topic, holders=2)
    # The load and the counts read the pods through their config alone (as a Stack's).
    stack = cast(Stack, SimpleNamespace(config=cfg))
    async with Load(stack, requests=REQUESTS) as load:
        await load.run()
    counts = await settled_counts(stack, load, pod_clients.sms_received)
    assert_exactly_once(counts, load)
    ids = load.ids
    routed = await records(bootstrap, topics.REQUEST_ROUTED, ids, at_least=len(ids))
    submitted = await records(bootstrap, topics.REQUEST_SUBMITTED, ids, at_least=len(ids))
    carried = {
        topics.REQUEST_SUBMITTED: {r.partition for r in submitted},
        topics.REQUEST_ROUTED: {r.partition for r in routed},
    }
    for service, topic in REPLICATED.items():
        after = await membership(bootstrap, service, topic)
        assert len(after.holders) == 2, (service, after)
        for member, partitions in after.holders.items():
            assert partitions & carried[topic], f"{service}'s member {member} did no work"


async def test_the_journey_goes_through_the_pods(pods: PodPlay) -> None:
    # The demo's journey (`tawasul-stack demo`), against the pods' addresses. After the load
    # above: its first SubmitRequest has a 5 s deadline, which a cold intake on a busy
    # 2-core machine has missed.
    await demo.journey(pods.config)
