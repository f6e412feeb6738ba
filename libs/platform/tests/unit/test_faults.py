"""Outages against bad input, with the exception types asyncpg and SQLAlchemy really raise."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from asyncpg import exceptions as pg
from sqlalchemy.dialects.postgresql.asyncpg import (
    AsyncAdapt_asyncpg_connection,
    AsyncAdapt_asyncpg_dbapi,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from tawasul_platform.errors import InvalidArgument, Unavailable
from tawasul_platform.faults import is_conflict, is_transient

DBAPI = AsyncAdapt_asyncpg_dbapi(asyncpg)  # type: ignore[no-untyped-call]


def wrapped(cause: Exception) -> DBAPIError:
    """The driver's error as SQLAlchemy's asyncpg dialect hands it to the application: first
    translated to the adapter's DB-API error (keeping the SQLSTATE), then wrapped."""
    try:
        AsyncAdapt_asyncpg_connection._handle_exception_no_connection(DBAPI, cause)
    except Exception as translated:
        error = DBAPIError.instance("SELECT 1", {}, translated, DBAPI.Error)
        assert isinstance(error, DBAPIError)
        return error
    raise AssertionError("the dialect did not translate the error")


OUTAGES = [
    pg.CannotConnectNowError("the database system is starting up"),
    pg.AdminShutdownError("terminating connection due to administrator command"),
    pg.CrashShutdownError("terminating connection because of crash of another server process"),
    pg.TooManyConnectionsError("sorry, too many clients already"),
    pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    pg.ConnectionFailureError("could not receive data from client"),
]
BAD_STATEMENTS = [
    pg.UniqueViolationError("duplicate key value violates unique constraint"),
    pg.UndefinedTableError('relation "no_such_table" does not exist'),
    pg.InvalidTextRepresentationError("invalid input syntax for type uuid"),
]


@pytest.mark.parametrize("cause", OUTAGES, ids=lambda e: type(e).__name__)
def test_a_server_that_cannot_take_the_statement_now_is_an_outage(cause: Exception) -> None:
    assert is_transient(wrapped(cause))
    # As asyncpg raises it to the platform's sessions and the relay, which run on asyncpg.
    assert is_transient(cause)


@pytest.mark.parametrize(
    "cause",
    [
        pg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        # The server's goodbye read while the pooled connection idled, its socket still open.
        pg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_connection_asyncpg_cannot_use_any_more_is_an_outage(cause: Exception) -> None:
    assert is_transient(cause)


@pytest.mark.parametrize("cause", BAD_STATEMENTS, ids=lambda e: type(e).__name__)
def test_a_statement_the_server_refuses_is_not_an_outage(cause: Exception) -> None:
    assert not is_transient(wrapped(cause))
    assert not is_transient(cause)


def test_a_full_pool_is_an_outage() -> None:
    full = PoolTimeout("QueuePool limit of size 1 overflow 1 reached, connection timed out")
    assert is_transient(full)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError(111, "Connect call failed"), True),
        (KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]"), True),
        (KafkaTimeoutError(), True),
        (MessageSizeTooLargeError(), False),
        (Unavailable("docs cannot answer"), True),
        (InvalidArgument({"id": "not an id"}), False),
        (ValueError("a bug"), False),
    ],
)
def test_other_failures(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


@pytest.mark.parametrize(
    "cause",
    [pg.DeadlockDetectedError("deadlock detected"), pg.SerializationError("could not serialize")],
    ids=lambda e: type(e).__name__,
)
def test_a_transaction_undone_for_a_concurrent_one_is_a_conflict_not_an_outage(
    cause: Exception,
) -> None:
    assert is_conflict(wrapped(cause))
    assert is_conflict(cause)
    assert not is_transient(wrapped(cause))


@pytest.mark.parametrize("cause", BAD_STATEMENTS + OUTAGES, ids=lambda e: type(e).__name__)
def test_bad_statements_and_outages_are_no_conflict(cause: Exception) -> None:
    assert not is_conflict(wrapped(cause))
