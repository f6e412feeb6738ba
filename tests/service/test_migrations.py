"""A rollout runs each service's migration Job first, while the previous release's pods keep
serving (deploy/README.md, "Order of a rollout"): what a revision leaves must take the previous
release's writes."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from tawasul_platform.migrations import upgrade
from tawasul_platform.testing import async_engine

SERVICES = ("intake", "routing", "review", "docs", "notify")
# Released before the rule was held: every installation is past them.
HELD_BEFORE = {
    ("review", "0003"): {"work_items": {"submitted_at"}},
    ("notify", "0002"): {"deliveries": {"updated_at"}},
}


def migrations(service: str) -> Path:
    package = importlib.import_module(f"tawasul_{service}")
    return Path(package.__file__ or "").resolve().parent / "migrations"


def revisions(service: str) -> list[str]:
    """The service's revisions, oldest first."""
    config = Config()
    config.set_main_option("script_location", str(migrations(service)))
    script = ScriptDirectory.from_config(config)
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def required(connection: Connection) -> dict[str, set[str]]:
    """Each table's columns an INSERT must name: NOT NULL, with no default."""
    inspector = inspect(connection)
    return {
        table: {
            column["name"]
            for column in inspector.get_columns(table)
            if not column["nullable"]
            and column.get("default") is None
            and column.get("identity") is None
        }
        for table in inspector.get_table_names()
    }


@pytest.mark.parametrize("service", SERVICES)
async def test_no_revision_requires_a_column_the_previous_release_does_not_write(
    service: str, database_url: str
) -> None:
    """A column a revision adds to a table that was there is one the previous release's
    INSERTs leave out: NOT NULL, it needs a default, kept after the backfill."""
    engine = async_engine(database_url)
    added: dict[tuple[str, str], dict[str, set[str]]] = {}
    try:
        before: dict[str, set[str]] = {}
        for revision in revisions(service):
            await asyncio.to_thread(upgrade, migrations(service), database_url, revision)
            async with engine.connect() as connection:
                after = await connection.run_sync(required)
            new = {t: after[t] - before[t] for t in before.keys() & after.keys()}
            if any(new.values()):
                added[(service, revision)] = {t: c for t, c in new.items() if c}
            before = after
    finally:
        await engine.dispose()
    assert added == {k: v for k, v in HELD_BEFORE.items() if k[0] == service}


# What the release before applicant_role (intake) and audience (notify) inserted.
PREVIOUS_INSERTS = {
    "intake": (
        "INSERT INTO requests (id, number, applicant_id, subject_id, idempotency_key,"
        " sub_service_code, catalog_version, department_code, description, fields, document_ids,"
        " contact, status, decision_message, decision_reason, submitted_digest, submitted_at,"
        " updated_at, sla, pauses, paused_since, history, cites_number, cited_by,"
        " follow_up_count, last_follow_up_at, missing, respond_by, appealed, status_sequence)"
        " VALUES (gen_random_uuid(), 'TW100000001', '1012345678', '1012345678', 'k1',"
        " 'passports.renewal', 1, 'passports', 'd', '{}', '[]', '{\"mobile\": \"0500000000\"}',"
        " 'submitted', '', NULL, '', now(), now(), '{}', '[]', NULL, '[]', NULL, '[]', 0, NULL,"
        " '[]', NULL, false, 0)"
    ),
    "notify": (
        "INSERT INTO inbox_messages (id, owner_id, request_id, kind, text, created_at)"
        " VALUES (gen_random_uuid(), '1012345678', gen_random_uuid(), 'status_changed', 't',"
        " now()) ON CONFLICT DO NOTHING"
    ),
}
DEFAULTS = {
    "intake": "SELECT applicant_role FROM requests",
    "notify": "SELECT audience FROM inbox_messages",
}


@pytest.mark.parametrize("service", PREVIOUS_INSERTS)
async def test_the_previous_release_inserts_into_the_migrated_schema(
    service: str, database_url: str
) -> None:
    await asyncio.to_thread(upgrade, migrations(service), database_url)
    engine = async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(PREVIOUS_INSERTS[service]))
            stored = (await connection.execute(text(DEFAULTS[service]))).scalars().all()
    finally:
        await engine.dispose()
    assert stored == [{"intake": "establishment", "notify": "beneficiary"}[service]]


async def test_notify_puts_back_the_default_an_earlier_0010_dropped(database_url: str) -> None:
    await asyncio.to_thread(upgrade, migrations("notify"), database_url, "0013")
    engine = async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("ALTER TABLE inbox_messages ALTER COLUMN audience DROP DEFAULT")
            )
        await asyncio.to_thread(upgrade, migrations("notify"), database_url)
        async with engine.begin() as connection:
            await connection.execute(text(PREVIOUS_INSERTS["notify"]))
    finally:
        await engine.dispose()
