"""The registry file is read when the settings are: a missing or malformed one stops intake with
one line naming TAWASUL_REGISTRY_FILE, not a traceback from the build."""

from __future__ import annotations

from pathlib import Path

import pytest
from tawasul_intake.adapters.registry import DEV_REGISTRY
from tawasul_intake.settings import IntakeSettings
from tawasul_platform.testing import SERVICE_ENVIRONMENT, assert_file_setting_refused


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in {
        **SERVICE_ENVIRONMENT,
        "TAWASUL_DOCS_ADDRESS": "127.0.0.1:1",
        "TAWASUL_NOTIFY_ADDRESS": "127.0.0.1:2",
        "TAWASUL_TRACKING_CODE_SECRET": "s",
    }.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (None, "No such file or directory"),
        ("{", "Expecting property name"),
        ('{"people": []}', "'relations' is missing"),
        (
            '{"people": [], "relations": [{"holder": "1", "person": "2", "kind": "dependent"}]}',
            "relations name unknown people ['2']",
        ),
    ],
)
def test_a_registry_file_that_cannot_be_read_is_named(
    env: pytest.MonkeyPatch, tmp_path: Path, text: str | None, said: str
) -> None:
    assert_file_setting_refused(
        env, IntakeSettings, "TAWASUL_REGISTRY_FILE", tmp_path / "registry.json", text, said
    )


def test_the_development_registry_is_taken(env: pytest.MonkeyPatch) -> None:
    env.setenv("TAWASUL_REGISTRY_FILE", str(DEV_REGISTRY))
    assert IntakeSettings().registry_file == DEV_REGISTRY
