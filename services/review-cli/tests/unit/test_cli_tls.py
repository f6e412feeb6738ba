"""The reviewers' CLI refuses a half-given TLS config before it calls anything."""

from __future__ import annotations

from pathlib import Path

from tawasul_review_cli.cli import app
from typer.testing import CliRunner


def test_a_certificate_without_its_key_and_ca_is_refused(tmp_path: Path) -> None:
    cert = tmp_path / "review-cli.pem"
    cert.write_text("not used")
    # Port 1: were the CLI to call anyway, the error would be UNAVAILABLE, not this one.
    args = ["--token", "t", "--address", "127.0.0.1:1", "--tls-cert", str(cert), "reasons"]
    result = CliRunner().invoke(
        app, args, env={"TAWASUL_TLS_KEY_FILE": None, "TAWASUL_TLS_CA_FILE": None}
    )
    assert result.exit_code == 1
    assert "TLS is half configured" in result.stderr
    assert "TAWASUL_TLS_KEY_FILE, TAWASUL_TLS_CA_FILE not" in result.stderr
