"""`tawasul-stack logs <service>-migrate` prints the service's last migrations, as its help
says."""

from __future__ import annotations

from pathlib import Path

import pytest
from tawasul_devstack import cli
from tawasul_devstack.components import services as components
from tawasul_devstack.procs import StackError
from tawasul_devstack.stack import Stack, StackConfig


def test_logs_of_a_services_migrations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = StackConfig.from_env(state_dir=tmp_path)
    log = components.migrate_log(config, "review")
    log.parent.mkdir(parents=True)
    log.write_text("INFO  [alembic.runtime.migration] Running upgrade  -> 0001\n")

    assert Stack(config).log_path("review-migrate") == log
    assert cli.main(["--state-dir", str(tmp_path), "logs", "review-migrate"]) == 0
    assert "Running upgrade  -> 0001" in capsys.readouterr().out


def test_logs_of_migrations_not_run_yet_say_where_they_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--state-dir", str(tmp_path), "logs", "notify-migrate"]) == 1
    err = capsys.readouterr().err
    assert "no log for 'notify-migrate'" in err
    assert "notify-migrate.log" in err


def test_logs_of_an_unknown_process_is_still_an_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="no process named 'nonsense-migrate'"):
        Stack(StackConfig.from_env(state_dir=tmp_path)).log_path("nonsense-migrate")
