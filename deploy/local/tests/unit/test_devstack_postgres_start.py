"""PostgreSQL that cannot start says why, as a StackError (the CLI's one-line failure), not a
traceback: a state dir's path pg_ctl's shell would split is refused before anything runs, and
a failed pg_ctl comes with the server log's tail."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tawasul_devstack.components import postgres as postgres_module
from tawasul_devstack.components.postgres import Postgres
from tawasul_devstack.config import StackConfig
from tawasul_devstack.procs import StackError


def test_a_state_dir_with_a_space_is_refused_before_pg_ctl_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Path] = []
    monkeypatch.setattr(
        postgres_module, "get_server", lambda pg_dir, cleanup_mode: started.append(pg_dir)
    )
    config = StackConfig(tmp_path / "My Projects" / "state", tmp_path / "cache")

    with pytest.raises(StackError, match="TAWASUL_STACK_DIR") as refused:
        Postgres(config).start()

    assert str(config.pg_dir) in str(refused.value)
    assert started == []


def test_a_failed_pg_ctl_is_a_stack_error_with_the_logs_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = StackConfig(tmp_path / "state", tmp_path / "cache")

    def get_server(pg_dir: Path, cleanup_mode: str | None) -> None:
        pg_dir.mkdir(parents=True)
        (pg_dir / "log").write_text('FATAL:  invalid value for parameter "max_connections"\n')
        raise subprocess.CalledProcessError(1, ["pg_ctl", "start"])

    monkeypatch.setattr(postgres_module, "get_server", get_server)

    with pytest.raises(StackError, match="PostgreSQL did not start") as failed:
        Postgres(config).start()

    assert 'invalid value for parameter "max_connections"' in str(failed.value)
