"""`tawasul-stack start/stop` take several processes, in the order given."""

from __future__ import annotations

from typing import ClassVar

import pytest
from tawasul_devstack import cli
from tawasul_devstack.podplay import PodConfig
from tawasul_devstack.procs import StackError
from tawasul_devstack.stack import StackConfig
from tawasul_platform.settings import outside_ephemeral


class RecordingStack:
    """Stands in for the stack: records what the command asked of it."""

    calls: ClassVar[list[tuple[str, str]]] = []
    running = frozenset({"routing", "notify"})

    def __init__(self, config: StackConfig) -> None:
        self.config = config

    def start_service(self, name: str) -> None:
        if name == "nonsense":
            raise StackError("no process called 'nonsense'")
        self.calls.append(("start", name))

    def stop_service(self, name: str) -> bool:
        self.calls.append(("stop", name))
        return name in self.running


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> type[RecordingStack]:
    RecordingStack.calls = []
    monkeypatch.setattr(cli, "Stack", RecordingStack)
    return RecordingStack


def test_start_takes_several_names_in_order(stack: type[RecordingStack]) -> None:
    assert cli.main(["start", "routing-2", "review-2"]) == 0
    assert stack.calls == [("start", "routing-2"), ("start", "review-2")]


def test_stop_takes_several_and_says_which_were_not_running(
    stack: type[RecordingStack], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["stop", "routing", "docs", "notify"]) == 0
    assert stack.calls == [("stop", "routing"), ("stop", "docs"), ("stop", "notify")]
    assert capsys.readouterr().out == "docs was not running\n"


def test_a_name_the_stack_does_not_know_stops_the_command_with_its_error(
    stack: type[RecordingStack], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["start", "routing-2", "nonsense", "review-2"]) == 1
    assert stack.calls == [("start", "routing-2")]
    assert "no process called 'nonsense'" in capsys.readouterr().err


def test_start_without_a_name_is_a_usage_error(stack: type[RecordingStack]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["start"])
    assert exited.value.code == 2
    assert stack.calls == []


@pytest.mark.parametrize("command", [["up"], ["start", "routing-2"]])
def test_a_port_base_in_the_ephemeral_range_is_refused_before_anything_starts(
    stack: type[RecordingStack],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    # A service connecting to Kafka there while it is down may be given the port as its own
    # end and take its own bytes for Kafka's answer.
    monkeypatch.setenv("TAWASUL_PORT_BASE", "40000")
    assert cli.main(command) == 2
    assert stack.calls == []
    said = capsys.readouterr().err
    assert said.startswith("error: TAWASUL_PORT_BASE: ports 40000-40215 are in this host's ")
    assert cli.main(["--port-base", "40000", *command]) == 2
    assert capsys.readouterr().err.startswith("error: --port-base: ports 40000-40215 ")


def test_the_default_port_bases_are_below_the_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TAWASUL_PORT_BASE", raising=False)
    monkeypatch.delenv("TAWASUL_POD_PORT_BASE", raising=False)
    for config in (StackConfig.from_env(), PodConfig.for_pods()):
        outside_ephemeral("default", config.ports())
