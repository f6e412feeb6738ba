"""`tawasul-stack logs <service>-migrate` prints the service's last migrations, as its help
says; a process whose /metrics port is taken is refused at start with the stack's own error,
as one whose gRPC port is, not left to die on a bare OSError."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tawasul_devstack import cli
from tawasul_devstack.components import services as components
from tawasul_devstack.config import SERVICES
from tawasul_devstack.pki import GATEWAY
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


@pytest.fixture
def free_port() -> Iterator[socket.socket]:
    """A listening socket on a port the system chose: the port "another process" holds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def _intake(config: StackConfig) -> components.Service | components.Gateway:
    return components.Service(config, "intake", 1, "intake")


def _gateway(config: StackConfig) -> components.Service | components.Gateway:
    return components.Gateway(config)


@pytest.mark.parametrize(
    ("process", "offset"),
    [
        # Metrics of intake at base+201+its index; the gateway's at its HTTP port + 100.
        (_intake, 201 + SERVICES.index("intake")),
        (_gateway, 188),
    ],
    ids=["intake", GATEWAY],
)
def test_a_taken_metrics_port_refuses_the_start(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    free_port: socket.socket,
    process: Callable[[StackConfig], components.Service | components.Gateway],
    offset: int,
) -> None:
    taken = free_port.getsockname()[1]
    config = StackConfig.from_env(state_dir=tmp_path, port_base=taken - offset)
    # Nothing is run: the start is refused before it spawns (no venv or certificates needed).
    monkeypatch.setattr(components, "_script", lambda package: "/bin/false")
    monkeypatch.setattr(StackConfig, "ensure_pki", lambda self: None)
    component = process(config)

    with pytest.raises(StackError, match=rf"port\(s\) \[{taken}\] already in use"):
        component.start()
    assert component.proc.pid() is None
