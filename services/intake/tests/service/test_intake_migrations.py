"""Intake's revisions on requests of dependents without a number: 0013 gives the requests
stored before 0011 the key a submission takes now, and 0011 rolls back beside the open
requests it let in."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import asyncpg
import pytest
import tawasul_intake
from alembic import command
from alembic.config import Config
from tawasul_intake.domain.model import validate_submission
from tawasul_platform.catalog import load_catalog
from tawasul_platform.identity import Principal, Role
from tawasul_platform.migrations import upgrade

MIGRATIONS = Path(tawasul_intake.__file__).resolve().parent / "migrations"
HOLDER = "1000000008"
DEPENDENTS = "residents.dependents-services"
NEWBORN = {
    "request_type": "add_dependent",
    "dependent_name": "Omar Adel Fahmy",
    "dependent_date_of_birth": "2024-11-20",
    "relationship": "son",
}
SPOUSE = {
    **NEWBORN,
    "dependent_name": "منى عادل فهمي",
    "dependent_date_of_birth": "1990-03-01",
    "relationship": "spouse",
}
# The columns an INSERT names (NOT NULL, no default): the previous releases' own.
INSERT = (
    "INSERT INTO requests (id, number, applicant_id, subject_id, idempotency_key,"
    " sub_service_code, catalog_version, department_code, description, fields, document_ids,"
    " contact, status, submitted_at, updated_at, sla, pauses, history, cited_by,"
    " follow_up_count{named}) VALUES (gen_random_uuid(), $1, $2, $3, $1, $4, 5, 'residents',"
    " 'd', $5, '[]', '{{}}', $6, now(), now(), '{{}}', '[]', '[]', '[]', 0{values})"
)


def key_of(fields: dict[str, str]) -> str:
    """The key SubmitRequest gives the holder's request with these fields, subject left empty."""
    return validate_submission(
        caller=Principal(HOLDER, Role.CITIZEN),
        catalog=load_catalog(),
        today=date(2026, 12, 1),
        idempotency_key="k",
        sub_service_code=DEPENDENTS,
        description="Adding my son to the family record",
        subject_id="",
        fields=fields,
        document_ids=[],
        mobile="0551234567",
        email="",
        locale="",
        cites_number="",
    ).person


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect("postgresql://" + database_url.split("://", 1)[1])
    yield connection
    await connection.close()


async def at(database_url: str, revision: str) -> None:
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url, revision)


async def store(
    db: asyncpg.Connection,
    number: str,
    fields: dict[str, str],
    *,
    status: str = "submitted",
    subject: str = HOLDER,
    sub_service: str = DEPENDENTS,
    key: str | None = None,
) -> None:
    """A request of HOLDER's; one stored before 0011 (no key given) as its INSERT was."""
    named = "" if key is None else ", person_key"
    values = "" if key is None else ", $7"
    await db.execute(
        INSERT.format(named=named, values=values),
        number,
        HOLDER,
        subject,
        sub_service,
        json.dumps(fields, ensure_ascii=False),
        status,
        *([] if key is None else [key]),
    )


async def keys(db: asyncpg.Connection) -> dict[str, str]:
    rows = await db.fetch("SELECT number, person_key FROM requests")
    return {row["number"]: row["person_key"] for row in rows}


async def test_a_dependent_stored_before_0011_is_the_one_typed_again(
    database_url: str, db: asyncpg.Connection
) -> None:
    """Their request takes the key of the same dependent filed again (other case and spacing),
    so the unique index refuses the second open request that 0011 let in."""
    await at(database_url, "0012")
    await store(db, "TW100000001", NEWBORN)
    await store(db, "TW100000002", SPOUSE, status="closed")
    # Neither is a dependent without a number: the dependent's own, another sub-service's.
    numbered = {**NEWBORN, "dependent_id_number": "1000000016"}
    await store(db, "TW100000003", numbered, subject="1000000016")
    await store(db, "TW100000004", {}, sub_service="passports.renewal")
    await at(database_url, "head")
    typed_again = {**NEWBORN, "dependent_name": "OMAR  adel fahmy"}
    assert await keys(db) == {
        "TW100000001": key_of(typed_again),
        "TW100000002": key_of(SPOUSE),
        "TW100000003": "",
        "TW100000004": "",
    }
    with pytest.raises(asyncpg.UniqueViolationError, match="requests_one_open"):
        await store(db, "TW100000005", typed_again, key=key_of(typed_again))


async def test_a_duplicate_let_in_since_0011_keeps_the_earlier_request_unkeyed(
    database_url: str, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """The newborn filed again after 0011 has two open requests: the migration does not fail
    on the unique index, the one stored before keeps its empty key, and the log names both."""
    await at(database_url, "0012")
    await store(db, "TW100000001", NEWBORN)
    await store(db, "TW100000002", SPOUSE, status="closed")
    await store(db, "TW100000003", NEWBORN, key=key_of(NEWBORN))
    await store(db, "TW100000004", NEWBORN, status="cancelled")
    with caplog.at_level(logging.WARNING, logger="tawasul_intake.migrations"):
        await at(database_url, "head")
    assert await keys(db) == {
        "TW100000001": "",
        "TW100000002": key_of(SPOUSE),
        "TW100000003": key_of(NEWBORN),
        "TW100000004": key_of(NEWBORN),
    }
    assert [r.getMessage() for r in caplog.records] == [
        "1 open requests keep an empty person_key, each the duplicate of an open request for"
        " the same dependent filed since 0011 (close one of the two):"
        " TW100000001 (duplicate of TW100000003)"
    ]


async def _waiting_on_a_lock(db: asyncpg.Connection) -> None:
    waiting = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE requests%'"
    )
    async with asyncio.timeout(10):
        while True:
            if await db.fetchval(waiting):
                return
            await asyncio.sleep(0.02)


async def test_a_dependent_a_pod_files_during_the_backfill_keeps_the_rest_of_its_batch(
    database_url: str, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """A live pod's request for the newborn, committed while the batch's UPDATE waits on it,
    fails the batch on the unique index: the batch is set again row by row."""
    await at(database_url, "0012")
    await store(db, "TW100000001", NEWBORN)
    await store(db, "TW100000002", SPOUSE, status="closed")
    pod = await asyncpg.connect("postgresql://" + database_url.split("://", 1)[1])
    try:
        async with pod.transaction():
            await store(pod, "TW100000003", NEWBORN, key=key_of(NEWBORN))
            job = asyncio.create_task(at(database_url, "head"))
            await _waiting_on_a_lock(db)
        with caplog.at_level(logging.WARNING, logger="tawasul_intake.migrations"):
            await job
    finally:
        await pod.close()
    assert await keys(db) == {
        "TW100000001": "",
        "TW100000002": key_of(SPOUSE),
        "TW100000003": key_of(NEWBORN),
    }
    assert "TW100000001 (duplicate of TW100000003)" in caplog.text


async def test_the_backfill_reads_every_batch(database_url: str, db: asyncpg.Connection) -> None:
    batch = importlib.import_module(
        "tawasul_intake.migrations.versions.0013_person_key_backfill"
    ).BATCH
    await at(database_url, "0012")
    await db.execute(
        "INSERT INTO requests (id, number, applicant_id, subject_id, idempotency_key,"
        " sub_service_code, catalog_version, department_code, description, fields,"
        " document_ids, contact, status, submitted_at, updated_at, sla, pauses, history,"
        " cited_by, follow_up_count) SELECT gen_random_uuid(), 'TW' || g, $1, $1, 'k' || g, $2,"
        " 5, 'residents', 'd', jsonb_build_object('dependent_name', 'Child ' || g,"
        " 'dependent_date_of_birth', '2020-01-01'), '[]', '{}', 'closed', now(), now(), '{}',"
        " '[]', '[]', '[]', 0 FROM generate_series(1, $3) AS g",
        HOLDER,
        DEPENDENTS,
        2 * batch + 1,
    )
    await at(database_url, "head")
    stored = await keys(db)
    assert "" not in stored.values()
    assert len(set(stored.values())) == 2 * batch + 1
    assert stored[f"TW{batch + 1}"] == key_of(
        {"dependent_name": f"child {batch + 1}", "dependent_date_of_birth": "2020-01-01"}
        | {"request_type": "add_dependent", "relationship": "son"}
    )


async def test_0011_rolls_back_beside_two_open_dependents_of_one_holder(
    database_url: str, db: asyncpg.Connection
) -> None:
    """The previous release's index (one open request per subject and sub-service) is built
    over the requests it files, not over the two 0011 let in; the upgrade finds them again."""
    await at(database_url, "head")
    await store(db, "TW100000001", NEWBORN, key=key_of(NEWBORN))
    await store(db, "TW100000002", SPOUSE, key=key_of(SPOUSE))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url)
    await asyncio.to_thread(command.downgrade, config, "0010")
    assert await db.fetchval("SELECT version_num FROM alembic_version") == "0010"
    daughter = {**NEWBORN, "dependent_name": "Sara Adel Fahmy", "relationship": "daughter"}
    await store(db, "TW100000003", daughter)
    with pytest.raises(asyncpg.UniqueViolationError, match="requests_one_open"):
        await store(db, "TW100000004", daughter)
    await at(database_url, "head")
    assert await keys(db) == {
        "TW100000001": key_of(NEWBORN),
        "TW100000002": key_of(SPOUSE),
        "TW100000003": key_of(daughter),
    }
