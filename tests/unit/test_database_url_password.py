"""The prod manifests put TAWASUL_DATABASE_URL together from the <service>-db-app Secret,
unescaped (the kubelet's $(VAR) expansion): a password is only safe there when it is
URL-safe, as deploy/README.md requires."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "deploy" / "k8s" / "base" / "intake" / "migrate-job.yaml"


def _url(password: str) -> str:
    """The Job's TAWASUL_DATABASE_URL as the kubelet expands it."""
    (job,) = yaml.safe_load_all(JOB.read_text())
    (env,) = [
        e
        for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"] == "TAWASUL_DATABASE_URL"
    ]
    values = {
        "TAWASUL_DB_USER": "tawasul_intake",
        "TAWASUL_DB_PASSWORD": password,
        "TAWASUL_DB_HOST": "intake-db-rw",
        "TAWASUL_DB_PORT": "5432",
        "TAWASUL_DB_NAME": "tawasul_intake",
    }
    url: str = env["value"]
    for name, value in values.items():
        url = url.replace(f"$({name})", value)
    return url


def test_a_hex_password_as_the_readme_makes_it_reaches_the_driver_unchanged() -> None:
    password = secrets.token_hex(24)  # openssl rand -hex 24
    url = make_url(_url(password))
    assert (url.password, url.host, url.database) == (password, "intake-db-rw", "tawasul_intake")


@pytest.mark.parametrize("password", ["s3cr@t", "100%41"])
def test_a_password_that_is_not_url_safe_does_not(password: str) -> None:
    url = make_url(_url(password))
    assert (url.password, url.host) != (password, "intake-db-rw")


def test_the_readme_requires_url_safe_database_passwords() -> None:
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert "must be **URL-safe**" in readme
    assert "openssl rand -hex 24" in readme
