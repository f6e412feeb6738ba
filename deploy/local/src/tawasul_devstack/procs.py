"""Background processes of a stack: started detached, tracked by pid file, stopped by group."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class StackError(RuntimeError):
    """The stack could not be brought to the state asked for; the message says why."""


def tail(path: Path, lines: int = 40, *, latest_run: bool = True) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    if latest_run:
        # Each run of a process starts its log with a "=== <time> <command>" line (see spawn).
        text = text[text.rfind("\n=== ") + 1 :]
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A port nothing listens on now, for a server a test starts on its own."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_ready(
    child: subprocess.Popen[bytes], ready: Callable[[], bool], *, timeout: float, what: str
) -> None:
    """Polls `ready` for a server a test started itself; StackError at once if the process
    ends, or once `timeout` has passed."""
    deadline = time.monotonic() + timeout
    while not ready():
        if child.poll() is not None:
            raise StackError(f"exited (status {child.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise StackError(f"no {what} after {timeout:.0f} s")
        time.sleep(0.05)


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot); None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may contain spaces and parentheses; the fields after its last ")" are fixed.
    fields = stat.rpartition(")")[2].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _group_runs(pgid: int) -> bool:
    """Whether any thread of process group `pgid` still runs. A leader shows as a zombie once
    its own thread ended, while its other threads (and its children in the group) may still
    hold its sockets, so each thread is looked at, not the leader."""
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            tasks = list((process / "task").iterdir())
        except (FileNotFoundError, ProcessLookupError):
            continue
        for task in tasks:
            try:
                stat = (task / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            state, _ppid, group = stat.rpartition(")")[2].split()[:3]
            if int(group) == pgid and state not in ("Z", "X"):
                return True
    return False


def started_at(pid: int) -> float | None:
    """When the process started, in seconds since the epoch; None when it is gone or a zombie.
    For a pid recorded by a program of its own (PostgreSQL's postmaster.pid), with its time."""
    ticks = _start_time(pid)
    if ticks is None:
        return None
    stat = Path("/proc/stat").read_text().split()
    boot = int(stat[stat.index("btime") + 1])
    return boot + int(ticks) / os.sysconf("SC_CLK_TCK")


class Proc:
    """One named process of a stack, with its pid file and log file in the state dir."""

    def __init__(self, name: str, pid_file: Path, log_file: Path) -> None:
        self.name = name
        self.pid_file = pid_file
        self.log_file = log_file
        # Set when this Python process started it, so that it can reap it (no zombie left).
        self._child: subprocess.Popen[bytes] | None = None

    def pid(self) -> int | None:
        """The pid recorded in the pid file, if that process still runs."""
        self._reap()
        try:
            pid, start = self.pid_file.read_text().split()
        except (FileNotFoundError, ValueError):
            return None
        # The recorded start time tells a recycled pid apart from ours.
        return int(pid) if _start_time(int(pid)) == start else None

    def spawn(
        self, argv: Sequence[str], env: Mapping[str, str], *, stdout_to_log: bool = True
    ) -> None:
        """Start `argv` detached, its stderr (and stdout unless `stdout_to_log` is false: for a
        server that writes its own log file and echoes it on stdout) appended to the log."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n=== {time.strftime('%F %T')} {shlex.join(argv)}\n".encode())
            log.flush()
            # A session of its own: Ctrl-C in the terminal that ran `up` does not reach it,
            # and the whole group can be signalled on stop.
            self._child = subprocess.Popen(
                argv,
                env={**env, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=log if stdout_to_log else subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        start = _start_time(self._child.pid)
        if start is None:
            code = self._child.wait()
            raise StackError(f"{self.name} exited at once (code {code}):\n{tail(self.log_file)}")
        self.pid_file.write_text(f"{self._child.pid} {start}\n")

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready` until true; fail early, with the log's tail, if the process ends."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.pid() is None:
                raise StackError(f"{self.name} exited before {what}:\n{tail(self.log_file)}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"{self.name}: no {what} after {timeout:.0f} s:\n{tail(self.log_file)}"
                )
            time.sleep(0.2)

    def stop(self, sig: int, grace: float) -> bool:
        """Signal the process group and wait for it to end, with SIGKILL after `grace` seconds.

        Returns whether a process was running.
        """
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
            if not self._wait_gone(pid, grace):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                if not self._wait_gone(pid, 10):
                    raise StackError(f"{self.name} (pid {pid}) survived SIGKILL")
            # Sweep whatever the leader left behind in its group, and wait for it: its threads
            # and children hold the ports a restart binds again.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _group_runs(pid):
                if time.monotonic() > deadline:
                    raise StackError(f"{self.name}'s process group {pid} survived SIGKILL")
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return pid is not None

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        if self._child is not None and self._child.pid == pid:
            # Our own child: wait() reaps it, so it leaves no zombie behind.
            try:
                self._child.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            self._child = None
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _start_time(pid) is None:
                return True
            time.sleep(0.1)
        return False

    def _reap(self) -> None:
        if self._child is not None and self._child.poll() is not None:
            self._child = None
