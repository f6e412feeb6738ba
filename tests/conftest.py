"""Fixtures for the end-to-end tier: one real stack per test session."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tawasul_devstack.components.containers import podman_dir, stop_podman_socket
from tawasul_devstack.journey import Clients
from tawasul_devstack.stack import Stack, StackConfig
from tawasul_platform.settings import CannotStart, outside_ephemeral

ROOT = Path(__file__).resolve().parents[1]


def stack_config() -> StackConfig:
    """The test stack's settings, refused (CannotStart) when its ports are in the host's
    ephemeral range: a service would connect to itself there while Kafka is down."""
    config = StackConfig.from_env(
        state_dir=Path(os.environ.get("TAWASUL_TEST_STACK_DIR", ROOT / ".state" / "test-stack")),
        port_base=int(os.environ.get("TAWASUL_TEST_PORT_BASE", "29000")),
        # Short, so that a test sees an idle reviewer's claim lapse.
        claim_lease_seconds=20.0,
        download_url_seconds=15,
        # Gauges read every second: a test sees a queue's count change at once.
        metrics_seconds=1.0,
        # TAWASUL_TEST_INFRA=containers: PostgreSQL, Kafka and MinIO as containers started by
        # testcontainers on podman (deploy/images' images), the services as local processes.
        infra=os.environ.get("TAWASUL_TEST_INFRA") or "local",
    )
    outside_ephemeral("TAWASUL_TEST_PORT_BASE", config.ports())
    return config


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Kafka, PostgreSQL, MinIO, the SMS gateway and the five services as processes.

    Its own state dir and port base, so it runs beside a developer's `make up` stack. It is
    never skipped: a stack that cannot start fails the tests that need it.
    TAWASUL_TEST_KEEP_STACK=1 leaves it running, with its data, for the next session.
    """
    try:
        config = stack_config()
    except CannotStart as error:
        pytest.exit(str(error), returncode=pytest.ExitCode.USAGE_ERROR)
    print(f"\ne2e tier: infrastructure as {config.infra} (TAWASUL_TEST_INFRA)")
    stack = Stack(config)
    if os.environ.get("TAWASUL_TEST_KEEP_STACK") != "1":
        # Every session starts from empty databases and topics; installs stay cached.
        stack.down()
        shutil.rmtree(config.state_dir, ignore_errors=True)
    try:
        stack.up()
        yield stack
    finally:
        if os.environ.get("TAWASUL_TEST_KEEP_STACK") != "1":
            stack.down()
            if config.infra == "containers":
                stop_podman_socket(podman_dir(config))


@pytest.fixture(scope="session")
async def clients(stack: Stack) -> AsyncIterator[Clients]:
    async with Clients(stack.config) as c:
        yield c
