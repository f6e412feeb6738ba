"""The stack's components behind one protocol: each starts, says when it is ready, and stops.

One module per component runs it as a local process; the stack (stack.py) only knows the
order to bring them up in and the lock that keeps two `up`s of one state dir apart.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import ClassVar, Protocol

import httpx

from tawasul_devstack.config import StackConfig
from tawasul_devstack.procs import Proc, StackError, port_in_use

__all__ = ["Component", "LocalProcess", "http_ok", "script"]

_log = logging.getLogger(__name__)


class Component(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def log_file(self) -> Path: ...

    def start(self) -> None:
        """Launch it unless it already runs; returns without waiting for it to serve."""

    def ready(self) -> None:
        """Return once it serves; StackError, with its log's tail, if it ends or times out."""

    def stop(self, sig: int) -> bool:
        """Signal it and wait for its end; whether it was running."""

    def pid(self) -> int | None:
        """Its process id while it runs."""


class LocalProcess:
    """A component run as one detached local process, tracked by a pid file in the state dir."""

    # Seconds between the stop signal and SIGKILL.
    stop_grace: ClassVar[float] = 15.0

    def __init__(self, config: StackConfig, name: str) -> None:
        self.config = config
        self.name = name
        state = config.state_dir
        self.proc = Proc(name, state / "pids" / f"{name}.pid", state / "logs" / f"{name}.log")

    @property
    def log_file(self) -> Path:
        return self.proc.log_file

    def pid(self) -> int | None:
        return self.proc.pid()

    def stop(self, sig: int) -> bool:
        return self.proc.stop(sig, self.stop_grace)

    def spawn(
        self,
        argv: list[str],
        env: Mapping[str, str],
        ports: Iterable[int],
        *,
        stdout_to_log: bool = True,
    ) -> None:
        """Start `argv` unless this component already runs, at its niceness; refuse if its
        ports are taken."""
        pid = self.proc.pid()
        if pid is not None:
            _log.info("  %s already running (pid %d)", self.name, pid)
            return
        busy = [port for port in ports if port_in_use(port)]
        if busy:
            raise StackError(
                f"cannot start {self.name}: port(s) {busy} already in use by another "
                "process (another stack? choose TAWASUL_PORT_BASE)"
            )
        nice = self.config.niceness(self.name)
        if nice:
            # nice(1) execs the command: the pid, its threads and its children all yield.
            argv = ["nice", "-n", str(nice), *argv]
        self.proc.spawn(argv, env, stdout_to_log=stdout_to_log)
        _log.info("  %s started (pid %s), log %s", self.name, self.proc.pid(), self.log_file)


def script(name: str) -> str:
    """A console script of this venv: they sit next to the running interpreter."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise StackError(f"{path} not found: is the workspace installed (`uv sync`)?")
    return str(path)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
