from __future__ import annotations

from datetime import datetime, time
from pathlib import Path

import pytest
from pydantic import ValidationError
from tawasul_calendar import RIYADH, Sector, Sla
from tawasul_platform.settings import ServiceSettings
from tawasul_platform.workdays import load_working_calendar, shipped_config

START = datetime(2026, 1, 12, 14, 0, tzinfo=RIYADH)
OUTAGE = """{"version": %d, "closures": [{"id": "outage", "start": "2026-01-13T09:00:00+03:00",
  "end": "2026-01-13T12:00:00+03:00", "reason_ar": "عطل", "reason_en": "outage"}]}"""


def settings(**overrides: object) -> ServiceSettings:
    return ServiceSettings(
        database_url="postgresql+asyncpg://x/y",
        kafka_bootstrap="127.0.0.1:1",
        grpc_address="127.0.0.1:0",
        identity_issuers=[],
        identity_audience="tawasul-test",
        **overrides,  # type: ignore[arg-type]
    )


def test_the_shipped_calendar_is_the_public_sectors_with_office_hours() -> None:
    calendar = load_working_calendar(settings())
    assert calendar.sector is Sector.PUBLIC
    assert calendar.config == shipped_config()
    assert calendar.due(START, Sla.days(1)) == datetime(2026, 1, 13, 14, 0, tzinfo=RIYADH)


def test_sector_and_hours_come_from_settings() -> None:
    calendar = load_working_calendar(
        settings(calendar_sector="private", office_opens="08:00", office_closes="16:00")
    )
    assert calendar.sector is Sector.PRIVATE
    assert (calendar.hours.opens, calendar.hours.closes) == (time(8), time(16))


def test_a_newer_configured_file_takes_effect(tmp_path: Path) -> None:
    path = tmp_path / "calendar.json"
    path.write_text(OUTAGE % (shipped_config().version + 1), "utf-8")
    calendar = load_working_calendar(settings(calendar_config_path=path))
    assert calendar.due(START, Sla.days(1)) == datetime(2026, 1, 14, 10, 0, tzinfo=RIYADH)


def test_an_older_configured_file_leaves_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "calendar.json"
    path.write_text(OUTAGE % 0, "utf-8")
    assert load_working_calendar(settings(calendar_config_path=path)).config == shipped_config()


def test_the_same_version_with_other_content_fails_at_start(tmp_path: Path) -> None:
    path = tmp_path / "calendar.json"
    path.write_text(OUTAGE % shipped_config().version, "utf-8")
    with pytest.raises(ValidationError, match="other content"):
        settings(calendar_config_path=path)
