"""A command when review cannot be reached (port 1: connection refused): one error line, as
soon as the connection fails, whatever the command."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS
from tawasul_review_cli.cli import app
from typer.testing import CliRunner

REFUSED = "error: UNAVAILABLE: "


@pytest.mark.parametrize("command", [["queue", "passports"], ["next"]])
def test_a_command_fails_at_once_when_review_is_down(command: list[str], tmp_path: Path) -> None:
    # `next` does not wait for the service to come back to send again what it never sent,
    # nor say that a request may have been claimed.
    started = time.monotonic()
    result = CliRunner().invoke(
        app,
        ["--token", "t", "--address", "127.0.0.1:1", "--language", "en", *command],
        env={"XDG_STATE_HOME": str(tmp_path)},
    )
    took = time.monotonic() - started
    assert result.exit_code == 1
    assert result.stderr.startswith(REFUSED)
    assert result.stderr.count("\n") == 1, result.stderr
    assert took < DEFAULT_DEADLINE_SECONDS / 2
