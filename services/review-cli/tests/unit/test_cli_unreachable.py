"""A command when review cannot be reached (port 1: connection refused): one error line, as
soon as the connection fails, whatever the command."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS
from tawasul_review_cli.cli import app
from tawasul_review_cli.pending import PendingClaim, token_subject
from typer.testing import CliRunner

REFUSED = "error: UNAVAILABLE: "
NOWHERE = ["--token", "t", "--address", "127.0.0.1:1", "--language", "en"]


@pytest.mark.parametrize("command", [["queue", "passports"], ["next"]])
def test_a_command_fails_at_once_when_review_is_down(command: list[str], tmp_path: Path) -> None:
    # `next` does not wait for the service to come back to send again what it never sent,
    # nor say that a request may have been claimed.
    started = time.monotonic()
    result = CliRunner().invoke(
        app,
        [*NOWHERE, *command],
        env={"XDG_STATE_HOME": str(tmp_path)},
    )
    took = time.monotonic() - started
    assert result.exit_code == 1
    assert result.stderr.startswith(REFUSED)
    assert result.stderr.count("\n") == 1, result.stderr
    assert took < DEFAULT_DEADLINE_SECONDS / 2


def test_the_key_of_a_lost_answer_outlives_a_next_that_could_not_reach_review(
    tmp_path: Path,
) -> None:
    # Kept by a `next` whose answers were lost: the `next` once review is back gets its item.
    pending = PendingClaim(
        "127.0.0.1:1", token_subject("t"), "", tmp_path / "tawasul-review-cli" / "pending-claims"
    )
    key = pending.key(datetime.now(UTC))
    result = CliRunner().invoke(app, [*NOWHERE, "next"], env={"XDG_STATE_HOME": str(tmp_path)})
    assert result.stderr.startswith(REFUSED)
    assert pending.key(datetime.now(UTC)) == key
