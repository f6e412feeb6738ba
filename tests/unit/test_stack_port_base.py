"""The e2e stack's port base is refused inside the host's ephemeral range, where a service
connecting to Kafka while it is down may connect to itself (TCP simultaneous open)."""

from __future__ import annotations

import pytest
from tawasul_platform.settings import CannotStart, ephemeral_ports

from tests.conftest import stack_config


def test_the_default_base_is_below_the_ephemeral_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAWASUL_TEST_PORT_BASE", raising=False)
    config = stack_config()
    assert config.port_base == 29000
    assert max(config.ports()) < ephemeral_ports()[0]


def test_a_base_whose_ports_reach_the_ephemeral_range_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, last = ephemeral_ports()
    # Below the range itself, but the stack's highest ports (its metrics) are within it.
    monkeypatch.setenv("TAWASUL_TEST_PORT_BASE", str(first - 100))
    with pytest.raises(CannotStart) as refused:
        stack_config()
    said = str(refused.value)
    assert said.startswith("TAWASUL_TEST_PORT_BASE: ports ")
    assert f"-{first + 115} are in this host's ephemeral range {first}-{last} " in said


def test_the_stack_ports_are_every_port_it_listens_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAWASUL_TEST_PORT_BASE", "20000")
    ports = stack_config().ports()
    # MinIO, Kafka's listeners, the gateway, routing's second replica's gRPC and metrics.
    assert {20000, 20092, 20093, 20094, 20088, 20113, 20213} <= ports
    assert min(ports) == 20000
    assert max(ports) == 20215
