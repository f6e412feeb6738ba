"""A rollout runs each service's migration Job first, while the previous release's pods keep
serving (deploy/README.md, "Order of a rollout"): what a revision leaves must take the previous
release's writes."""

from __future__ import annotations

import asyncio
import importlib
from inspect import getsource
from pathlib import Path

import asyncpg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from tawasul_platform.migrations import LOCK_TIMEOUT_SECONDS, upgrade
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


def asyncpg_dsn(database_url: str) -> str:
    return "postgresql://" + database_url.split("://", 1)[1]


async def test_each_revision_commits_alone_and_gives_up_a_lock_it_cannot_get(
    database_url: str,
) -> None:
    """Notify from 0009: 0010 alters inbox_messages, 0011 request_access, which an old pod's
    open transaction holds. 0010's lock ends with 0010, so inbox_messages is read while 0011
    waits; 0011 stops waiting after the lock timeout (the Job fails, to be retried), not
    queued for good in front of every query on request_access."""
    await asyncio.to_thread(upgrade, migrations("notify"), database_url, "0009")
    old_pod = await asyncpg.connect(asyncpg_dsn(database_url))
    reader = await asyncpg.connect(asyncpg_dsn(database_url))
    await old_pod.execute("BEGIN")
    await old_pod.execute("SELECT count(*) FROM request_access")
    job = asyncio.create_task(asyncio.to_thread(upgrade, migrations("notify"), database_url))
    try:
        version = ""
        for _ in range(100):
            version = await reader.fetchval("SELECT version_num FROM alembic_version")
            if version != "0009":
                break
            await asyncio.sleep(0.1)
        assert version == "0010"
        await reader.execute("SET statement_timeout = '1s'")
        assert await reader.fetchval("SELECT count(*) FROM inbox_messages") == 0
        with pytest.raises(DBAPIError, match="lock timeout"):
            await asyncio.wait_for(asyncio.shield(job), timeout=LOCK_TIMEOUT_SECONDS + 5)
    finally:
        await old_pod.execute("ROLLBACK")
        await asyncio.gather(job, return_exceptions=True)
        await old_pod.close()
    assert await reader.fetchval("SELECT version_num FROM alembic_version") == "0010"
    await reader.close()
    # The Job's next attempt, the old pod's transaction over.
    await asyncio.to_thread(upgrade, migrations("notify"), database_url)


# Backfills in batches: (service, revision, its module, table, column added, rows of the
# revision before: each with its applicant's number, which the column is told from).
BACKFILLS = [
    (
        "intake",
        "0010",
        "0010_applicant_role",
        "requests",
        "applicant_role",
        "INSERT INTO requests (id, number, applicant_id, idempotency_key, sub_service_code,"
        " description, document_ids, contact, status, submitted_at, updated_at, history)"
        " SELECT gen_random_uuid(), 'TW' || g, {applicant}, 'k', 's', 'd', '[]', '{{}}',"
        " 'closed', now(), now(), '[]' FROM generate_series(1, {rows}) AS g",
    ),
    (
        "notify",
        "0011",
        "0011_access_applicant_kind",
        "request_access",
        "applicant_kind",
        "INSERT INTO request_access (request_id, applicant_id, department)"
        " SELECT gen_random_uuid(), {applicant}, 'passports' FROM generate_series(1, {rows}) AS g",
    ),
]


@pytest.mark.parametrize(
    ("service", "revision", "module", "table", "column", "insert"),
    BACKFILLS,
    ids=[f"{b[0]}-{b[1]}" for b in BACKFILLS],
)
async def test_a_backfill_runs_in_batches_outside_the_add_column(
    service: str,
    revision: str,
    module: str,
    table: str,
    column: str,
    insert: str,
    database_url: str,
) -> None:
    """Each batch commits in a transaction of its own, none the ADD COLUMN's (whose ACCESS
    EXCLUSIVE lock held every read of the table through the backfill): intake's requests,
    notify's access checks of every delivery."""
    batch = importlib.import_module(f"tawasul_{service}.migrations.versions.{module}").BATCH
    before = revisions(service)[revisions(service).index(revision) - 1]
    await asyncio.to_thread(upgrade, migrations(service), database_url, before)
    applicant = "(ARRAY['1', '2', '7'])[g % 3 + 1] || lpad(g::text, 9, '0')"
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute(insert.format(applicant=applicant, rows=2 * batch + 1))
        await connection.execute(
            "CREATE TABLE updates (xid bigint);"
            " CREATE FUNCTION log_update() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN INSERT INTO updates VALUES (txid_current() % 4294967296); RETURN NULL;"
            " END $$;"
            f" CREATE TRIGGER log_update AFTER UPDATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION log_update()"
        )
        await asyncio.to_thread(upgrade, migrations(service), database_url, revision)
        added = await connection.fetchval(
            "SELECT xmin::text::bigint FROM pg_attribute"
            f" WHERE attrelid = '{table}'::regclass AND attname = '{column}'"
        )
        updates = {row["xid"] for row in await connection.fetch("SELECT xid FROM updates")}
        told = await connection.fetch(
            f"SELECT left(applicant_id, 1) AS first, {column} AS kind, count(*) FROM {table}"
            " GROUP BY 1, 2 ORDER BY 1"
        )
    finally:
        await connection.close()
    assert added not in updates
    assert len(updates) >= 3  # a batch of `batch` ids each, and the empty one after
    assert [(r["first"], r["kind"]) for r in told] == [
        ("1", "citizen"),
        ("2", "resident"),
        ("7", "establishment"),
    ]


def autocommitted() -> list[tuple[str, str, str]]:
    """(service, revision before, revision) of each revision with an autocommit block (a
    concurrent index build, a backfill in batches): its work commits before its stamp."""
    found = []
    for service in SERVICES:
        config = Config()
        config.set_main_option("script_location", str(migrations(service)))
        for script in ScriptDirectory.from_config(config).walk_revisions():
            if "autocommit_block" in getsource(script.module.upgrade):
                found.append((service, str(script.down_revision), script.revision))
    return found


async def invalid_indexes(database_url: str) -> list[str]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch(
            "SELECT indexrelid::regclass::text AS name FROM pg_index WHERE NOT indisvalid"
        )
    finally:
        await connection.close()
    return [row["name"] for row in rows]


@pytest.mark.parametrize(("service", "before", "revision"), autocommitted())
async def test_a_job_killed_before_a_revisions_stamp_succeeds_when_retried(
    service: str, before: str, revision: str, database_url: str
) -> None:
    """The Job killed before the revision's stamp committed left the revision's work done
    (an index built, a column added) and the database at the revision before."""
    await asyncio.to_thread(upgrade, migrations(service), database_url, revision)
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute("UPDATE alembic_version SET version_num = $1", before)
    finally:
        await connection.close()
    await asyncio.to_thread(upgrade, migrations(service), database_url)
    assert await invalid_indexes(database_url) == []


async def test_a_job_killed_during_a_concurrent_build_succeeds_when_retried(
    database_url: str,
) -> None:
    """A build that does not finish leaves an INVALID index of its name (here: unique over
    duplicates); the retry builds the revision's index in its place."""
    await asyncio.to_thread(upgrade, migrations("intake"), database_url, "0004")
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute(
            "INSERT INTO requests (id, number, applicant_id, idempotency_key, sub_service_code,"
            " description, document_ids, contact, status, submitted_at, updated_at)"
            " SELECT gen_random_uuid(), 'TW' || g, '1000000001', 'k' || g, 's' || g, 'd', '[]',"
            " '{}', 'submitted', now(), now() FROM generate_series(1, 2) AS g"
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await connection.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY requests_applicant_open"
                " ON requests (applicant_id)"
            )
        assert await invalid_indexes(database_url) == ["requests_applicant_open"]
        await asyncio.to_thread(upgrade, migrations("intake"), database_url)
        built = await connection.fetchval(
            "SELECT pg_get_indexdef('requests_applicant_open'::regclass)"
        )
    finally:
        await connection.close()
    assert await invalid_indexes(database_url) == []
    assert built.startswith("CREATE INDEX requests_applicant_open ON public.requests")
    assert "WHERE" in built
