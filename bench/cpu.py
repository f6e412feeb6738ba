"""CPU time from /proc: a process's, the machine's, and each process of the stack's over a span.

On 2 cores every process competes for the same CPU, so a figure's latency says as much about
the others as about the path it times: the span's footprint says who spent what.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tawasul_devstack.stack import SERVICES, Stack

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The stack's other processes, by the names the stack starts them under.
OTHERS = ("kafka", "postgres", "minio", "clamd", "sms-gateway", "smtp", "gateway")


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on (the command before it may hold spaces); None
    once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user and system) a process has used, from /proc."""
    fields = None if pid is None else _stat(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def busy_seconds() -> float:
    """The machine's CPU time spent other than idle or waiting for I/O, over all cores."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    """Every process whose parent is `pid` (PostgreSQL's backends and workers)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(entry.name))
        if fields is not None and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def processes(stack: Stack) -> dict[str, list[int]]:
    """The stack's running processes by name; PostgreSQL with every backend it has now."""
    named: dict[str, list[int]] = {}
    for name in (*SERVICES, *OTHERS):
        pid = stack.pid(name)
        if pid is not None:
            named[name] = [pid, *(children(pid) if name == "postgres" else ())]
    return named


def niceness(stack: Stack) -> dict[str, int]:
    """The niceness of each of the stack's running processes (the background ones yield)."""
    found = {}
    for name, (pid, *_) in processes(stack).items():
        fields = _stat(pid)
        if fields is not None:
            found[name] = int(fields[16])  # field 19, nice
    return found


def _own() -> dict[str, float]:
    """This process's CPU time, and its children's once they have been waited for (the load
    process: run_load waits for it)."""
    mine = resource.getrusage(resource.RUSAGE_SELF)
    theirs = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"bench": mine.ru_utime + mine.ru_stime, "load": theirs.ru_utime + theirs.ru_stime}


@dataclass(frozen=True)
class Spent:
    seconds: float
    cpu: dict[str, float]  # CPU seconds by process
    busy_cores: float  # the machine's, whatever ran

    def summary(self, submissions: int) -> dict[str, Any]:
        """CPU a submission by process in ms, the dearest first, and their sum."""
        each = max(submissions, 1)
        by_process = {
            name: round(1000 * seconds / each, 2)
            for name, seconds in sorted(self.cpu.items(), key=lambda kv: -kv[1])
        }
        return {
            "submissions": submissions,
            "seconds": round(self.seconds, 1),
            "cpu_ms_a_submission": by_process,
            "all_processes_ms_a_submission": round(1000 * sum(self.cpu.values()) / each, 2),
            "machine_busy_cores": round(self.busy_cores, 2),
        }


class Footprint:
    """The CPU each of the stack's processes, the load process and this one spent while it
    was entered, and the machine's busy cores meanwhile.

    PostgreSQL counts the backends it had on entry (the services' pools); a backend started
    later is left out, and so is a load process still running on exit."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._named: dict[str, list[int]] = {}
        self._before: dict[str, float] = {}
        self._busy = 0.0
        self._started = 0.0
        self._spent: Spent | None = None

    def __enter__(self) -> Footprint:
        self._named = processes(self._stack)
        self._before = {**_cpu(self._named), **_own()}
        self._busy = busy_seconds()
        self._started = time.monotonic()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        seconds = max(time.monotonic() - self._started, 1e-9)
        after = {**_cpu(self._named), **_own()}
        self._spent = Spent(
            seconds=seconds,
            cpu={name: after[name] - before for name, before in self._before.items()},
            busy_cores=(busy_seconds() - self._busy) / seconds,
        )

    def summary(self, submissions: int) -> dict[str, Any]:
        """What the span spent, a submission (Spent.summary); once it has ended."""
        if self._spent is None:
            raise RuntimeError("the footprint's span has not ended")
        return self._spent.summary(submissions)


def _cpu(named: Mapping[str, Iterable[int]]) -> dict[str, float]:
    return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in named.items()}
