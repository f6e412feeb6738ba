"""`tawasul-stack start/stop` take several processes, in the order given."""

from __future__ import annotations

from typing import ClassVar

import pytest
from tawasul_devstack import cli
from tawasul_devstack.procs import StackError
from tawasul_devstack.stack import StackConfig


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
