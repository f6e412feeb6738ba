"""Stopping a process waits for its whole group: a restart binds the same ports again."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from tawasul_devstack.procs import Proc

# Forks a child in its process group that ignores SIGTERM and listens on a port (as a service's
# thread or forked child holds its sockets), writes the port, and waits to be killed.
SCRIPT = """
import os, signal, socket, sys, time
if os.fork() == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    with open(sys.argv[1] + ".tmp", "w") as out:
        out.write(str(server.getsockname()[1]))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    while True:
        time.sleep(1)
time.sleep(60)
"""


def test_stop_returns_once_nothing_of_the_group_holds_its_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port_file = tmp_path / "port"
    proc = Proc("intake", tmp_path / "intake.pid", tmp_path / "intake.log")
    proc.spawn([sys.executable, "-c", SCRIPT, str(port_file)], dict(os.environ))
    deadline = time.monotonic() + 20
    while not port_file.exists():
        assert time.monotonic() < deadline, proc.log_file.read_text()
        time.sleep(0.05)
    port = int(port_file.read_text())

    # A SIGKILL whose effect comes late, as a process with many threads takes a while to end.
    killpg = os.killpg

    def late_kill(pgid: int, sig: int) -> None:
        if sig == signal.SIGKILL:
            threading.Timer(0.5, killpg, (pgid, sig)).start()
        else:
            killpg(pgid, sig)

    monkeypatch.setattr(os, "killpg", late_kill)
    assert proc.stop(signal.SIGTERM, grace=5)

    with socket.socket() as again:
        again.bind(("127.0.0.1", port))
