"""The staff directory is read when the settings are: a missing or malformed one stops notify
with one line naming TAWASUL_STAFF_DIRECTORY_FILE, not a traceback from the build."""

from __future__ import annotations

from pathlib import Path

import pytest
from tawasul_notify.adapters.staff import DEV_DIRECTORY
from tawasul_notify.settings import NotifySettings
from tawasul_platform.testing import SERVICE_ENVIRONMENT, assert_file_setting_refused


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in {
        **SERVICE_ENVIRONMENT,
        "TAWASUL_SMS_GATEWAY_URL": "http://127.0.0.1:1",
    }.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (None, "No such file or directory"),
        ('{"E1": "not an address"}', "expected an object of employee id -> e-mail address"),
    ],
)
def test_a_staff_directory_that_cannot_be_read_is_named(
    env: pytest.MonkeyPatch, tmp_path: Path, text: str | None, said: str
) -> None:
    assert_file_setting_refused(
        env, NotifySettings, "TAWASUL_STAFF_DIRECTORY_FILE", tmp_path / "staff.json", text, said
    )


def test_without_a_directory_and_with_the_development_one_notify_starts(
    env: pytest.MonkeyPatch,
) -> None:
    assert NotifySettings().staff_directory_file is None
    env.setenv("TAWASUL_STAFF_DIRECTORY_FILE", str(DEV_DIRECTORY))
    assert NotifySettings().staff_directory_file == DEV_DIRECTORY
