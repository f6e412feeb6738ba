"""Without --address, the CLI calls review where the development stack serves it."""

from __future__ import annotations

from pathlib import Path

from tawasul_devstack.config import StackConfig
from tawasul_review_cli.cli import DEFAULT_ADDRESS, app
from typer.testing import CliRunner


def test_the_default_address_is_review_on_the_development_stack(tmp_path: Path) -> None:
    stack = StackConfig(state_dir=tmp_path, cache_dir=tmp_path)
    assert stack.grpc_address("review") == DEFAULT_ADDRESS
    shown = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout
    assert f"[default: {DEFAULT_ADDRESS}]" in shown
