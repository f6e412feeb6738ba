"""An `up` that fails part-way stops what it started, and only that: a process that ran before
it (a stack's PostgreSQL, say) runs on, and nothing it started is left for `down` to find."""

from __future__ import annotations

from pathlib import Path

import pytest
from tawasul_devstack import stack as stack_module
from tawasul_devstack.procs import StackError
from tawasul_devstack.stack import GATEWAY_PROCESS, PROCESSES, SERVICES, Stack, StackConfig


class _Process:
    """A component that runs only in this test's bookkeeping."""

    def __init__(self, name: str, *, running: bool = False, refuse: bool = False) -> None:
        self.name = name
        self.log_file = Path("/dev/null")
        self.running = running
        self.refuse = refuse
        self.stopped = False

    def start(self) -> None:
        if self.refuse:
            raise StackError(f"cannot start {self.name}: port(s) [19088] already in use")
        self.running = True

    def ready(self) -> None:
        pass

    def stop(self, sig: int) -> bool:
        was, self.running = self.running, False
        self.stopped = self.stopped or was
        return was

    def pid(self) -> int | None:
        return 4242 if self.running else None

    def create_databases(self, services: tuple[str, ...]) -> None:
        pass


def test_a_failed_up_stops_what_it_started_and_leaves_what_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = Stack(StackConfig.from_env(state_dir=tmp_path))
    processes = {
        name: _Process(name, running=name == "postgres", refuse=name == GATEWAY_PROCESS)
        for name in ("postgres", *PROCESSES, *SERVICES, GATEWAY_PROCESS, "prometheus")
    }
    stack._components.update(processes)
    stack._postgres = processes["postgres"]  # type: ignore[assignment]
    monkeypatch.setattr(Stack, "install", lambda self: None)
    monkeypatch.setattr(StackConfig, "ensure_pki", lambda self: None)
    monkeypatch.setattr(stack_module, "ensure_venvs", lambda names: None)
    monkeypatch.setattr(stack_module, "migrate", lambda config, services: None)

    with pytest.raises(StackError, match="cannot start gateway"):
        stack.up()

    assert {name for name, process in processes.items() if process.running} == {"postgres"}
    assert {name for name, process in processes.items() if process.stopped} == {
        *PROCESSES,
        *SERVICES,
    }
    assert stack.status() == {name: name == "postgres" for name in stack.status()}
