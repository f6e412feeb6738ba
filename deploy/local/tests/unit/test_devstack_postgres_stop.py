"""Stopping PostgreSQL signals its postmaster from the test's own process: running pg_ctl as the
data dir's owner forked the process, and gRPC's fork handlers, with a test's channels busy,
aborted the child before pg_ctl ran (a chaos test's outage failed to begin)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tawasul_devstack.components.postgres import Postgres
from tawasul_devstack.config import StackConfig

# A postmaster stand-in: on either shutdown signal it notes which, removes its pid file last
# (as PostgreSQL does) and exits.
POSTMASTER = """
import os, pathlib, signal, sys, time
def stop(number, frame):
    pathlib.Path(sys.argv[2]).write_text(signal.Signals(number).name)
    pathlib.Path(sys.argv[1]).unlink()
    os._exit(0)
signal.signal(signal.SIGQUIT, stop)
signal.signal(signal.SIGINT, stop)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(
    ("asked", "mode"), [(signal.SIGKILL, "SIGQUIT"), (signal.SIGTERM, "SIGINT")]
)
def test_stop_signals_the_postmaster_without_running_a_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asked: signal.Signals, mode: str
) -> None:
    config = StackConfig(tmp_path / "state", tmp_path / "cache")
    config.pg_dir.mkdir(parents=True)
    pid_file = config.pg_dir / "postmaster.pid"
    told = tmp_path / "told"
    server = subprocess.Popen(
        [sys.executable, "-c", POSTMASTER, str(pid_file), str(told)], stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == b"ready\n"
        pid_file.write_text(f"{server.pid}\n{config.pg_dir}\n{int(time.time())}\n5432\n")

        def forks(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"stop ran a process: {args}")

        monkeypatch.setattr(subprocess, "run", forks)
        postgres = Postgres(config)
        assert postgres.pid() == server.pid

        assert postgres.stop(asked) is True
        # Immediate shutdown for a crash, fast otherwise: pg_ctl's -m immediate and -m fast.
        assert told.read_text() == mode
        assert postgres.pid() is None
        assert server.wait(10) == 0
    finally:
        server.kill()
        server.wait()
