"""A bad setting stops a service at start with one line per variable, naming it, never its
value; numbers out of range and a URL for another database driver are bad settings too."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from tawasul_platform import authz, service
from tawasul_platform.identity import TokenVerifier
from tawasul_platform.settings import (
    EPHEMERAL_PORTS,
    CannotStart,
    ServiceSettings,
    ephemeral_ports,
    outside_ephemeral,
)
from tawasul_platform.testing import SERVICE_ENVIRONMENT, assert_file_setting_refused
from tawasul_platform.workdays import shipped_config


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in SERVICE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def refusal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What `tawasul-x serve` prints before it exits 2 (it builds nothing)."""
    monkeypatch.setattr(sys, "argv", ["tawasul-x", "serve"])

    async def never(_: ServiceSettings) -> service.Runtime:
        raise AssertionError("built with bad settings")

    with pytest.raises(SystemExit) as exited:
        service.run(name="x", settings=ServiceSettings, build=never, migrations=Path())
    assert exited.value.code == 2
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        (
            "TAWASUL_DATABASE_URL",
            "postgresql://u:hunter2@db/d",
            "the driver is postgresql; expected postgresql+asyncpg://user:password@host:port/"
            "database",
        ),
        ("TAWASUL_DATABASE_URL", "hunter2", "not a database URL; expected postgresql+asyncpg"),
        ("TAWASUL_CONSUMER_MAX_ATTEMPTS", "0", "Input should be greater than or equal to 1"),
        ("TAWASUL_DB_POOL_SIZE", "ten", "Input should be a valid integer"),
        ("TAWASUL_OUTBOX_FALLBACK_SECONDS", "0", "Input should be greater than 0"),
        ("TAWASUL_IDENTITY_ISSUERS", "[{hunter2", "cannot be parsed"),
        ("TAWASUL_IDENTITY_REFRESH_SECONDS", "0", "Input should be greater than or equal to 1"),
        ("TAWASUL_IDENTITY_REFRESH_SECONDS", "86400", "Input should be less than or equal to 3600"),
        # configure_logging raised on it, in a traceback.
        ("TAWASUL_LOG_LEVEL", "trace", "Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR'"),
    ],
)
def test_a_bad_setting_is_one_line_naming_its_variable(
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    said: str,
) -> None:
    env.setenv(name, value)
    lines = refusal(env, capsys)
    assert lines[0] == "tawasul-x: bad settings:"
    assert len(lines) == 2
    assert lines[1].startswith(f"  {name}: ")
    assert said in lines[1]
    assert "hunter2" not in "\n".join(lines)


def test_missing_settings_are_each_named(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.delenv("TAWASUL_DATABASE_URL")
    env.delenv("TAWASUL_GRPC_ADDRESS")
    assert refusal(env, capsys)[1:] == [
        "  TAWASUL_DATABASE_URL: Field required",
        "  TAWASUL_GRPC_ADDRESS: Field required",
    ]


def test_a_grace_past_the_budget_is_refused(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The budget's watchdog would end the process while handlers still had grace left."""
    env.setenv("TAWASUL_SHUTDOWN_GRACE_SECONDS", "30")
    (line,) = refusal(env, capsys)[1:]
    assert "shutdown_grace_seconds must be below shutdown_budget_seconds" in line


def test_the_defaults_and_the_asyncpg_url_are_taken(env: pytest.MonkeyPatch) -> None:
    settings = ServiceSettings()
    assert settings.database_url == SERVICE_ENVIRONMENT["TAWASUL_DATABASE_URL"]
    assert settings.consumer_max_attempts == 4


def test_the_identity_keys_are_re_read_as_often_as_set(env: pytest.MonkeyPatch) -> None:
    built: list[dict[str, Any]] = []

    class Recorded(TokenVerifier):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(kwargs)
            super().__init__(*args, **kwargs)

    env.setattr(authz, "TokenVerifier", Recorded)
    assert ServiceSettings().identity_refresh_seconds == 60
    env.setenv("TAWASUL_IDENTITY_REFRESH_SECONDS", "300")
    authz.Gate.from_settings(ServiceSettings(), {})
    assert built[0]["refresh_interval_seconds"] == 300


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (None, "cannot read"),
        ("{announced_spans: []", "not JSON"),
        ('{"version": "2027"}', "version"),
        (b"\xff\xfe", "is not UTF-8 text"),
        (
            f'{{"version": {shipped_config().version}, "closures": [{{"id": "outage", '
            '"start": "2026-01-13T09:00:00+03:00", "end": "2026-01-13T12:00:00+03:00", '
            '"reason_ar": "عطل", "reason_en": "outage"}]}',
            "was already loaded with other content",
        ),
    ],
)
def test_a_calendar_file_that_cannot_be_read_is_a_bad_setting(
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    text: str | bytes | None,
    said: str,
) -> None:
    """The closures file operators edit each year: a typo stops the process naming the
    variable, not a traceback from deep in the build (each service reads it there)."""
    path = tmp_path / "calendar.json"
    if isinstance(text, str):
        path.write_text(text, "utf-8")
    elif isinstance(text, bytes):
        path.write_bytes(text)
    env.setenv("TAWASUL_CALENDAR_CONFIG_PATH", str(path))
    (line,) = refusal(env, capsys)[1:]
    assert line.startswith("  TAWASUL_CALENDAR_CONFIG_PATH: ")
    assert str(path) in line
    assert said in line
    assert "Value error" not in line


def test_a_readable_calendar_file_is_taken(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "calendar.json"
    path.write_text('{"version": 1}', "utf-8")
    env.setenv("TAWASUL_CALENDAR_CONFIG_PATH", str(path))
    assert ServiceSettings().calendar_config_path == path


def test_office_hours_that_close_before_they_open_are_refused(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("TAWASUL_OFFICE_OPENS", "15:00")
    (line,) = refusal(env, capsys)[1:]
    assert line == (
        "  settings: office hours: opens must be before closes "
        "(TAWASUL_OFFICE_OPENS, TAWASUL_OFFICE_CLOSES)"
    )


def test_the_ephemeral_range_is_the_hosts_else_linuxs_default(tmp_path: Path) -> None:
    source = tmp_path / "ip_local_port_range"
    source.write_text("40000\t50000\n")
    assert ephemeral_ports(source) == (40000, 50000)
    assert ephemeral_ports(tmp_path / "absent") == EPHEMERAL_PORTS == (32768, 60999)
    source.write_text("not a range")
    assert ephemeral_ports(source) == EPHEMERAL_PORTS


def test_ports_in_the_ephemeral_range_are_refused_naming_the_setting(tmp_path: Path) -> None:
    """A client connecting to such a port while nothing listens (Kafka down) may be given it
    as its own end and connect to itself."""
    source = tmp_path / "ip_local_port_range"
    source.write_text("32768 60999")
    with pytest.raises(CannotStart) as refused:
        outside_ephemeral("TAWASUL_TEST_PORT_BASE", range(32700, 32916), source)
    assert str(refused.value) == (
        "TAWASUL_TEST_PORT_BASE: ports 32768-32915 are in this host's ephemeral range "
        "32768-60999 (net.ipv4.ip_local_port_range), where a client may connect to itself "
        "while nothing listens; choose ports below 32768 or above 60999"
    )
    outside_ephemeral("TAWASUL_TEST_PORT_BASE", range(29000, 29216), source)
    outside_ephemeral("TAWASUL_TEST_PORT_BASE", [61000, 65535], source)


def test_a_file_setting_refused_is_asserted_as_one_line_naming_it(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The services' file settings' tests share this body (tawasul_platform.testing)."""
    path = tmp_path / "calendar.json"
    variable = "TAWASUL_CALENDAR_CONFIG_PATH"
    assert_file_setting_refused(env, ServiceSettings, variable, path, None, "cannot read")
    with pytest.raises(AssertionError, match="not JSON"):
        assert_file_setting_refused(env, ServiceSettings, variable, path, "{", "not JSON!")
    with pytest.raises(AssertionError, match="was taken"):
        assert_file_setting_refused(env, ServiceSettings, variable, path, '{"version": 1}', "")
    env.setenv("TAWASUL_DB_POOL_SIZE", "ten")  # a second line, naming another variable
    absent = tmp_path / "absent.json"
    with pytest.raises(ValueError, match="too many values"):
        assert_file_setting_refused(env, ServiceSettings, variable, absent, None, "cannot read")
