"""Every service's numbers out of range, a log level `logging` does not know and an SMS
gateway URL without its scheme are bad settings: one line naming the variable at start, never
a process that busy-loops (`every(0, ...)`), lets claims lapse at once, or dies later in a
traceback."""

from __future__ import annotations

from collections.abc import Mapping

import annotated_types
import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from tawasul_docs.settings import DocsSettings
from tawasul_gateway.settings import GatewaySettings
from tawasul_intake.adapters.registry import DEV_REGISTRY
from tawasul_intake.settings import IntakeSettings
from tawasul_notify.settings import NotifySettings
from tawasul_platform.settings import ServiceSettings, problems
from tawasul_platform.testing import SERVICE_ENVIRONMENT
from tawasul_review.settings import ReviewSettings
from tawasul_routing.settings import RoutingSettings

# What each service needs besides the shared settings to start.
NEEDS: Mapping[type[BaseSettings], Mapping[str, str]] = {
    DocsSettings: {
        **SERVICE_ENVIRONMENT,
        "TAWASUL_S3_ACCESS_KEY": "a",
        "TAWASUL_S3_SECRET_KEY": "b",
        "TAWASUL_S3_BUCKET": "c",
        "TAWASUL_CLAMD_ADDRESS": "clamav:3310",
    },
    GatewaySettings: {"TAWASUL_INTAKE_ADDRESS": "intake:50051", "TAWASUL_DOCS_ADDRESS": "d:1"},
    IntakeSettings: {
        **SERVICE_ENVIRONMENT,
        "TAWASUL_DOCS_ADDRESS": "docs:50051",
        "TAWASUL_NOTIFY_ADDRESS": "notify:50051",
        "TAWASUL_REGISTRY_FILE": str(DEV_REGISTRY),
        "TAWASUL_TRACKING_CODE_SECRET": "s",
    },
    NotifySettings: {**SERVICE_ENVIRONMENT, "TAWASUL_SMS_GATEWAY_URL": "http://sms:8080"},
    ReviewSettings: {**SERVICE_ENVIRONMENT, "TAWASUL_DOCS_ADDRESS": "docs:50051"},
    RoutingSettings: SERVICE_ENVIRONMENT,
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in {name for needs in NEEDS.values() for name in needs}:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def refused(
    env: pytest.MonkeyPatch, settings: type[BaseSettings], variable: str, value: str
) -> list[str]:
    """The lines `problems` makes of the settings with `variable` set to `value`."""
    for name, needed in {**NEEDS[settings], variable: value}.items():
        env.setenv(name, needed)
    with pytest.raises(ValidationError) as refusal:
        settings()
    return problems(refusal.value)


def test_every_service_starts_with_what_it_needs(env: pytest.MonkeyPatch) -> None:
    for settings, needs in NEEDS.items():
        for name, value in needs.items():
            env.setenv(name, value)
        settings()


@pytest.mark.parametrize(
    ("settings", "variable", "value", "said"),
    [
        # A sweep of 0 turned `every` into a busy loop; a negative lease lapsed every claim at
        # once; a deadline of 0 failed every call to docs.
        (ReviewSettings, "TAWASUL_SWEEP_SECONDS", "0", "greater than 0"),
        (ReviewSettings, "TAWASUL_SWEEP_SECONDS", "-1", "greater than 0"),
        (ReviewSettings, "TAWASUL_CLAIM_LEASE_SECONDS", "-60", "greater than 0"),
        (ReviewSettings, "TAWASUL_DOCS_DEADLINE_SECONDS", "0", "greater than 0"),
        (DocsSettings, "TAWASUL_RESCAN_SECONDS", "0", "greater than 0"),
        (DocsSettings, "TAWASUL_SWEEP_SECONDS", "0", "greater than 0"),
        (DocsSettings, "TAWASUL_MAX_DOCUMENT_BYTES", "0", "greater than or equal to 1"),
        (DocsSettings, "TAWASUL_CLAMD_TIMEOUT_SECONDS", "0", "greater than 0"),
        (DocsSettings, "TAWASUL_S3_TIMEOUT_SECONDS", "-1", "greater than 0"),
        (IntakeSettings, "TAWASUL_TRACKING_PER_CALLER_PER_HOUR", "0", "greater than or equal to 1"),
        (IntakeSettings, "TAWASUL_TRACKING_PER_REQUEST_PER_HOUR", "-5", "greater than or equal"),
        (IntakeSettings, "TAWASUL_DOCS_DEADLINE_SECONDS", "0", "greater than 0"),
        (IntakeSettings, "TAWASUL_NOTIFY_DEADLINE_SECONDS", "-1", "greater than 0"),
        (NotifySettings, "TAWASUL_SMTP_PORT", "0", "greater than or equal to 1"),
        (NotifySettings, "TAWASUL_SMTP_PORT", "70000", "less than or equal to 65535"),
        (GatewaySettings, "TAWASUL_HTTP_PORT", "-1", "greater than or equal to 1"),
    ],
)
def test_a_number_out_of_range_is_one_line_naming_its_variable(
    env: pytest.MonkeyPatch, settings: type[BaseSettings], variable: str, value: str, said: str
) -> None:
    (line,) = refused(env, settings, variable, value)
    assert line.startswith(f"{variable}: Input should be ")
    assert said in line


def _lower_bound(field: object) -> bool:
    metadata = getattr(field, "metadata", [])
    return any(isinstance(m, annotated_types.Ge | annotated_types.Gt) for m in metadata)


@pytest.mark.parametrize("settings", list(NEEDS), ids=lambda s: s.__name__)
def test_every_number_a_service_reads_is_bounded_below(settings: type[BaseSettings]) -> None:
    """A number added without its bound is caught here, before an operator's 0 is."""
    unbounded = [
        name
        for name, field in settings.model_fields.items()
        if field.annotation in (int, float) and not _lower_bound(field)
    ]
    assert unbounded == []


@pytest.mark.parametrize("settings", [ServiceSettings, GatewaySettings], ids=lambda s: s.__name__)
def test_a_log_level_logging_does_not_know_is_a_bad_setting(
    env: pytest.MonkeyPatch, settings: type[ServiceSettings | GatewaySettings]
) -> None:
    # It passed, and configure_logging raised "Unknown level: 'TRACE'" in a traceback.
    needs = NEEDS.get(settings, SERVICE_ENVIRONMENT)
    for name, value in needs.items():
        env.setenv(name, value)
    env.setenv("TAWASUL_LOG_LEVEL", "trace")
    with pytest.raises(ValidationError) as refusal:
        settings()
    (line,) = problems(refusal.value)
    assert line.startswith("TAWASUL_LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING'")

    env.setenv("TAWASUL_LOG_LEVEL", "warning")
    assert settings().log_level == "WARNING"


@pytest.mark.parametrize(
    "url",
    ["sms-gateway:8080", "sms-gateway", "ftp://sms-gateway", "http://", "http://sms:port"],
)
def test_an_sms_gateway_url_notify_cannot_call_is_a_bad_setting(
    env: pytest.MonkeyPatch, url: str
) -> None:
    # It passed, and the build died in Http1Pool with a ValueError naming no variable.
    lines = refused(env, NotifySettings, "TAWASUL_SMS_GATEWAY_URL", url + "?key=hunter2")
    assert lines == ["TAWASUL_SMS_GATEWAY_URL: expected http(s)://host[:port][/path]"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:19080", "https://sms.example/api/v1"])
def test_an_sms_gateway_url_with_its_scheme_and_host_is_taken(
    env: pytest.MonkeyPatch, url: str
) -> None:
    for name, value in {**NEEDS[NotifySettings], "TAWASUL_SMS_GATEWAY_URL": url}.items():
        env.setenv(name, value)
    assert NotifySettings().sms_gateway_url == url
